"""Export a network to ONNX (fp32, fp16 or bf16; dynamic batch/height/width) and check it against
PyTorch on two real images:

    python tools/export_onnx.py --opt options/test/IMDN/test_IMDN_x4.yml --output imdn_x4.onnx
    python tools/export_onnx.py --arch PAN --scale 4 --weights PANx4_DF2K.pth --output pan.onnx \\
        --precision fp16 --slim
    python tools/export_onnx.py --pretrained downloaded_x4.pth --output model.onnx  (detected)

The check runs the ONNX file and the PyTorch fp32 network on the images of --check-images
(default: the two validation images of datasets/demo; random smooth images when there are none),
each padded to the network's size multiple, and prints the largest difference and the PSNR
between the two outputs; a dynamic export is also run on a batch of 2 at another size. fp32 and
fp16 files run in onnxruntime's CPU provider (``pip install onnxruntime``); bf16 files (opset
22 or later) cannot (no CPU bfloat16 kernels): they get onnx.checker's full check and run with
their bf16 weights computed in fp32.
``--no-check`` skips it. fp16 is refused for networks the capability table marks fp16-unsafe.
SwinIR, whose window masks depend on the input size, exports with ``--static`` for ``--size``.
The file's op types that TensorRT / NCNN are known to reject are listed (neither is installed
here: see basicsr_lite/inference/onnx_check.py for the sources).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys

import torch

from basicsr_lite.engine.cli import tool_main
from basicsr_lite.errors import UserError
from basicsr_lite.inference.export import PRECISIONS, default_opset, export_onnx
from basicsr_lite.inference.export import smooth_random_image
from basicsr_lite.inference.onnx_check import (OnnxRunner, compare_on, converter_flags,
                                               default_check_images, load_check_image,
                                               pad_to_multiple)
from basicsr_lite.archs.constraints import network_needs
from basicsr_lite.inference.pretrained import (SPANDREL, add_network_args, in_channels,
                                               load_pretrained, network_capability, network_spec)

# Default --tolerance on max |diff| (x max(1, max |output|)) per precision: float rounding in fp32;
# fp16 (10-bit mantissa) and bf16 (7-bit) carry their rounding through the whole network.
TOLERANCE = {'fp32': 1e-4, 'fp16': 2e-2, 'bf16': 6e-2}


def refuse_unsafe(name: str, cap, precision: str) -> None:
    """A UserError when the capability table marks ``name`` unsafe in ``precision``."""
    safe = {'fp16': cap.fp16, 'bf16': cap.bf16}.get(precision, True)
    if not safe:
        other = 'bf16 or fp32' if precision == 'fp16' and cap.bf16 else 'fp32'
        source = f' ({cap.facts_from})' if cap.facts_from else ''
        raise UserError(f'--precision {precision}: {name} overflows in {precision} according to '
                        f'the capability table{source}; export with --precision {other}.')


def slim(path: str) -> None:
    try:
        import onnxslim
    except ImportError as err:
        raise UserError('--slim needs onnxslim: pip install onnxslim (or pip install -e '
                        '".[onnx]").') from err
    with contextlib.redirect_stdout(io.StringIO()):  # its table of op counts
        onnxslim.slim(path, path)
    print(f'Slimmed {path} with onnxslim {getattr(onnxslim, "__version__", "")}.')


def check_inputs(paths: list[str] | None, channels: int, cap, static_size: int | None):
    """[(name, 1 x C x H x W)]: the images (padded to the size multiple; for a static export
    cropped / padded to its size), or two smooth random images when none are given or found."""
    found = paths if paths else [str(p) for p in default_check_images()]
    if not found:
        print('No check images (datasets/demo not found, no --check-images): checking on two '
              'smooth random images.')
        side = static_size or 64
        return [(f'random{i}', smooth_random_image((1, channels, side, side), seed=i))
                for i in range(2)]
    inputs = []
    for path in found:
        x = load_check_image(path, channels)
        if static_size:
            x = pad_to_multiple(x[..., :static_size, :static_size], static_size, static_size)
        inputs.append((path, pad_to_multiple(x, cap.size_multiple, cap.min_size)))
    return inputs


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_args(parser)
    parser.add_argument('--output', required=True, help='.onnx file')
    parser.add_argument('--precision', choices=list(PRECISIONS), default='fp32')
    parser.add_argument('--size', type=int, default=64, help='input size used for tracing')
    parser.add_argument('--opset', type=int, default=None,
                        help='ONNX opset (default 17; 22 for bf16, the first with bf16 Conv)')
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument('--dynamic', dest='static', action='store_false',
                       help='dynamic batch / height / width (the default)')
    shape.add_argument('--static', action='store_true', help='fixed input size (--size)')
    parser.add_argument('--slim', action='store_true', help='simplify with onnxslim')
    parser.add_argument('--check-images', nargs='+', metavar='IMAGE',
                        help='LR images for the check (default: two of datasets/demo)')
    parser.add_argument('--no-check', action='store_true', help='do not run the ONNX file')
    parser.add_argument('--tolerance', type=float, default=None,
                        help='largest max |diff| (x max(1, max |output|)) accepted; default '
                             + ', '.join(f'{k} {v:g}' for k, v in TOLERANCE.items()))
    parser.set_defaults(static=False)
    args = parser.parse_args(argv)
    spec, _, weights, key = network_spec(args)
    cap = network_capability(spec)
    name = spec.get('architecture', spec['type'])
    refuse_unsafe(name, cap, args.precision)
    net = load_pretrained(spec, weights, key)
    # The first convolution found is not always the first applied (LKDN): ask the options.
    channels = (None if spec['type'] == SPANDREL else network_needs(spec).in_ch) \
        or in_channels(net)
    opset = args.opset or default_opset(args.precision)
    side = pad_to_multiple(torch.zeros(1, 1, args.size, args.size), cap.size_multiple,
                           cap.min_size).shape[-1]
    export_onnx(net, args.output, channels, side, opset, not args.static, args.precision)
    if args.slim:
        slim(args.output)
    print(f'Wrote {args.output} ({args.precision}, opset {opset}, '
          f'{"static " + str(side) if args.static else "dynamic"}).')
    for what, note in converter_flags(args.output).items():
        print(f'Note: {what}: {note}.')
    if args.no_check:
        return 0
    runner = OnnxRunner(args.output)
    inputs = check_inputs(args.check_images, channels, cap, side if args.static else None)
    if not args.static:
        other = smooth_random_image((2, channels, side // 2 + 3, side + 5), seed=2)
        inputs.append(('batch of 2 (dynamic shapes)',
                       pad_to_multiple(other, cap.size_multiple, cap.min_size)))
    tolerance = TOLERANCE[args.precision] if args.tolerance is None else args.tolerance
    print(f'ONNX {args.precision} ({runner.engine}) vs PyTorch (fp32):')
    failed = False
    for label, x in inputs:
        result = compare_on(net, runner, label, x)
        print(f'  {result.line()}')
        failed |= not result.max_diff <= tolerance * max(1.0, result.peak)
    if failed:
        print(f'Error: difference above the tolerance {tolerance:g} (x max(1, max |output|)).',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
