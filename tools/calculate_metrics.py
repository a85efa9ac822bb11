"""PSNR / SSIM of restored images against ground truth, paired by file name:

    python tools/calculate_metrics.py --restored results/<name>/visualization/Set5 \\
        --gt datasets/Set5/GTmod12 --restored-tmpl '{}_<name>' --crop-border 4 --test-y-channel \\
        --csv set5.csv --json set5.json

Prints one row per image and the mean.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from basicsr_lite.engine.cli import tool_main  # noqa: E402
from basicsr_lite.engine.validate import ValidationResult, format_table, write_metrics  # noqa
from basicsr_lite.prep.dataset_tools import folder_metrics  # noqa: E402


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--restored', required=True, help='folder of restored (SR) images')
    parser.add_argument('--gt', required=True, help='folder of ground-truth images')
    parser.add_argument('--restored-tmpl', default='{}',
                        help="restored name of GT '<stem>', e.g. '{}_RCAN_x4' ('{}')")
    parser.add_argument('--crop-border', type=int, default=0)
    parser.add_argument('--test-y-channel', action='store_true')
    parser.add_argument('--csv', default=None, help='write the table as CSV')
    parser.add_argument('--json', default=None, help='write per-image and mean values as JSON')
    args = parser.parse_args(argv)
    rows = folder_metrics(args.restored, args.gt, args.crop_border, args.test_y_channel,
                          args.restored_tmpl)
    result = ValidationResult(Path(args.gt).name, rows)
    width = max(len(r['name']) for r in rows)
    print(f'{"image":<{width}}  {"PSNR":>9}  {"SSIM":>7}')
    for row in rows:
        print(f'{row["name"]:<{width}}  {row["psnr"]:9.4f}  {row["ssim"]:7.4f}')
    print(format_table({'mean': result.means}))
    write_metrics([result], args.csv, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
