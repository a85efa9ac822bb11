"""Small synthetic LQ/GT image sets (for tests, demos and the fault-injection tool)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from basicsr_lite.data.imresize import imresize
from basicsr_lite.utils.img_util import imwrite


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random uint8 BGR image (upscaled noise), closer to photos than white noise."""
    small = rng.integers(0, 256, size=(max(h // 8, 2), max(w // 8, 2), 3)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0, 255).astype(np.uint8)


def make_paired_folder(root: str | Path, names: list[str], size: tuple[int, int], scale: int,
                       seed: int = 0, lq_suffix: str = 'x{scale}') -> tuple[Path, Path]:
    """Write ``root/HR/<name>.png`` and MATLAB-bicubic ``root/LR_X<s>/<name>x<s>.png``."""
    rng = np.random.default_rng(seed)
    gt_dir, lq_dir = Path(root) / 'HR', Path(root) / f'LR_X{scale}'
    suffix = lq_suffix.format(scale=scale)
    for name in names:
        hr = smooth_image(rng, *size)
        imwrite(hr, gt_dir / f'{name}.png')
        imwrite(imresize(hr, 1 / scale), lq_dir / f'{name}{suffix}.png')
    return gt_dir, lq_dir
