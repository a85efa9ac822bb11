"""Full BT.601 YCbCr conversion of numpy images (utils/color_util.py) against BasicSR's
formulas (basicsr/utils/color_util.py; the coefficients are MATLAB's rgb2ycbcr / ycbcr2rgb),
written out here per channel: uint8 and float [0, 1] handling, Y-only, BGR orders, round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from basicsr_lite.utils.color_util import (bgr2ycbcr, rgb2ycbcr, rgb2ycbcr_pt, ycbcr2bgr,
                                           ycbcr2rgb)
from basicsr_lite.utils.img_util import bgr2y


def basicsr_ycbcr(rgb255: np.ndarray) -> np.ndarray:
    """BasicSR / MATLAB: Y = 16 + (65.481 R + 128.553 G + 24.966 B), Cb = 128 + (-37.797 R
    - 74.203 G + 112 B), Cr = 128 + (112 R - 93.786 G - 18.214 B), R, G, B in [0, 1]."""
    r, g, b = (rgb255[..., i].astype(np.float64) / 255 for i in range(3))
    return np.stack([16 + 65.481 * r + 128.553 * g + 24.966 * b,
                     128 - 37.797 * r - 74.203 * g + 112.0 * b,
                     128 + 112.0 * r - 93.786 * g - 18.214 * b], axis=-1)


def basicsr_rgb(ycc255: np.ndarray) -> np.ndarray:
    """BasicSR / MATLAB ycbcr2rgb: R = 255 * 0.00456621 Y + 255 * 0.00625893 Cr - 222.921,
    G = 255 * (0.00456621 Y - 0.00153632 Cb - 0.00318811 Cr) + 135.576,
    B = 255 * (0.00456621 Y + 0.00791071 Cb) - 276.836 (Y, Cb, Cr in [0, 255])."""
    y, cb, cr = (ycc255[..., i].astype(np.float64) for i in range(3))
    return np.stack([255 * (0.00456621 * y + 0.00625893 * cr) - 222.921,
                     255 * (0.00456621 * y - 0.00153632 * cb - 0.00318811 * cr) + 135.576,
                     255 * (0.00456621 * y + 0.00791071 * cb) - 276.836], axis=-1)


@pytest.fixture
def rgb8() -> np.ndarray:
    img = np.random.default_rng(0).integers(0, 256, (17, 13, 3), dtype=np.uint8)
    img[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                  [255, 255, 0], [0, 255, 255], [255, 0, 255]]  # the gamut's corners
    return img


def test_uint8_images_give_basicsrs_rounded_values(rgb8):
    expected = basicsr_ycbcr(rgb8)
    out = rgb2ycbcr(rgb8)
    assert out.dtype == np.uint8 and out.shape == rgb8.shape
    assert np.abs(out.astype(np.float64) - expected).max() <= 0.5 + 1e-4  # rounded
    assert np.array_equal(bgr2ycbcr(rgb8[..., ::-1].copy()), out)
    y = rgb2ycbcr(rgb8, y_only=True)
    assert y.shape == rgb8.shape[:2] and np.array_equal(y, out[..., 0])
    assert np.array_equal(bgr2ycbcr(rgb8[..., ::-1].copy(), y_only=True), y)
    assert list(out[0, 0]) == [16, 128, 128] and list(out[0, 1]) == [235, 128, 128]


def test_float_images_are_in_0_1_and_equal_the_formula(rgb8):
    rgb = rgb8.astype(np.float32) / 255
    out = rgb2ycbcr(rgb)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out * 255, basicsr_ycbcr(rgb8), atol=2e-4)
    np.testing.assert_allclose(bgr2ycbcr(rgb[..., ::-1].copy(), y_only=True) * 255,
                               basicsr_ycbcr(rgb8)[..., 0], atol=2e-4)
    # the Y of the metrics (img_util.bgr2y, float64) is the same Y
    np.testing.assert_allclose(bgr2ycbcr(rgb[..., ::-1].copy(), y_only=True) * 255,
                               bgr2y(rgb8[..., ::-1]), atol=2e-4)
    out64 = rgb2ycbcr(rgb.astype(np.float64))
    assert out64.dtype == np.float64
    np.testing.assert_allclose(out64 * 255, basicsr_ycbcr(rgb8), atol=1e-4)


def test_inverse_equals_matlabs_ycbcr2rgb(rgb8):
    ycc = np.random.default_rng(1).integers(16, 236, (9, 7, 3), dtype=np.uint8)
    expected = basicsr_rgb(ycc)
    out = ycbcr2rgb(ycc.astype(np.float32) / 255)
    np.testing.assert_allclose(out * 255, expected, atol=1e-4)
    np.testing.assert_array_equal(ycbcr2bgr(ycc.astype(np.float32) / 255), out[..., ::-1])
    out8 = ycbcr2rgb(ycc)
    assert out8.dtype == np.uint8
    assert np.array_equal(out8, np.clip(np.round(expected), 0, 255))  # clipped, not wrapped
    assert np.array_equal(ycbcr2bgr(ycc), out8[..., ::-1])


def test_round_trip_is_within_one_level(rgb8):
    bgr = rgb8[..., ::-1].copy()
    back = ycbcr2bgr(bgr2ycbcr(bgr.astype(np.float32) / 255))
    assert np.abs(back - bgr / 255).max() <= 1 / 255
    back8 = ycbcr2bgr(bgr2ycbcr(bgr))  # through 8-bit YCbCr
    assert np.abs(back8.astype(int) - bgr).max() <= 2  # 8-bit YCbCr loses up to ~1 level
    rgb_back = ycbcr2rgb(rgb2ycbcr(rgb8.astype(np.float32) / 255))
    assert np.abs(rgb_back - rgb8 / 255).max() <= 1 / 255


def test_torch_form_equals_the_numpy_form(rgb8):
    rgb = rgb8.astype(np.float32) / 255
    batch = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    full = rgb2ycbcr_pt(batch)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(full, rgb2ycbcr(rgb), atol=1e-6)
    y = rgb2ycbcr_pt(batch, y_only=True)
    assert y.shape == (1, 1, 17, 13)
    np.testing.assert_allclose(y[0, 0].numpy(), rgb2ycbcr(rgb, y_only=True), atol=1e-6)


def test_other_types_are_rejected():
    with pytest.raises(TypeError, match='uint8 in \\[0, 255\\] or float32'):
        rgb2ycbcr(np.zeros((2, 2, 3), dtype=np.uint16))
