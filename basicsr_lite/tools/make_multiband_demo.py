"""Build ``datasets/demo_multiband``: a synthetic 4-band (blue, green, red, near-infrared),
16-bit set of multispectral scenes (reflectance x 10000, as Sentinel-2 L2A stores it), with
MATLAB-bicubic x4 LR images and the training set's band statistics:

    python tools/make_multiband_demo.py
    python train.py -opt options/train/demo_multiband.yml

Images are 4-band 16-bit PNGs (bands in the file's order: B, G, R, NIR are stored as the PNG's
R, G, B and alpha channels); pure numpy, no download.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from basicsr_lite.engine.cli import tool_main
from basicsr_lite.prep.band_stats import write_band_stats
from basicsr_lite.prep.synthetic import make_multiband_folder


def make_multiband_demo(out: str | Path, scale: int = 4, train: int = 8, val: int = 2,
                        size: int = 128, overwrite: bool = False) -> Path:
    """Write the demo set under ``out`` (train/, val/, band_stats.json); returns the stats file."""
    out = Path(out)
    make_multiband_folder(out / 'train', [f'scene_{i:03d}' for i in range(train)],
                          (size, size), scale, seed=0)
    make_multiband_folder(out / 'val', [f'scene_{i:03d}' for i in range(train, train + val)],
                          (size, size), scale, seed=1)
    stats = out / 'band_stats.json'
    write_band_stats(out / 'train' / 'gt', stats, (1, 2, 98, 99), overwrite=overwrite)
    return stats


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='datasets/demo_multiband')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--overwrite', action='store_true', help='replace existing statistics')
    args = parser.parse_args(argv)
    stats = make_multiband_demo(args.out, args.scale, overwrite=args.overwrite)
    print(f'Demo set written to {args.out} (statistics: {stats}).')
    return 0


if __name__ == '__main__':
    sys.exit(main())
