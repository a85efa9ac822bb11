"""Rebuild ``datasets/demo`` from scikit-image's bundled sample images (pip install scikit-image).

Train: astronaut, chelsea, rocket, immunohistochemistry. Val: crops of coffee and the Hubble deep
field. LR images are MATLAB-bicubic x4 downscales of the mod-cropped HR images.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from basicsr_lite.data.degrade.imresize import imresize
from basicsr_lite.data.transforms import mod_crop
from basicsr_lite.utils.img_util import imwrite, png_params

TRAIN = ('astronaut', 'chelsea', 'rocket', 'immunohistochemistry')
VAL = {'coffee': (slice(60, 316), slice(120, 376)), 'hubble_deep_field': (slice(300, 556),
                                                                          slice(400, 656))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='datasets/demo')
    parser.add_argument('--scale', type=int, default=4)
    args = parser.parse_args()
    import skimage.data

    out, scale = Path(args.out), args.scale
    images = {('train', name): getattr(skimage.data, name)() for name in TRAIN}
    for name, crop in VAL.items():
        images['val', name] = getattr(skimage.data, name)()[crop]
    for (split, name), rgb in images.items():
        hr = mod_crop(cv2.cvtColor(rgb[..., :3], cv2.COLOR_RGB2BGR), scale)
        imwrite(hr, out / f'{split}_HR' / f'{name}.png', png_params(9))
        imwrite(imresize(hr, 1 / scale), out / f'{split}_LR_bicubic' / f'X{scale}' /
                f'{name}x{scale}.png', png_params(9))
        print(f'{split:5s} {name}: HR {hr.shape[1]}x{hr.shape[0]}')


if __name__ == '__main__':
    main()
