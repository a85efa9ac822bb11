"""Crop large training images (e.g. DIV2K 2K images) into sub-images, as BasicSR does:

    python tools/extract_subimages.py --input datasets/DIV2K/DIV2K_train_HR \\
        --output datasets/DIV2K/DIV2K_train_HR_sub --crop-size 480 --step 240 --thresh-size 0 \\
        --lq-input datasets/DIV2K/DIV2K_train_LR_bicubic/X4 \\
        --lq-output datasets/DIV2K/DIV2K_train_LR_bicubic/X4_sub --scale 4 --suffix-pattern '{}x4'

Crops are named ``<stem>_s001.png`` ... in row-major order. With ``--lq-input``, the LQ image of
``<stem>`` is ``--suffix-pattern`` formatted with the stem (nothing is stripped from names), and is
cropped at the same places divided by ``--scale``; LQ crops get the same names as the HR crops,
so the pair loads with ``filename_tmpl: '{}'``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from basicsr_lite.engine.cli import tool_main
from basicsr_lite.prep.dataset_tools import extract_subimages
from basicsr_lite.utils.misc import IMG_EXTENSIONS, scandir


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True)
    parser.add_argument('--output', required=True)
    parser.add_argument('--crop-size', type=int, default=480)
    parser.add_argument('--step', type=int, default=240)
    parser.add_argument('--thresh-size', type=int, default=0,
                        help='add a last crop at the border if more pixels than this are left')
    parser.add_argument('--lq-input', default=None)
    parser.add_argument('--lq-output', default=None)
    parser.add_argument('--scale', type=int, default=1)
    parser.add_argument('--suffix-pattern', default='{}',
                        help="LQ name of HR '<stem>': e.g. '{}x4' for 0001x4.png")
    parser.add_argument('--compress-level', type=int, default=3)
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if (args.lq_input is None) != (args.lq_output is None):
        parser.error('--lq-input and --lq-output go together.')
    from tqdm import tqdm
    total = len(list(scandir(args.input, IMG_EXTENSIONS))) if Path(args.input).is_dir() else 0
    with tqdm(total=total, unit='img') as bar:
        report = extract_subimages(
            args.input, args.output, args.crop_size, args.step, args.thresh_size,
            args.lq_input, args.lq_output, args.scale, args.suffix_pattern,
            args.compress_level, args.workers, progress=lambda: bar.update(1))
    print(f'{report.done} images -> {report.outputs} sub-images in {args.output}.')
    for message in report.skipped:
        print(f'Skipped: {message}', file=sys.stderr)
    for error in report.errors:
        print(f'Error: {error}', file=sys.stderr)
    return 1 if report.errors else 0


if __name__ == '__main__':
    sys.exit(main())
