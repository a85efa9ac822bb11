"""NIQE (Mittal et al., 2013), the no-reference "naturalness" distance (lower is better),
computed as MATLAB's ``niqe`` does, in numpy (one image) and torch (batches, on any device).

Per 96x96 block of the (Y, rounded) image and of its half-size version (MATLAB bicubic with
antialiasing): the mean-subtracted contrast-normalised (MSCN) coefficients, the generalized
Gaussian fit of them and asymmetric fits of their products with 4 neighbours (18 features per
scale). The distance of the fitted multivariate Gaussian of all blocks to the pristine model:
``sqrt((mu_p - mu)^T ((S_p + S) / 2)^+ (mu_p - mu))``.

Everything after the Y conversion runs in float64, as MATLAB does: BasicSR's test image
(baboon, Y, crop 0) gives 5.72996; MATLAB's published value is 5.7296. BasicSR computes in
float32 and gets 5.729564 there, but float32 is ill-conditioned here (the local variance is a
difference of two large filtered sums): the same float32 maths with torch's convolution instead
of scipy's gives 5.7248. numpy and torch agree to 1e-6 in float64.

The pristine model is BasicSR's ``niqe_pris_params.npz`` (keys ``mu_pris_param``,
``cov_pris_param``, ``gaussian_window``). It is not shipped in this package: pass
``params_path``, or put the file in ``$BASICSR_LITE_NIQE_PARAMS`` or at
``~/.cache/basicsr_lite/niqe_pris_params.npz``.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage, special

from basicsr_lite.data.degrade.imresize import imresize, imresize_pt
from basicsr_lite.errors import NiqeParamsMissing
from basicsr_lite.registry import METRIC_REGISTRY
from basicsr_lite.utils.img_util import border_pair
from basicsr_lite.utils.img_util import crop_border as crop_border_of

Border = int | tuple[int, int]  # a metric's crop_border: both axes, or (rows, columns)

BLOCK = 96
DEFAULT_PARAMS = Path.home() / '.cache' / 'basicsr_lite' / 'niqe_pris_params.npz'
# BT.601 luma of BGR on the 0..1 scale (x 255 gives 16..235)
_Y_WEIGHTS = (24.966, 128.553, 65.481)
# the shape parameters searched for the generalized Gaussian fit, and the ratio each implies
_ALPHAS = np.arange(0.2, 10.001, 0.001)
_RATIOS = special.gamma(2 / _ALPHAS) ** 2 / (special.gamma(1 / _ALPHAS) *
                                             special.gamma(3 / _ALPHAS))
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def params_file(params_path: str | None = None) -> Path:
    path = Path(params_path or os.environ.get('BASICSR_LITE_NIQE_PARAMS') or DEFAULT_PARAMS)
    if not path.is_file():
        raise NiqeParamsMissing(
            f'NIQE needs its pristine model niqe_pris_params.npz (BasicSR ships it as '
            f'basicsr/metrics/niqe_pris_params.npz); not found at {path}. Pass params_path, set '
            f'BASICSR_LITE_NIQE_PARAMS, or copy it to {DEFAULT_PARAMS}.')
    return path


def load_params(params_path: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mu (36,), cov (36, 36), gaussian_window (7, 7))``, float64. The file is looked up on
    every call (``$BASICSR_LITE_NIQE_PARAMS`` may change), its contents are cached."""
    return _read_params(str(params_file(params_path)))


@functools.lru_cache(maxsize=4)
def _read_params(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(path) as data:
        return (data['mu_pris_param'].reshape(-1), data['cov_pris_param'],
                data['gaussian_window'])


def niqe_input(img: np.ndarray, crop_border: Border, input_order: str = 'HWC',
               convert_to: str = 'y') -> np.ndarray:
    """The 2-D 0..255 image NIQE measures: Y (BasicSR's float32 conversion) or gray, cropped,
    rounded to integers (as MATLAB)."""
    if input_order not in ('HWC', 'CHW', 'HW'):
        raise ValueError(f"input_order must be 'HWC', 'CHW' or 'HW'; got '{input_order}'.")
    if convert_to not in ('y', 'gray'):
        raise ValueError(f"convert_to must be 'y' or 'gray'; got '{convert_to}'.")
    img = img.astype(np.float32)
    if input_order == 'CHW' and img.ndim == 3:
        img = img.transpose(1, 2, 0)
    if img.ndim == 3 and img.shape[2] == 3:
        if convert_to == 'y':
            y = np.dot(img / np.float32(255), np.array(_Y_WEIGHTS)) + 16.0
            img = (y / 255).astype(np.float32) * np.float32(255)
        else:
            import cv2
            img = cv2.cvtColor(img / 255, cv2.COLOR_BGR2GRAY) * 255
    return crop_border_of(np.squeeze(img), crop_border).round()


def _block_grid(h: int, w: int) -> tuple[int, int]:
    """Rows and columns of 96x96 blocks; the covariance of the features needs two or more."""
    rows, cols = h // BLOCK, w // BLOCK
    if rows * cols < 2:
        raise ValueError(f'NIQE needs two or more {BLOCK}x{BLOCK} blocks (e.g. {BLOCK}x'
                         f'{2 * BLOCK} pixels after crop_border); got {h}x{w}.')
    return rows, cols


# ---- numpy ---------------------------------------------------------------------------------------

def _aggd_fit(values: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalized Gaussian fit: (shape, left scale, right scale)."""
    left = np.sqrt(np.mean(values[values < 0] ** 2))
    right = np.sqrt(np.mean(values[values > 0] ** 2))
    gamma_hat = left / right
    r_hat = np.mean(np.abs(values)) ** 2 / np.mean(values ** 2)
    r_norm = r_hat * (gamma_hat ** 3 + 1) * (gamma_hat + 1) / (gamma_hat ** 2 + 1) ** 2
    alpha = _ALPHAS[np.argmin((_RATIOS - r_norm) ** 2)]
    factor = np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))
    return alpha, left * factor, right * factor


def _block_features(block: np.ndarray) -> list[float]:
    alpha, left, right = _aggd_fit(block.ravel())
    features = [alpha, (left + right) / 2]
    for shift in _SHIFTS:
        product = block * np.roll(block, shift, axis=(0, 1))
        alpha, left, right = _aggd_fit(product.ravel())
        mean = (right - left) * special.gamma(2 / alpha) / special.gamma(1 / alpha)
        features += [alpha, mean, left, right]
    return features


def _distance(mu_pris, cov_pris, features: np.ndarray) -> float:
    mu = np.nanmean(features, axis=0)
    cov = np.cov(features[~np.isnan(features).any(axis=1)], rowvar=False)
    diff = mu_pris - mu
    return float(np.sqrt(diff @ np.linalg.pinv((cov_pris + cov) / 2) @ diff))


def niqe(img: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray,
         window: np.ndarray) -> float:
    """NIQE of a 2-D image on the 0..255 scale (at least 96x96)."""
    img = img.astype(np.float64)
    rows, cols = _block_grid(*img.shape)
    img = img[:rows * BLOCK, :cols * BLOCK]
    per_scale = []
    for scale in (1, 2):
        mu = ndimage.convolve(img, window, mode='nearest')
        sigma = np.sqrt(np.abs(ndimage.convolve(np.square(img), window, mode='nearest')
                               - np.square(mu)))
        mscn = (img - mu) / (sigma + 1)
        size = BLOCK // scale
        per_scale.append(np.array([
            _block_features(mscn[r * size:(r + 1) * size, c * size:(c + 1) * size])
            for c in range(cols) for r in range(rows)]))
        if scale == 1:
            img = imresize(img / 255.0, 0.5, antialiasing=True) * 255.0
    return _distance(mu_pris, cov_pris, np.concatenate(per_scale, axis=1))


@METRIC_REGISTRY.register()
def calculate_niqe(img: np.ndarray, crop_border: Border, input_order: str = 'HWC',
                   convert_to: str = 'y', params_path: str | None = None) -> float:
    """NIQE of one uint8-range BGR (or gray) image, BasicSR's signature; lower is better."""
    return niqe(niqe_input(img, crop_border, input_order, convert_to), *load_params(params_path))


calculate_niqe.better = 'lower'
calculate_niqe.no_reference = True


# ---- torch ---------------------------------------------------------------------------------------

def _aggd_fit_pt(values: torch.Tensor, ratios: torch.Tensor, alphas: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_aggd_fit` of every row of ``values`` (N x M)."""
    neg, pos = values < 0, values > 0
    left = torch.sqrt((values ** 2 * neg).sum(1) / neg.sum(1))
    right = torch.sqrt((values ** 2 * pos).sum(1) / pos.sum(1))
    gamma_hat = left / right
    r_hat = values.abs().mean(1) ** 2 / (values ** 2).mean(1)
    r_norm = r_hat * (gamma_hat ** 3 + 1) * (gamma_hat + 1) / (gamma_hat ** 2 + 1) ** 2
    alpha = alphas[torch.argmin((ratios[None] - r_norm[:, None]) ** 2, dim=1)]
    factor = torch.sqrt(torch.exp(torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    return alpha, left * factor, right * factor


def _features_pt(mscn: torch.Tensor, size: int, ratios, alphas) -> torch.Tensor:
    """18 features of every ``size`` block of the MSCN maps (B x H x W) -> B x blocks x 18,
    blocks in column-major order (as MATLAB)."""
    b, h, w = mscn.shape
    blocks = mscn.reshape(b, h // size, size, w // size, size).permute(0, 3, 1, 2, 4)
    blocks = blocks.reshape(-1, size, size)  # column-major over the block grid
    alpha, left, right = _aggd_fit_pt(blocks.reshape(len(blocks), -1), ratios, alphas)
    features = [alpha, (left + right) / 2]
    for shift in _SHIFTS:
        product = blocks * torch.roll(blocks, shift, dims=(1, 2))
        alpha, left, right = _aggd_fit_pt(product.reshape(len(blocks), -1), ratios, alphas)
        mean = (right - left) * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
        features += [alpha, mean, left, right]
    return torch.stack(features, dim=1).reshape(b, -1, 18)


def niqe_pt(img: torch.Tensor, mu_pris: np.ndarray, cov_pris: np.ndarray,
            window: np.ndarray) -> torch.Tensor:
    """NIQE of each image of a B x H x W batch on the 0..255 scale."""
    img = img.to(torch.float64)
    rows, cols = _block_grid(*img.shape[1:])
    img = img[:, :rows * BLOCK, :cols * BLOCK]
    kernel = torch.from_numpy(window).to(img)[None, None]
    pad = window.shape[0] // 2
    alphas = torch.from_numpy(_ALPHAS).to(img)
    ratios = torch.from_numpy(_RATIOS).to(img)
    per_scale = []
    for scale in (1, 2):
        x = img[:, None]
        mu = F.conv2d(F.pad(x, (pad,) * 4, mode='replicate'), kernel)
        mean_sq = F.conv2d(F.pad(x ** 2, (pad,) * 4, mode='replicate'), kernel)
        mscn = ((x - mu) / (torch.sqrt((mean_sq - mu ** 2).abs()) + 1))[:, 0]
        per_scale.append(_features_pt(mscn, BLOCK // scale, ratios, alphas))
        if scale == 1:
            img = imresize_pt(img / 255.0, 0.5, antialiasing=True) * 255.0
    features = torch.cat(per_scale, dim=2)
    mu_p = torch.from_numpy(mu_pris).to(features)
    cov_p = torch.from_numpy(cov_pris).to(features)
    scores = []
    for feats in features:  # NaN rows (flat blocks) leave the covariance, as in MATLAB
        mu = torch.nanmean(feats, dim=0)
        cov = torch.cov(feats[~torch.isnan(feats).any(dim=1)].T)
        diff = mu_p - mu
        scores.append(torch.sqrt(diff @ torch.linalg.pinv((cov_p + cov) / 2) @ diff))
    return torch.stack(scores)


def niqe_input_pt(img: torch.Tensor, crop_border: Border, convert_to: str = 'y') -> torch.Tensor:
    """B x 3 x H x W RGB in [0, 1] -> the B x H x W rounded 0..255 images NIQE measures (the
    same values as :func:`niqe_input` of the 8-bit BGR images)."""
    if convert_to not in ('y', 'gray'):
        raise ValueError(f"convert_to must be 'y' or 'gray'; got '{convert_to}'.")
    img = (img.clamp(0, 1) * 255).round().to(torch.float32)
    if img.shape[1] == 3:
        r, g, b = img.unbind(1)
        if convert_to == 'y':
            bgr = torch.stack([b, g, r], -1) / 255
            y = (bgr.to(torch.float64) @ torch.tensor(_Y_WEIGHTS, dtype=torch.float64,
                                                      device=img.device)) + 16.0
            img = (y / 255).to(torch.float32) * 255
        else:  # OpenCV's BGR2GRAY weights
            img = (0.299 * r + 0.587 * g + 0.114 * b)
    else:
        img = img[:, 0]
    bh, bw = border_pair(crop_border)
    return img[:, bh:img.shape[1] - bh, bw:img.shape[2] - bw].round()


@METRIC_REGISTRY.register()
def calculate_niqe_pt(img: torch.Tensor, crop_border: Border, convert_to: str = 'y',
                      params_path: str | None = None) -> torch.Tensor:
    """NIQE of each image of a B x 3 x H x W RGB batch in [0, 1] (B values); lower is better."""
    return niqe_pt(niqe_input_pt(img, crop_border, convert_to), *load_params(params_path))


calculate_niqe_pt.better = 'lower'
calculate_niqe_pt.no_reference = True
calculate_niqe_pt.takes_tensors = True
