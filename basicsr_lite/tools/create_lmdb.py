"""Convert image folders into LMDBs (BasicSR's layout), e.g. for DIV2K sub-images:

    python tools/create_lmdb.py --input datasets/DIV2K/DIV2K_train_HR_sub \\
        datasets/DIV2K/DIV2K_train_LR_bicubic/X4_sub \\
        --output datasets/DIV2K/DIV2K_train_HR_sub.lmdb \\
        datasets/DIV2K/DIV2K_train_LR_bicubic/X4_sub.lmdb --workers 8 --verify
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from basicsr_lite.engine.cli import tool_main
from basicsr_lite.prep.lmdb_util import (check_lmdb_target, folder_keys,
                                         make_lmdb_from_folder)
from basicsr_lite.utils.misc import sizeof_fmt


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', nargs='+', required=True, help='image folder(s)')
    parser.add_argument('--output', nargs='+', required=True, help='one .lmdb path per input')
    parser.add_argument('--compress-level', type=int, default=1, help='PNG level 0..9 (1)')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1)
    parser.add_argument('--batch', type=int, default=5000, help='images per commit')
    parser.add_argument('--verify', action='store_true', help='re-read every key afterwards')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing LMDB')
    args = parser.parse_args(argv)
    if len(args.input) != len(args.output):
        parser.error(f'{len(args.input)} --input folders but {len(args.output)} --output paths.')
    from tqdm import tqdm
    counts = []  # every input and output is checked before the first conversion starts
    for folder, out in zip(args.input, args.output):
        check_lmdb_target(out, args.overwrite, args.compress_level)
        counts.append(len(folder_keys(folder)))
    for folder, out, count in zip(args.input, args.output, counts):
        with tqdm(total=count, unit='img', desc=Path(out).name) as bar:
            report = make_lmdb_from_folder(
                folder, out, args.compress_level, args.workers, args.batch, args.overwrite,
                args.verify, progress=lambda i: bar.update(i - bar.n))
        print(f'{report.path}: {report.count} images, {sizeof_fmt(report.data_bytes)} of PNG '
              f'data{", verified" if args.verify else ""}.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
