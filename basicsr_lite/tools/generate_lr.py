"""Make LR images with MATLAB's bicubic imresize (bit-exact with MATLAB for uint8 images):

    python tools/generate_lr.py --input datasets/DIV2K/DIV2K_train_HR \\
        --output datasets/DIV2K/DIV2K_train_LR_bicubic/X4 --scale 4 --suffix x4

Each HR image is first mod-cropped (bottom/right) to a multiple of the scale; ``--hr-mod-output``
also writes those cropped HR images (the GT for evaluation).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from basicsr_lite.engine.cli import tool_main
from basicsr_lite.prep.dataset_tools import generate_lr
from basicsr_lite.utils.misc import IMG_EXTENSIONS, scandir


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='HR image folder')
    parser.add_argument('--output', required=True, help='LR output folder')
    parser.add_argument('--scale', type=int, required=True)
    parser.add_argument('--suffix', default='x{scale}', help="LR name suffix ('x{scale}')")
    parser.add_argument('--hr-mod-output', default=None, help='also write mod-cropped HR here')
    parser.add_argument('--compress-level', type=int, default=3)
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    from tqdm import tqdm
    total = len(list(scandir(args.input, IMG_EXTENSIONS))) if Path(args.input).is_dir() else 0
    with tqdm(total=total, unit='img') as bar:
        report = generate_lr(args.input, args.output, args.scale, args.suffix,
                             args.hr_mod_output, args.compress_level, args.workers,
                             progress=lambda: bar.update(1))
    print(f'{report.outputs} LR images written to {args.output}.')
    for error in report.errors:
        print(f'Error: {error}', file=sys.stderr)
    return 1 if report.errors else 0


if __name__ == '__main__':
    sys.exit(main())
