"""Blur kernels of the Real-ESRGAN degradation model (numpy, float64, each summing to 1).

Every kernel is a closed formula of the offset ``d = (x, y)`` from the centre pixel (x: column,
y: row) and the covariance ``S = R diag(sigma_x^2, sigma_y^2) R^T`` (R: rotation by ``theta``):

- Gaussian:              ``exp(-d^T S^-1 d / 2)``
- generalized Gaussian:  ``exp(-(d^T S^-1 d)^beta / 2)``  (beta < 1: heavier tails; > 1: flatter)
- plateau:               ``1 / ((d^T S^-1 d)^beta + 1)``
- sinc (circular low-pass with cutoff ``omega``): ``omega J1(omega r) / (2 pi r)``, r = |d|,
  and ``omega^2 / (4 pi)`` at r = 0 (its limit).

The ``random_*`` functions draw their parameters from Python's ``random`` and numpy's global
RNG in BasicSR's order, so a dataset seeded per sample draws the same kernels as BasicSR would
from the same RNG states.
"""
from __future__ import annotations

import math
import random
from typing import Sequence

import numpy as np
from scipy import special

KERNEL_TYPES = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                'plateau_aniso')


def covariance(sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """``R diag(sigma_x^2, sigma_y^2) R^T`` with R the rotation by ``theta`` radians."""
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return rotation @ np.diag([sigma_x**2, sigma_y**2]) @ rotation.T


def offsets(kernel_size: int) -> np.ndarray:
    """``(k, k, 2)``: the (x, y) offset of every pixel from the centre (x along columns)."""
    ax = np.arange(kernel_size, dtype=np.float64) - (kernel_size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def _mahalanobis_sq(kernel_size: int, sigma_x: float, sigma_y: float, theta: float,
                    isotropic: bool) -> np.ndarray:
    """``d^T S^-1 d`` at every pixel (isotropic: sigma_y = sigma_x, no rotation)."""
    if isotropic:
        sigma_y, theta = sigma_x, 0.0
    inverse = np.linalg.inv(covariance(sigma_x, sigma_y, theta))
    d = offsets(kernel_size)
    return np.einsum('hwi,ij,hwj->hw', d, inverse, d)


def _normalized(kernel: np.ndarray) -> np.ndarray:
    return kernel / kernel.sum()


def bivariate_gaussian(kernel_size: int, sigma_x: float, sigma_y: float, theta: float,
                       isotropic: bool = True) -> np.ndarray:
    return _normalized(np.exp(-0.5 * _mahalanobis_sq(kernel_size, sigma_x, sigma_y, theta,
                                                     isotropic)))


def bivariate_generalized_gaussian(kernel_size: int, sigma_x: float, sigma_y: float,
                                   theta: float, beta: float, isotropic: bool = True
                                   ) -> np.ndarray:
    q = _mahalanobis_sq(kernel_size, sigma_x, sigma_y, theta, isotropic)
    return _normalized(np.exp(-0.5 * np.power(q, beta)))


def bivariate_plateau(kernel_size: int, sigma_x: float, sigma_y: float, theta: float,
                      beta: float, isotropic: bool = True) -> np.ndarray:
    q = _mahalanobis_sq(kernel_size, sigma_x, sigma_y, theta, isotropic)
    return _normalized(np.reciprocal(np.power(q, beta) + 1))


def circular_lowpass_kernel(cutoff: float, kernel_size: int, pad_to: int = 0) -> np.ndarray:
    """The 2-D sinc filter (ideal circular low-pass, ``cutoff`` in radians, pi = Nyquist),
    zero-padded to ``pad_to`` if that is larger."""
    if kernel_size % 2 == 0:
        raise ValueError(f'kernel_size must be odd; got {kernel_size}.')
    r = np.linalg.norm(offsets(kernel_size), axis=-1)
    centre = (kernel_size - 1) // 2
    r[centre, centre] = 1.0  # placeholder, replaced by the limit below
    kernel = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    kernel[centre, centre] = cutoff**2 / (4 * np.pi)
    kernel = _normalized(kernel)
    return pad_kernel(kernel, pad_to) if pad_to > kernel_size else kernel


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a centred odd kernel to ``size`` x ``size``."""
    pad = (size - kernel.shape[0]) // 2
    return np.pad(kernel, ((pad, pad), (pad, pad)))


# ---- random kernels (BasicSR's draw order) ------------------------------------------------------

def _random_shape(sigma_x_range: Sequence[float], sigma_y_range: Sequence[float],
                  rotation_range: Sequence[float], isotropic: bool
                  ) -> tuple[float, float, float]:
    sigma_x = np.random.uniform(sigma_x_range[0], sigma_x_range[1])
    if isotropic:
        return sigma_x, sigma_x, 0.0
    sigma_y = np.random.uniform(sigma_y_range[0], sigma_y_range[1])
    return sigma_x, sigma_y, np.random.uniform(rotation_range[0], rotation_range[1])


def _random_beta(beta_range: Sequence[float]) -> float:
    """Half of the draws below 1 and half above (shapes on both sides of the Gaussian)."""
    if np.random.uniform() < 0.5:
        return np.random.uniform(beta_range[0], 1)
    return np.random.uniform(1, beta_range[1])


def random_mixed_kernels(kernel_list: Sequence[str], kernel_prob: Sequence[float],
                         kernel_size: int = 21,
                         sigma_x_range: Sequence[float] = (0.6, 5),
                         sigma_y_range: Sequence[float] = (0.6, 5),
                         rotation_range: Sequence[float] = (-math.pi, math.pi),
                         betag_range: Sequence[float] = (0.5, 8),
                         betap_range: Sequence[float] = (0.5, 8)) -> np.ndarray:
    """A kernel of a type drawn from ``kernel_list`` with ``kernel_prob``, its parameters drawn
    uniformly from the ranges."""
    if kernel_size % 2 == 0:
        raise ValueError(f'kernel_size must be odd; got {kernel_size}.')
    kernel_type = random.choices(kernel_list, kernel_prob)[0]
    family, _, kind = kernel_type.rpartition('_')
    isotropic = kind == 'iso'
    if kernel_type not in KERNEL_TYPES:
        raise ValueError(f"Unknown kernel type '{kernel_type}'; expected one of "
                         f"{', '.join(KERNEL_TYPES)}.")
    shape = _random_shape(sigma_x_range, sigma_y_range, rotation_range, isotropic)
    if family == '':
        return bivariate_gaussian(kernel_size, *shape, isotropic=isotropic)
    if family == 'generalized':
        return bivariate_generalized_gaussian(kernel_size, *shape, _random_beta(betag_range),
                                              isotropic=isotropic)
    return bivariate_plateau(kernel_size, *shape, _random_beta(betap_range), isotropic=isotropic)


def random_blur_kernel(kernel_sizes: Sequence[int], sinc_prob: float, kernel_list: Sequence[str],
                       kernel_prob: Sequence[float], blur_sigma: Sequence[float],
                       betag_range: Sequence[float], betap_range: Sequence[float],
                       pad_to: int) -> np.ndarray:
    """One stage's blur: a size from ``kernel_sizes``; with ``sinc_prob`` a sinc (cutoff in
    [pi/3, pi] below size 13, [pi/5, pi] from 13), else a mixed kernel; padded to ``pad_to``."""
    kernel_size = random.choice(kernel_sizes)
    if np.random.uniform() < sinc_prob:
        low = np.pi / 3 if kernel_size < 13 else np.pi / 5
        kernel = circular_lowpass_kernel(np.random.uniform(low, np.pi), kernel_size)
    else:
        kernel = random_mixed_kernels(kernel_list, kernel_prob, kernel_size, blur_sigma,
                                      blur_sigma, (-math.pi, math.pi), betag_range, betap_range)
    return pad_kernel(kernel, pad_to)


def random_final_sinc(kernel_sizes: Sequence[int], final_sinc_prob: float,
                      pad_to: int) -> np.ndarray:
    """The final sinc filter with ``final_sinc_prob`` (cutoff in [pi/3, pi]), else a unit
    impulse (no filtering), ``pad_to`` x ``pad_to``."""
    if np.random.uniform() < final_sinc_prob:
        kernel_size = random.choice(kernel_sizes)
        return circular_lowpass_kernel(np.random.uniform(np.pi / 3, np.pi), kernel_size, pad_to)
    impulse = np.zeros((pad_to, pad_to))
    impulse[pad_to // 2, pad_to // 2] = 1.0
    return impulse
