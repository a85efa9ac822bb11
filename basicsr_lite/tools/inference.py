"""Super-resolve real images (a file or a folder), tile by tile so that any size fits:

    python tools/inference.py -i photos/ -o out/ --opt options/test/IMDN/test_IMDN_x4.yml
    python tools/inference.py -i big.png -o out/ --arch IMDN --scale 4 \\
        --weights IMDN_x4.pth --tile 256 --overlap 16 [--ensemble] [--half bf16]
    python tools/inference.py -i photos/ -o out/ --pretrained downloaded_x4.pth

The network comes from an option file (``network_g``, ``scale``, ``path.pretrain_network_g``)
or from ``--arch`` (+ ``--arch-opt key=value`` for constructor arguments) and ``--weights``,
(.pth in any BasicSR / bare / wrapped form, or .safetensors), or from the weights alone
(``--pretrained``: detected; other architectures through spandrel when installed). Unreadable files are skipped with
a message; the exit code is 1 if any was skipped.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from basicsr_lite.engine.cli import tool_main
from basicsr_lite.errors import ImageReadError, UserError
from basicsr_lite.inference.pretrained import (add_network_args, in_channels,
                                               load_pretrained, network_capability,
                                               network_spec, resolve_device)
from basicsr_lite.runtime.tiling import padded_forward, tiled_inference
from basicsr_lite.utils.img_util import img2tensor, imread, imwrite
from basicsr_lite.utils.misc import IMG_EXTENSIONS, scandir

DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


def input_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return [path / name for name in scandir(path, IMG_EXTENSIONS, recursive=True)]
    raise UserError(f'Input {path} does not exist.')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-i', '--input', required=True, help='image file or folder')
    parser.add_argument('-o', '--output', required=True, help='output folder')
    add_network_args(parser)
    parser.add_argument('--tile', type=int, default=512, help='tile size in input pixels; 0: off')
    parser.add_argument('--overlap', type=int, default=16, help='context around each tile')
    parser.add_argument('--ensemble', action='store_true', help='x8 self-ensemble (8x slower)')
    parser.add_argument('--half', choices=sorted(DTYPES), help='half precision (GPU)')
    parser.add_argument('--device', default='auto', help="'auto', 'cpu', 'cuda', 'cuda:1'")
    parser.add_argument('--suffix', default='', help='appended to output names')
    return parser


@tool_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    device = resolve_device(args.device, args.half)
    dtype = DTYPES.get(args.half)
    spec, scale, weights, key = network_spec(args)
    model = load_pretrained(spec, weights, key, device, dtype)
    cap = network_capability(spec)  # inputs (tiles) padded to the network's size multiple
    net = padded_forward(model, cap.size_multiple, scale, cap.min_size)
    files = input_files(Path(args.input))
    with torch.no_grad():  # output channels of the network
        out_channels = net(torch.rand(1, in_channels(model), 16, 16, device=device,
                                      dtype=dtype)).shape[1]
    skipped, start = 0, time.time()
    for path in tqdm(files, unit='img'):
        try:
            img = imread(path, float32=True)
        except ImageReadError as err:
            tqdm.write(f'Skipped: {err}')
            skipped += 1
            continue
        lq = img2tensor(img)[None]
        del img
        # Written in place into the HWC array that is saved: no copy of a huge output.
        out = np.empty((lq.shape[2] * scale, lq.shape[3] * scale, out_channels), np.uint8)
        tiled_inference(net, lq, scale, args.tile or None, args.overlap, args.ensemble, device,
                        dtype, out=torch.from_numpy(out).permute(2, 0, 1)[None])
        if out_channels == 3:
            cv2.cvtColor(out, cv2.COLOR_RGB2BGR, dst=out)
        imwrite(out, Path(args.output) / f'{path.stem}{args.suffix}.png')
        del out, lq
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'{len(files) - skipped} image(s) in {time.time() - start:.1f} s; peak RSS '
          f'{peak_mb:.0f} MB; output in {args.output}')
    return 1 if skipped else 0


if __name__ == '__main__':
    sys.exit(main())
