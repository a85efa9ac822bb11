"""Small synthetic LQ/GT image sets (for tests, demos and the fault-injection tool)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from basicsr_lite.data.degrade.imresize import imresize
from basicsr_lite.data.io.band_io import write_lossless
from basicsr_lite.utils.img_util import imwrite


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random uint8 BGR image (upscaled noise), closer to photos than white noise."""
    small = rng.integers(0, 256, size=(max(h // 8, 2), max(w // 8, 2), 3)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0, 255).astype(np.uint8)


def rectangles_image(rng: np.random.Generator, h: int, w: int, count: int = 12) -> np.ndarray:
    """A uint8 BGR image of ``count`` filled rectangles over a faint smooth background: sharp
    edges, whose blur a network can only undo by as much as it knows it to be."""
    img = smooth_image(rng, h, w).astype(np.float32) * 0.3
    for _ in range(count):
        x0, y0 = int(rng.integers(0, w - 4)), int(rng.integers(0, h - 4))
        x1, y1 = x0 + int(rng.integers(3, w // 2)), y0 + int(rng.integers(3, h // 2))
        color = [float(v) for v in rng.integers(0, 256, 3)]
        cv2.rectangle(img, (x0, y0), (x1, y1), color, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


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


# Reflectance (x 10000, as Sentinel-2 L2A stores it) of a few land covers in blue, green, red
# and near-infrared: vegetation is dark in red and bright in NIR, water dark in NIR.
LAND_COVERS = np.array([[400, 700, 500, 4000],     # vegetation
                        [900, 1100, 1300, 2200],   # bare soil
                        [600, 500, 300, 100],      # water
                        [1600, 1600, 1700, 1900]])  # built-up


def multiband_scene(rng: np.random.Generator, h: int, w: int, bands: int = 4) -> np.ndarray:
    """A synthetic multispectral scene, uint16 HWC (bands in the order of ``LAND_COVERS``'s
    columns, then smooth extra bands): regions of four land covers with sharp borders, texture
    within them, and straight roads; values are reflectance x 10000."""
    field = cv2.resize(rng.standard_normal((max(h // 16, 2), max(w // 16, 2))).astype(np.float32),
                       (w, h), interpolation=cv2.INTER_CUBIC)
    cover = np.digitize(field, np.quantile(field, [0.4, 0.6, 0.75]))
    signature = LAND_COVERS[:, np.arange(bands) % LAND_COVERS.shape[1]].astype(np.float32)
    scene = signature[cover]  # (h, w, bands)
    texture = smooth_image(rng, h, w)[:, :, :1].astype(np.float32) / 255.0 - 0.5
    scene *= 1.0 + 0.6 * texture
    scene += rng.normal(0, 15, scene.shape).astype(np.float32)
    for _ in range(2):  # roads: bright, straight, 2 pixels wide
        if rng.random() < 0.5:
            row = int(rng.integers(0, h - 2))
            scene[row:row + 2] = signature[3] * 1.2
        else:
            col = int(rng.integers(0, w - 2))
            scene[:, col:col + 2] = signature[3] * 1.2
    return np.clip(np.rint(scene), 0, 65535).astype(np.uint16)


def make_multiband_folder(root: str | Path, names: list[str], size: tuple[int, int], scale: int,
                          seed: int = 0, bands: int = 4) -> tuple[Path, Path]:
    """Write ``root/gt/<name>`` and MATLAB-bicubic ``root/lq_x<s>/<name>`` multiband scenes
    (16-bit PNG for 1, 3 or 4 bands, else .npy), in the file band order."""
    rng = np.random.default_rng(seed)
    gt_dir, lq_dir = Path(root) / 'gt', Path(root) / f'lq_x{scale}'
    for name in names:
        hr = multiband_scene(rng, *size, bands=bands)
        write_lossless(hr, gt_dir / name, 9)
        write_lossless(imresize(hr, 1 / scale), lq_dir / name, 9)
    return gt_dir, lq_dir
