"""PSNR and SSIM, MATLAB-compatible, in numpy (one HWC image) and torch (NCHW batches).

The protocol of the published SR tables: data on a 0..255 scale, optional BT.601 Y channel,
``crop_border`` pixels shaved from every side (or (rows, columns), for asymmetric scales), SSIM
with an 11x11 Gaussian window (sigma 1.5), 'valid' filtering, K = (0.01, 0.03), averaged over
the map (and over channels).

Data of another range (16-bit, reflectance, float) give ``data_range``, the peak of PSNR and the
L of SSIM's constants (the images are brought to 0..255 by ``255 / data_range``, which leaves
PSNR and SSIM unchanged); ``band`` scores one band (channel) alone. SSIM is computed per band
and averaged over the bands.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from basicsr_lite.registry import METRIC_REGISTRY
from basicsr_lite.utils.img_util import (bgr2y, border_pair, crop_border as shave, psnr_from_mse,
                                         rgb2y)

_C1 = (0.01 * 255)**2
_C2 = (0.03 * 255)**2


def _check_range_and_band(data_range: float, band: int | None, test_y_channel: bool,
                          bands: int) -> None:
    if not data_range > 0:
        raise ValueError(f'data_range must be > 0; got {data_range!r}.')
    if band is not None:
        if test_y_channel:
            raise ValueError('band and test_y_channel exclude each other.')
        if not 0 <= band < bands:
            raise ValueError(f'band {band} does not exist: the images have {bands} band(s).')


def _prepare_numpy(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str,
                   test_y_channel: bool, data_range: float = 255.0,
                   band: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    if img.shape != img2.shape:
        raise ValueError(f'Image shapes differ: {img.shape} vs {img2.shape}.')
    if input_order not in ('HWC', 'CHW'):
        raise ValueError(f"input_order must be 'HWC' or 'CHW'; got '{input_order}'.")
    out = []
    for im in (img, img2):
        if input_order == 'CHW' and im.ndim == 3:
            im = im.transpose(1, 2, 0)
        if im.ndim == 2:
            im = im[:, :, None]
        _check_range_and_band(data_range, band, test_y_channel, im.shape[2])
        im = im.astype(np.float64)
        if data_range != 255:
            im = im * (255.0 / data_range)
        if band is not None:
            im = im[:, :, band:band + 1]
        if test_y_channel and im.shape[2] == 3:
            im = bgr2y(im)[:, :, None]
        out.append(shave(im, crop_border))
    return out[0], out[1]


@METRIC_REGISTRY.register()
def calculate_psnr(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str = 'HWC',
                   test_y_channel: bool = False, data_range: float = 255.0,
                   band: int | None = None) -> float:
    """PSNR (dB) of two images in [0, data_range], BGR when 3-channel. Identical images give
    inf."""
    img, img2 = _prepare_numpy(img, img2, crop_border, input_order, test_y_channel, data_range,
                               band)
    return psnr_from_mse(float(np.mean((img - img2)**2)), 255.0)


def _gaussian_window() -> np.ndarray:
    kernel = cv2.getGaussianKernel(11, 1.5)
    return kernel @ kernel.T


def _ssim_single_channel(img: np.ndarray, img2: np.ndarray) -> float:
    window = _gaussian_window()

    def filt(x: np.ndarray) -> np.ndarray:  # 'valid' part of the filtered map
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]

    mu1, mu2 = filt(img), filt(img2)
    sigma1_sq = filt(img**2) - mu1**2
    sigma2_sq = filt(img2**2) - mu2**2
    sigma12 = filt(img * img2) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + _C1) * (2 * sigma12 + _C2)) / (
        (mu1**2 + mu2**2 + _C1) * (sigma1_sq + sigma2_sq + _C2))
    return float(ssim_map.mean())


@METRIC_REGISTRY.register()
def calculate_ssim(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str = 'HWC',
                   test_y_channel: bool = False, data_range: float = 255.0,
                   band: int | None = None) -> float:
    """SSIM (Wang et al. 2004) of two images in [0, data_range], averaged over channels."""
    img, img2 = _prepare_numpy(img, img2, crop_border, input_order, test_y_channel, data_range,
                               band)
    if min(img.shape[:2]) < 11:
        raise ValueError(f'SSIM needs images of at least 11x11 after crop_border; got '
                         f'{img.shape[:2]}.')
    return float(np.mean([_ssim_single_channel(img[..., c], img2[..., c])
                          for c in range(img.shape[2])]))


def _prepare_torch(img: torch.Tensor, img2: torch.Tensor, crop_border: int,
                   test_y_channel: bool, data_range: float = 1.0,
                   band: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    if img.shape != img2.shape:
        raise ValueError(f'Tensor shapes differ: {tuple(img.shape)} vs {tuple(img2.shape)}.')
    if img.dim() == 3:
        img, img2 = img[None], img2[None]
    _check_range_and_band(data_range, band, test_y_channel, img.size(1))
    img, img2 = img.to(torch.float64), img2.to(torch.float64)
    if data_range != 1:
        img, img2 = img / data_range, img2 / data_range
    if band is not None:
        img, img2 = img[:, band:band + 1], img2[:, band:band + 1]
    if test_y_channel and img.size(1) == 3:
        img, img2 = rgb2y(img), rgb2y(img2)
    bh, bw = border_pair(crop_border)
    height, width = img.shape[-2:]
    img = img[..., bh:height - bh, bw:width - bw]
    img2 = img2[..., bh:height - bh, bw:width - bw]
    return img * 255.0, img2 * 255.0


@METRIC_REGISTRY.register()
def calculate_psnr_pt(img: torch.Tensor, img2: torch.Tensor, crop_border: int,
                      test_y_channel: bool = False, data_range: float = 1.0,
                      band: int | None = None) -> torch.Tensor:
    """Per-image PSNR (dB) of NCHW tensors (RGB when 3-channel) in [0, data_range]; returns a
    tensor of shape (N,)."""
    img, img2 = _prepare_torch(img, img2, crop_border, test_y_channel, data_range, band)
    mse = ((img - img2)**2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse)  # mse == 0 -> inf, like the numpy version


@METRIC_REGISTRY.register()
def calculate_ssim_pt(img: torch.Tensor, img2: torch.Tensor, crop_border: int,
                      test_y_channel: bool = False, data_range: float = 1.0,
                      band: int | None = None) -> torch.Tensor:
    """Per-image SSIM of NCHW tensors (RGB when 3-channel) in [0, data_range], averaged over
    bands; returns a tensor of shape (N,)."""
    img, img2 = _prepare_torch(img, img2, crop_border, test_y_channel, data_range, band)
    channels = img.size(1)
    # The 11x11 Gaussian window is separable: two 1-D passes over the five maps at once
    taps = torch.from_numpy(cv2.getGaussianKernel(11, 1.5)[:, 0]).to(img)
    stacked = torch.cat([img, img2, img * img, img2 * img2, img * img2], dim=1)
    groups = stacked.size(1)
    filtered = F.conv2d(F.conv2d(stacked, taps.view(1, 1, 1, 11).expand(groups, 1, 1, 11),
                                 groups=groups),
                        taps.view(1, 1, 11, 1).expand(groups, 1, 11, 1), groups=groups)
    mu1, mu2, img_sq, img2_sq, img_img2 = filtered.split(channels, dim=1)
    sigma1_sq = img_sq - mu1**2
    sigma2_sq = img2_sq - mu2**2
    sigma12 = img_img2 - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + _C1) * (2 * sigma12 + _C2)) / (
        (mu1**2 + mu2**2 + _C1) * (sigma1_sq + sigma2_sq + _C2))
    return ssim_map.mean(dim=(1, 2, 3))


# Validation hands these functions tensors instead of uint8 images.
calculate_psnr_pt.takes_tensors = True
calculate_ssim_pt.takes_tensors = True
