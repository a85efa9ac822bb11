import numpy as np
import pytest
import torch

from basicsr_lite.data.degrade.imresize import contributions, cubic, imresize, imresize_pt


def test_cubic_kernel_values_by_hand():
    # a = -0.5: 1.5|x|^3 - 2.5|x|^2 + 1 on [0, 1]; -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 on (1, 2].
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5])
    np.testing.assert_allclose(cubic(x), [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625])


def test_contributions_sum_to_one_and_stay_in_range():
    for in_len, scale in ((10, 0.25), (7, 3), (33, 0.5), (5, 1 / 3)):
        out_len = int(np.ceil(in_len * scale))
        weights, indices = contributions(in_len, out_len, scale)
        np.testing.assert_allclose(weights.sum(1), 1.0)
        assert indices.min() >= 0 and indices.max() < in_len


def test_antialiasing_widens_kernel_when_downscaling():
    w_aa, _ = contributions(40, 10, 0.25, antialiasing=True)
    w_plain, _ = contributions(40, 10, 0.25, antialiasing=False)
    assert w_aa.shape[1] > w_plain.shape[1]


def test_linear_ramp_interior_by_hand():
    # Output pixel j of a 1/2 downscale is centred at input coordinate 2j + 0.5 (0-based); a
    # symmetric kernel reproduces a linear ramp exactly away from the borders.
    ramp = np.tile(np.arange(64, dtype=np.float64), (4, 1))
    out = imresize(ramp, 0.5)
    np.testing.assert_allclose(out[0, 3:-3], 2 * np.arange(32)[3:-3] + 0.5, atol=1e-12)


def test_constant_image_stays_constant_and_types():
    img = np.full((9, 13, 3), 77, np.uint8)
    for scale in (0.25, 0.5, 2, 3):
        out = imresize(img, scale)
        assert out.dtype == np.uint8 and (out == 77).all()
        assert out.shape[:2] == (int(np.ceil(9 * scale)), int(np.ceil(13 * scale)))
    assert imresize(img.astype(np.float32), 0.5).dtype == np.float64


@pytest.mark.parametrize('scale', [0.25, 1 / 3, 0.5, 2, 3, 4, 0.37])
def test_torch_equals_numpy(scale):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (29, 41, 3), dtype=np.uint8)
    chw = torch.from_numpy(img).permute(2, 0, 1)
    np.testing.assert_array_equal(imresize_pt(chw, scale).permute(1, 2, 0).numpy(),
                                  imresize(img, scale))
    batch = chw[None].double() / 255
    np.testing.assert_allclose(imresize_pt(batch, scale)[0].permute(1, 2, 0).numpy(),
                               imresize(img.astype(np.float64) / 255, scale), atol=1e-12)


def test_output_shape_argument():
    img = np.zeros((10, 20), np.uint8)
    assert imresize(img, 0, output_shape=(5, 7)).shape == (5, 7)
    assert imresize_pt(torch.zeros(1, 10, 20), 0, output_shape=(5, 7)).shape == (1, 5, 7)
