"""PSNR / SSIM (and NIQE, LPIPS) of restored images against ground truth, paired by name:

    python tools/calculate_metrics.py --restored results/<name>/visualization/Set5 \\
        --gt datasets/Set5/GTmod12 --restored-tmpl '{}_<name>' --crop-border 4 --test-y-channel \\
        --niqe --lpips alex --csv set5.csv --json set5.json

Images beyond 8-bit RGB (16-bit, float32 TIFF, .npy, any number of bands): give --data-range
(e.g. 65535, or 10000 for reflectance): they are read as stored and PSNR / SSIM (per band, then
averaged) use that peak.

Without --gt: NIQE of every restored image (--niqe). NIQE needs its pristine model file and LPIPS
its lin layers and ImageNet backbone (see docs/reference/metrics.md). Prints one row per image
and the mean.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from basicsr_lite.engine.cli import tool_main
from basicsr_lite.engine.validate import ValidationResult, format_table, write_metrics
from basicsr_lite.prep.dataset_tools import folder_metrics


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--restored', required=True, help='folder of restored (SR) images')
    parser.add_argument('--gt', default=None, help='folder of ground-truth images')
    parser.add_argument('--restored-tmpl', default='{}',
                        help="restored name of GT '<stem>', e.g. '{}_RCAN_x4' ('{}')")
    parser.add_argument('--crop-border', type=int, default=0)
    parser.add_argument('--test-y-channel', action='store_true')
    parser.add_argument('--data-range', type=float, default=None,
                        help='read the images as stored; the peak value of PSNR / SSIM')
    parser.add_argument('--niqe', action='store_true', help='also NIQE (no reference)')
    parser.add_argument('--lpips', default=None, choices=['alex', 'vgg'],
                        help='also LPIPS with this backbone')
    parser.add_argument('--device', default='cpu', help="for LPIPS: 'cpu' or 'cuda'")
    parser.add_argument('--csv', default=None, help='write the table as CSV')
    parser.add_argument('--json', default=None, help='write per-image and mean values as JSON')
    args = parser.parse_args(argv)
    rows = folder_metrics(args.restored, args.gt, args.crop_border, args.test_y_channel,
                          args.restored_tmpl, args.niqe, args.lpips, args.device,
                          args.data_range)
    result = ValidationResult(Path(args.gt or args.restored).name, rows)
    width = max(len(r['name']) for r in rows)
    metrics = [k for k in rows[0] if k != 'name']
    print(f'{"image":<{width}}' + ''.join(f'  {m.upper():>9}' for m in metrics))
    for row in rows:
        print(f'{row["name"]:<{width}}' + ''.join(f'  {row[m]:9.4f}' for m in metrics))
    print(format_table({'mean': result.means}))
    write_metrics([result], args.csv, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
