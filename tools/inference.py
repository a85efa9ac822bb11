"""Super-resolve real images (a file or a folder), tile by tile so that any size fits:

    python tools/inference.py -i photos/ -o out/ --opt options/test/IMDN/test_IMDN_x4.yml
    python tools/inference.py -i big.png -o out/ --arch IMDN --scale 4 \\
        --weights IMDN_x4.pth --tile 256 --overlap 16 [--ensemble] [--half bf16]

The network comes from an option file (``network_g``, ``scale``, ``path.pretrain_network_g``)
or from ``--arch`` (+ ``--arch-opt key=value`` for constructor arguments) and ``--weights``
(.pth in any BasicSR / bare / wrapped form, or .safetensors). Unreadable files are skipped with
a message; the exit code is 1 if any was skipped.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from basicsr_lite.archs import build_network  # noqa: E402
from basicsr_lite.engine.checkpoint import load_weights  # noqa: E402
from basicsr_lite.engine.tiling import tiled_inference  # noqa: E402
from basicsr_lite.errors import ImageReadError, UserError  # noqa: E402
from basicsr_lite.models.base_model import extract_state_dict  # noqa: E402
from basicsr_lite.options import load_option_file  # noqa: E402
from basicsr_lite.utils.img_util import img2tensor, imread, imwrite  # noqa: E402
from basicsr_lite.utils.misc import IMG_EXTENSIONS, scandir  # noqa: E402

DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


def network_spec(args) -> tuple[dict, int, str, str]:
    """(network options, scale, weights path, param key) from --opt or --arch."""
    if args.opt:
        opt = load_option_file(args.opt)
        weights = args.weights or (opt.get('path') or {}).get('pretrain_network_g')
        key = args.param_key or (opt.get('path') or {}).get('param_key_g', 'params')
        return opt['network_g'], int(opt.get('scale', 1)), weights, key
    if not args.arch or not args.scale:
        raise UserError('Give --opt, or --arch and --scale (and --weights).')
    net = {'type': args.arch}
    for item in args.arch_opt or []:
        name, _, value = item.partition('=')
        net[name] = yaml.safe_load(value)
    if 'upscale' not in net and 'scale' not in net:
        net['upscale'] = args.scale
    return net, args.scale, args.weights, args.param_key or 'params'


def load_network(spec: dict, weights: str | None, key: str, device: torch.device,
                 dtype: torch.dtype | None) -> torch.nn.Module:
    if not weights:
        raise UserError('No weights: give --weights (or path.pretrain_network_g in --opt).')
    try:
        net = build_network(spec)
    except (TypeError, ValueError, KeyError) as err:
        raise UserError(f'Cannot build {spec}: {err}') from err
    net.load_state_dict(extract_state_dict(load_weights(weights), key, weights), strict=True)
    return net.eval().to(device=device, dtype=dtype)


def input_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return [path / name for name in scandir(path, IMG_EXTENSIONS, recursive=True)]
    raise UserError(f'Input {path} does not exist.')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-i', '--input', required=True, help='image file or folder')
    parser.add_argument('-o', '--output', required=True, help='output folder')
    parser.add_argument('--opt', help='option file with network_g / scale / weights')
    parser.add_argument('--arch', help='architecture name (instead of --opt)')
    parser.add_argument('--arch-opt', nargs='*', metavar='KEY=VALUE',
                        help='constructor arguments, e.g. num_feat=64 (values parsed as YAML)')
    parser.add_argument('--scale', type=int)
    parser.add_argument('--weights')
    parser.add_argument('--param-key', default=None, help="'params' or 'params_ema'")
    parser.add_argument('--tile', type=int, default=512, help='tile size in input pixels; 0: off')
    parser.add_argument('--overlap', type=int, default=16, help='context around each tile')
    parser.add_argument('--ensemble', action='store_true', help='x8 self-ensemble (8x slower)')
    parser.add_argument('--half', choices=sorted(DTYPES), help='half precision (GPU)')
    parser.add_argument('--device', default='auto', help="'auto', 'cpu', 'cuda', 'cuda:1'")
    parser.add_argument('--suffix', default='', help='appended to output names')
    args = parser.parse_args(argv)
    from tqdm import tqdm

    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu') \
        if args.device == 'auto' else torch.device(args.device)
    dtype = DTYPES.get(args.half)
    try:
        spec, scale, weights, key = network_spec(args)
        net = load_network(spec, weights, key, device, dtype)
        files = input_files(Path(args.input))
    except UserError as err:
        print(f'Error: {err}', file=sys.stderr)
        return 2
    skipped, start = 0, time.time()
    torch.set_grad_enabled(False)
    for path in tqdm(files, unit='img'):
        try:
            img = imread(path, float32=True)
        except ImageReadError as err:
            tqdm.write(f'Skipped: {err}')
            skipped += 1
            continue
        lq = img2tensor(img)[None]
        sr = tiled_inference(net, lq, scale, args.tile or None, args.overlap, args.ensemble,
                             device, dtype, as_uint8=True)
        out = sr[0].permute(1, 2, 0).numpy()
        imwrite(out[..., ::-1] if out.shape[2] == 3 else out,  # RGB -> BGR for cv2
                Path(args.output) / f'{path.stem}{args.suffix}.png')
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'{len(files) - skipped} image(s) in {time.time() - start:.1f} s; peak RSS '
          f'{peak_mb:.0f} MB; output in {args.output}')
    return 1 if skipped else 0


if __name__ == '__main__':
    sys.exit(main())
