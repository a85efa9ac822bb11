"""Export a network to ONNX (dynamic batch/height/width) and check it with onnxruntime:

    python tools/export_onnx.py --opt options/test/IMDN/test_IMDN_x4.yml --output imdn_x4.onnx
    python tools/export_onnx.py --arch PAN --scale 4 --weights PANx4_DF2K.pth --output pan.onnx
    python tools/export_onnx.py --pretrained downloaded_x4.pth --output model.onnx  (detected)

The check runs the ONNX model and the PyTorch model on random inputs of two sizes and prints the
largest difference (needs ``pip install onnxruntime``; ``--no-check`` skips it). SwinIR, whose
window masks depend on the input size, exports with ``--static`` for the ``--size`` given.
"""
from __future__ import annotations

import argparse
import sys

from basicsr_lite.engine.cli import tool_main
from basicsr_lite.inference.export import export_onnx, verify_onnx
from basicsr_lite.inference.pretrained import (add_network_args, in_channels,
                                               load_pretrained, network_spec)


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_args(parser)
    parser.add_argument('--output', required=True, help='.onnx file')
    parser.add_argument('--size', type=int, default=64, help='input size used for tracing')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--static', action='store_true', help='fixed input size')
    parser.add_argument('--no-check', action='store_true', help='do not run onnxruntime')
    parser.add_argument('--tolerance', type=float, default=1e-4)
    args = parser.parse_args(argv)
    spec, _, weights, key = network_spec(args)
    net = load_pretrained(spec, weights, key)
    channels = in_channels(net)
    export_onnx(net, args.output, channels, args.size, args.opset, not args.static)
    print(f'Wrote {args.output}.')
    if not args.no_check:
        shapes = [(1, channels, args.size, args.size)]
        if not args.static:
            shapes.append((2, channels, args.size // 2 + 3, args.size + 5))
        worst = verify_onnx(net, args.output, shapes)
        print(f'onnxruntime vs PyTorch on inputs {shapes}: max |diff| {worst:.2e}')
        if worst > args.tolerance:
            print(f'Error: difference above --tolerance {args.tolerance}.', file=sys.stderr)
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
