"""Geometric transforms applied identically to LQ/GT pairs (numpy HWC images)."""
from __future__ import annotations

import random

import numpy as np

from basicsr_lite.errors import DataError


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so height and width are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[:h - h % scale, :w - w % scale, ...]


Images = np.ndarray | list[np.ndarray]


def paired_random_crop(img_gts: Images, img_lqs: Images, gt_patch_size: int, scale: int,
                       gt_path: str | None = None):
    """Crop aligned patches: ``gt_patch_size`` from GT, ``gt_patch_size // scale`` from LQ.

    Returns (gts, lqs), each a single array if a single array was given.
    """
    single_gt, single_lq = isinstance(img_gts, np.ndarray), isinstance(img_lqs, np.ndarray)
    gts = [img_gts] if single_gt else list(img_gts)
    lqs = [img_lqs] if single_lq else list(img_lqs)
    h_lq, w_lq = lqs[0].shape[:2]
    h_gt, w_gt = gts[0].shape[:2]
    lq_patch_size = gt_patch_size // scale
    where = f' ({gt_path})' if gt_path else ''
    if (h_gt, w_gt) != (h_lq * scale, w_lq * scale):
        raise DataError(f'GT size ({h_gt}, {w_gt}) is not {scale}x the LQ size ({h_lq}, {w_lq})'
                        f'{where}.')
    if h_lq < lq_patch_size or w_lq < lq_patch_size:
        raise DataError(f'LQ image ({h_lq}, {w_lq}) is smaller than the patch '
                        f'({lq_patch_size}, {lq_patch_size}) for gt_size {gt_patch_size}{where}.')
    top = random.randint(0, h_lq - lq_patch_size)
    left = random.randint(0, w_lq - lq_patch_size)
    lqs = [v[top:top + lq_patch_size, left:left + lq_patch_size, ...] for v in lqs]
    top_gt, left_gt = top * scale, left * scale
    gts = [v[top_gt:top_gt + gt_patch_size, left_gt:left_gt + gt_patch_size, ...] for v in gts]
    return (gts[0] if single_gt else gts), (lqs[0] if single_lq else lqs)


def augment(imgs: Images, hflip: bool = True, rotation: bool = True):
    """Random horizontal flip, vertical flip and 90-degree rotation (transpose), the same for
    every image in ``imgs``. Returns the same structure it was given."""
    do_hflip = hflip and random.random() < 0.5
    do_vflip = rotation and random.random() < 0.5
    do_rot90 = rotation and random.random() < 0.5

    def _apply(img: np.ndarray) -> np.ndarray:
        if do_hflip:
            img = img[:, ::-1, ...]
        if do_vflip:
            img = img[::-1, :, ...]
        if do_rot90:
            img = img.transpose(1, 0, *range(2, img.ndim))
        return np.ascontiguousarray(img)

    if isinstance(imgs, np.ndarray):
        return _apply(imgs)
    return [_apply(img) for img in imgs]
