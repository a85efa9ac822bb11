"""Build ``datasets/demo_pix2pix`` (grayscale -> colour pairs, pix2pix's side-by-side AB format)
from the training images of ``datasets/demo``: A (left half) is the grayscale image, B (right)
the colour one. Each image, scaled to a 256-pixel short side, gives four 128x128 tiles of its
centre: three for training, the bottom-right one held out for validation.

    python tools/make_pix2pix_demo.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from basicsr_lite.utils.img_util import imwrite, png_params  # noqa: E402

TILE = 128


def ab_image(bgr: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return np.concatenate([gray, bgr], axis=1)


def short_side(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    factor = size / min(h, w)
    return cv2.resize(img, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--demo', default='datasets/demo', help='the SR demo data')
    parser.add_argument('--out', default='datasets/demo_pix2pix')
    args = parser.parse_args(argv)
    demo, out = Path(args.demo), Path(args.out)
    for path in sorted((demo / 'train_HR').glob('*.png')):
        img = short_side(cv2.imread(str(path)), 2 * TILE)
        h, w = img.shape[:2]
        top, left = (h - 2 * TILE) // 2, (w - 2 * TILE) // 2
        for i in range(2):
            for j in range(2):
                tile = img[top + i * TILE:top + (i + 1) * TILE,
                           left + j * TILE:left + (j + 1) * TILE]
                split = 'val' if (i, j) == (1, 1) else 'train'  # one held-out tile per image
                imwrite(ab_image(tile), out / split / f'{path.stem}_{i}{j}.png', png_params(9))
    print(f'{len(list((out / "train").glob("*.png")))} train and '
          f'{len(list((out / "val").glob("*.png")))} val AB images in {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
