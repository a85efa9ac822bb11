"""Per-band statistics of a training set, for the ``normalize`` section of a dataset read with
``read_mode: unchanged`` (mean_std, min_max, percentile stretch):

    python tools/band_stats.py --input datasets/demo_multiband/train/gt \\
        --output datasets/demo_multiband/band_stats.json --percentiles 1 99

The input is an image folder (PNG / TIFF / .npy) or an LMDB. Percentiles are exact for 8 and
16-bit images. An existing output file is kept unless --overwrite: runs that read it would
otherwise change their normalisation.
"""
from __future__ import annotations

import argparse
import sys

from basicsr_lite.engine.cli import tool_main
from basicsr_lite.prep.band_stats import write_band_stats


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='image folder or LMDB')
    parser.add_argument('--output', required=True, help='statistics file (JSON)')
    parser.add_argument('--percentiles', type=float, nargs='+', default=[1.0, 99.0],
                        help='percentiles to store, 0..100 (1 99)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing file')
    args = parser.parse_args(argv)
    bad = [p for p in args.percentiles if not 0 <= p <= 100]
    if bad:
        parser.error(f'--percentiles must lie in 0..100; got {bad}.')
    stats = write_band_stats(args.input, args.output, args.percentiles, args.overwrite)
    print(f"{args.output}: {stats['images']} images, {stats['bands']} band(s) of "
          f"{stats['dtype']}, percentiles {', '.join(stats['percentiles'])} "
          f"({stats['percentile_method']}).")
    return 0


if __name__ == '__main__':
    sys.exit(main())
