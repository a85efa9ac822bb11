"""Degradations applied to uint8 HWC BGR images (each result rounded to uint8, like files)."""
from __future__ import annotations

import cv2
import numpy as np

from basicsr_lite.data.degrade.imresize import imresize


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Isotropic Gaussian blur; the kernel covers +-3 sigma."""
    ksize = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(img, (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT)


def add_gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise, ``sigma`` on the 0..255 scale."""
    noisy = img.astype(np.float32) + rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError('JPEG encoding failed.')
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).reshape(img.shape)


def degrade(gt: np.ndarray, scale: int, rng: np.random.Generator, blur_prob: float = 0.0,
            blur_sigma: tuple[float, float] = (0.2, 3.0), noise_prob: float = 0.0,
            noise_sigma: tuple[float, float] = (1.0, 25.0), jpeg_prob: float = 0.0,
            jpeg_quality: tuple[int, int] = (30, 95), applied: dict | None = None) -> np.ndarray:
    """blur (with ``blur_prob``) -> MATLAB bicubic 1/scale -> noise -> JPEG, parameters drawn
    uniformly from their ranges with ``rng``. ``applied`` (a dict) receives what was done:
    ``blur_sigma`` and ``noise_sigma`` (0 when not applied), ``jpeg_quality`` (100 when not)."""
    record = {'blur_sigma': 0.0, 'noise_sigma': 0.0, 'jpeg_quality': 100.0}
    img = gt
    if rng.random() < blur_prob:
        record['blur_sigma'] = rng.uniform(*blur_sigma)
        img = gaussian_blur(img, record['blur_sigma'])
    img = imresize(img, 1 / scale)
    if rng.random() < noise_prob:
        record['noise_sigma'] = rng.uniform(*noise_sigma)
        img = add_gaussian_noise(img, record['noise_sigma'], rng)
    if rng.random() < jpeg_prob:
        record['jpeg_quality'] = float(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1))
        img = jpeg_compress(img, int(record['jpeg_quality']))
    if applied is not None:
        applied.update(record)
    return img
