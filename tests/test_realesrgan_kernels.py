"""Real-ESRGAN's blur kernels against their closed formulas, BasicSR's draw order, and the
checks of the dataset's kernel options."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import special

from basicsr_lite.data.degrade.kernels import (bivariate_gaussian, bivariate_generalized_gaussian,
                                               bivariate_plateau, circular_lowpass_kernel,
                                               random_blur_kernel, random_final_sinc,
                                               random_mixed_kernels)
from basicsr_lite.data.realesrgan_dataset import RealESRGANDataset


def formula_kernel(size: int, value) -> np.ndarray:
    """``value(x, y)`` at every pixel, x the column and y the row offset from the centre,
    normalised; written pixel by pixel, independent of the library's vectorised code."""
    c = (size - 1) / 2
    kernel = np.array([[value(j - c, i - c) for j in range(size)] for i in range(size)])
    return kernel / kernel.sum()


def quad_form(sx: float, sy: float, theta: float):
    """``d^T S^-1 d`` with S = R diag(sx^2, sy^2) R^T: in the rotated frame (u, v) the form is
    u^2 / sx^2 + v^2 / sy^2."""
    def q(x: float, y: float) -> float:
        u = math.cos(theta) * x + math.sin(theta) * y
        v = -math.sin(theta) * x + math.cos(theta) * y
        return u * u / sx**2 + v * v / sy**2
    return q


@pytest.mark.parametrize('sx,sy,theta', [(1.3, 1.3, 0.0), (2.5, 0.7, 0.6), (0.9, 3.0, -2.1)])
def test_gaussian_family_equals_its_formulas(sx, sy, theta):
    q = quad_form(sx, sy, theta)
    iso = sx == sy
    np.testing.assert_allclose(bivariate_gaussian(21, sx, sy, theta, isotropic=iso),
                               formula_kernel(21, lambda x, y: math.exp(-q(x, y) / 2)),
                               rtol=1e-10, atol=1e-15)
    for beta in (0.5, 1.0, 3.0):
        np.testing.assert_allclose(
            bivariate_generalized_gaussian(15, sx, sy, theta, beta, isotropic=iso),
            formula_kernel(15, lambda x, y: math.exp(-q(x, y) ** beta / 2)),
            rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(
            bivariate_plateau(15, sx, sy, theta, beta, isotropic=iso),
            formula_kernel(15, lambda x, y: 1 / (q(x, y) ** beta + 1)), rtol=1e-10, atol=1e-15)


def test_isotropic_ignores_sigma_y_and_theta():
    np.testing.assert_array_equal(bivariate_gaussian(11, 2.0, 0.3, 1.0, isotropic=True),
                                  bivariate_gaussian(11, 2.0, 2.0, 0.0, isotropic=False))


def test_generalized_gaussian_with_beta_1_is_the_gaussian():
    np.testing.assert_allclose(bivariate_generalized_gaussian(13, 2.0, 1.0, 0.4, 1.0, False),
                               bivariate_gaussian(13, 2.0, 1.0, 0.4, False), rtol=1e-12)


@pytest.mark.parametrize('cutoff,size', [(math.pi / 3, 7), (math.pi / 2, 13), (2.9, 21)])
def test_sinc_equals_its_formula_and_passes_low_frequencies(cutoff, size):
    def value(x, y):
        r = math.hypot(x, y)
        return cutoff**2 / (4 * math.pi) if r == 0 else cutoff * special.j1(cutoff * r) / (
            2 * math.pi * r)
    kernel = circular_lowpass_kernel(cutoff, size)
    np.testing.assert_allclose(kernel, formula_kernel(size, value), rtol=1e-10, atol=1e-15)
    assert kernel.sum() == pytest.approx(1.0)
    padded = circular_lowpass_kernel(cutoff, size, pad_to=21)
    assert padded.shape == (21, 21)
    np.testing.assert_array_equal(padded[(21 - size) // 2:(21 + size) // 2,
                                         (21 - size) // 2:(21 + size) // 2], kernel)
    # the response at DC is 1 and falls well below it beyond the cutoff
    response = np.abs(np.fft.fft2(padded, s=(128, 128)))
    beyond = int(np.ceil(128 * min(cutoff + 0.6, math.pi) / (2 * math.pi)))
    assert response[0, 0] == pytest.approx(1.0)
    if beyond < 64:
        assert response[beyond:64, 0].max() < 0.35


def test_random_mixed_kernels_draws_in_basicsrs_order():
    """Kernel type with random.choices, then sigma_x, sigma_y, rotation, the beta branch and
    beta with numpy's global RNG: the same RNG states give BasicSR's kernel."""
    ranges = dict(sigma_x_range=(0.2, 3), sigma_y_range=(0.2, 3),
                  rotation_range=(-math.pi, math.pi),
                  betag_range=(0.5, 4), betap_range=(1, 2))
    for seed in range(20):
        random.seed(seed)
        np.random.seed(seed)
        kernel = random_mixed_kernels(['iso', 'generalized_aniso', 'plateau_aniso'],
                                      [0.3, 0.4, 0.3], 21, **ranges)
        random.seed(seed)
        np.random.seed(seed)
        kind = random.choices(['iso', 'generalized_aniso', 'plateau_aniso'], [0.3, 0.4, 0.3])[0]
        sx = np.random.uniform(0.2, 3)
        if kind == 'iso':
            expected = bivariate_gaussian(21, sx, sx, 0, isotropic=True)
        else:
            sy, theta = np.random.uniform(0.2, 3), np.random.uniform(-math.pi, math.pi)
            low = np.random.uniform() < 0.5
            if kind == 'generalized_aniso':
                beta = np.random.uniform(0.5, 1) if low else np.random.uniform(1, 4)
                expected = bivariate_generalized_gaussian(21, sx, sy, theta, beta, False)
            else:
                beta = np.random.uniform(1, 1) if low else np.random.uniform(1, 2)
                expected = bivariate_plateau(21, sx, sy, theta, beta, False)
        np.testing.assert_array_equal(kernel, expected)


def test_stage_kernels_have_odd_sizes_padded_to_the_kernel_size():
    np.random.seed(0)
    random.seed(0)
    supports = set()
    for _ in range(200):
        kernel = random_blur_kernel([7, 9, 11], 0.3, ['iso', 'aniso'], [0.5, 0.5], (0.2, 3),
                                    (0.5, 4), (1, 2), pad_to=15)
        assert kernel.shape == (15, 15) and kernel.sum() == pytest.approx(1.0)
        nonzero = np.nonzero(kernel.any(axis=0))[0]
        supports.add(int(nonzero[-1] - nonzero[0] + 1))
    assert supports == {7, 9, 11}
    impulse = random_final_sinc([7], final_sinc_prob=0.0, pad_to=21)
    assert impulse[10, 10] == 1 and impulse.sum() == 1


def problems(**options) -> dict[str, str]:
    return dict(RealESRGANDataset.option_problems(options))


def test_kernel_options_are_checked_with_their_key():
    found = problems(blur_kernel_size=20, kernel_prob=[0.5, 0.6], kernel_list=['iso', 'aniso'],
                     blur_sigma2=[3, 0.2], sinc_prob=1.5, kernel_list2=['iso', 'gaussian'],
                     final_sinc_prob=-0.1, gt_size=512, crop_pad_size=400)
    assert found['blur_kernel_size'] == 'must be an odd integer >= 3; got 20.'
    assert found['kernel_prob'] == 'probabilities must sum to 1; [0.5, 0.6] sums to 1.1.'
    assert found['blur_sigma2'] == 'min > max in [3, 0.2].'
    assert found['sinc_prob'] == 'must be a probability in [0, 1]; got 1.5.'
    assert "unknown entries ['gaussian']" in found['kernel_list2']
    assert found['final_sinc_prob'] == 'must be a probability in [0, 1]; got -0.1.'
    assert 'larger than crop_pad_size 400' in found['gt_size']
    assert problems(kernel_prob2=[0.5, 0.5])['kernel_prob2'] == \
        'has 2 probabilities for the 6 kernels of kernel_list2.'
    assert problems() == {}
