"""The SSIM / MS-SSIM core (utils/ssim_util.py), its losses and the MS-SSIM metric against
pytorch-msssim (a test-only dependency, ``pip install -e ".[dev]"``) on real images: the repo's
demo images, blurred and noised."""
import importlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr_lite.losses import build_loss
from basicsr_lite.metrics import calculate_metric, calculate_ssim
from basicsr_lite.metrics.ms_ssim_metric import calculate_ms_ssim, calculate_ms_ssim_pt
from basicsr_lite.registry import METRIC_REGISTRY
from basicsr_lite.utils.img_util import bgr2y
from basicsr_lite.utils.ssim_util import (MS_SSIM_WEIGHTS, gaussian_taps, ms_ssim_levels,
                                          ms_ssim_per_channel, ssim_per_channel)

pm = pytest.importorskip('pytorch_msssim', reason='pytorch-msssim is a dev extra: '
                         'pip install -e ".[dev]"')
pm_core = importlib.import_module('pytorch_msssim.ssim')  # its single-scale _ssim

DEMO = Path(__file__).resolve().parents[1] / 'datasets' / 'demo'
IMAGES = ['val_HR/coffee.png', 'val_HR/hubble_deep_field.png', 'train_HR/astronaut.png']


def degraded_pair(name: str, crop: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(reference, blurred + noised) uint8 BGR images from the demo folder."""
    img = cv2.imread(str(DEMO / name))
    assert img is not None, f'missing demo image {name}'
    if crop is not None:
        img = img[:crop[0], :crop[1]]
    noise = np.random.default_rng(len(name)).normal(0, 6, img.shape)
    bad = cv2.GaussianBlur(img.astype(np.float64), (5, 5), 1.0) + noise
    return img, np.clip(bad, 0, 255).round().astype(np.uint8)


def as_tensor(img: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    """uint8 BGR -> (1, 3, H, W) RGB in [0, 1]."""
    rgb = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))
    return (torch.from_numpy(rgb).to(torch.float64) / 255)[None].to(dtype)


def reference_window() -> torch.Tensor:
    """Our float64 taps in pytorch-msssim's window layout (its own are float32)."""
    return gaussian_taps().view(1, 1, 1, -1).repeat(3, 1, 1, 1)


@pytest.mark.parametrize('name', [pytest.param(n, marks=() if i == 0 else pytest.mark.slow)
                                  for i, n in enumerate(IMAGES)])
def test_ms_ssim_and_ssim_equal_pytorch_msssim(name):
    gt, bad = degraded_pair(name, crop=(288, 320))  # at most 288 x 320: fast
    x, y = as_tensor(bad), as_tensor(gt)
    ours_ms = ms_ssim_per_channel(x, y).mean().item()
    ours = ssim_per_channel(x, y).mean().item()
    # with its own float32 window: 1e-5; with the same float64 window: to rounding
    assert ours_ms == pytest.approx(pm.ms_ssim(x, y, data_range=1.0).item(), abs=1e-5)
    assert ours == pytest.approx(pm.ssim(x, y, data_range=1.0).item(), abs=1e-5)
    win = reference_window()
    assert ours_ms == pytest.approx(pm.ms_ssim(x, y, data_range=1.0, win=win).item(), abs=1e-12)
    assert ours == pytest.approx(pm.ssim(x, y, data_range=1.0, win=win).item(), abs=1e-12)
    assert 0.5 < ours_ms < 1.0  # a real, not a degenerate, comparison


def test_odd_sizes_pool_like_pytorch_msssim():
    # 201 x 247: odd sides at several scales exercise the zero-padded average pool
    gt, bad = degraded_pair(IMAGES[2], crop=(201, 247))
    x, y = as_tensor(bad), as_tensor(gt)
    expected = pm.ms_ssim(x, y, data_range=1.0, win=reference_window()).item()
    assert ms_ssim_per_channel(x, y).mean().item() == pytest.approx(expected, abs=1e-12)


def test_losses_equal_one_minus_pytorch_msssim_in_float32():
    gt, bad = degraded_pair(IMAGES[0])
    x = torch.cat([as_tensor(bad, torch.float32), as_tensor(gt, torch.float32)])
    y = torch.cat([as_tensor(gt, torch.float32), as_tensor(bad, torch.float32)])
    ms = pm.ms_ssim(x, y, data_range=1.0).item()
    ss = pm.ssim(x, y, data_range=1.0).item()
    assert build_loss({'type': 'MSSSIMLoss'})(x, y).item() == pytest.approx(1 - ms, abs=1e-5)
    assert build_loss({'type': 'SSIMLoss'})(x, y).item() == pytest.approx(1 - ss, abs=1e-5)
    per_image = build_loss({'type': 'MSSSIMLoss', 'reduction': 'none'})(x, y)
    assert per_image.shape == (2,)
    expected = 1 - pm.ms_ssim(x, y, data_range=1.0, size_average=False)
    assert torch.allclose(per_image, expected, atol=1e-5)


def test_data_range_255():
    gt, bad = degraded_pair(IMAGES[1])
    x, y = as_tensor(bad) * 255, as_tensor(gt) * 255
    loss = build_loss({'type': 'MSSSIMLoss', 'data_range': 255.0})(x, y).item()
    assert loss == pytest.approx(1 - pm.ms_ssim(x, y, data_range=255).item(), abs=1e-5)


def test_identical_images_give_zero_loss_and_score_one():
    gt, _ = degraded_pair(IMAGES[0])
    x = as_tensor(gt, torch.float32)
    for name in ('SSIMLoss', 'MSSSIMLoss', 'MSSSIML1Loss'):
        assert build_loss({'type': name})(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert calculate_ms_ssim(gt, gt, 0) == pytest.approx(1.0, abs=1e-12)


def test_numpy_metric_equals_pytorch_msssim_on_the_y_channel():
    gt, bad = degraded_pair(IMAGES[0])
    value = calculate_ms_ssim(bad, gt, crop_border=4, test_y_channel=True)
    y_bad = torch.from_numpy(bgr2y(bad)[4:-4, 4:-4])[None, None]
    y_gt = torch.from_numpy(bgr2y(gt)[4:-4, 4:-4])[None, None]
    win = gaussian_taps().view(1, 1, 1, -1)
    assert value == pytest.approx(pm.ms_ssim(y_bad, y_gt, data_range=255, win=win).item(),
                                  abs=1e-12)


@pytest.mark.parametrize('crop_border,test_y_channel', [(0, False), (4, True)])
def test_numpy_and_torch_forms_agree(crop_border, test_y_channel):
    gt, bad = degraded_pair(IMAGES[1])
    numpy_value = calculate_ms_ssim(bad, gt, crop_border, test_y_channel=test_y_channel)
    torch_value = calculate_ms_ssim_pt(as_tensor(bad), as_tensor(gt), crop_border,
                                       test_y_channel=test_y_channel)
    assert torch_value.shape == (1,)
    assert torch_value.item() == pytest.approx(numpy_value, abs=1e-10)


def test_metric_is_registered_and_called_by_option():
    gt, bad = degraded_pair(IMAGES[1])
    assert 'calculate_ms_ssim' in METRIC_REGISTRY and 'calculate_ms_ssim_pt' in METRIC_REGISTRY
    assert calculate_ms_ssim_pt.takes_tensors
    opt = {'type': 'calculate_ms_ssim', 'crop_border': 4, 'test_y_channel': True}
    assert calculate_metric({'img': bad, 'img2': gt}, opt) == \
        calculate_ms_ssim(bad, gt, 4, test_y_channel=True)
    # MS-SSIM is above SSIM on a blurred image (its coarse scales are barely hurt)
    assert calculate_ms_ssim(bad, gt, 4, test_y_channel=True) > \
        calculate_ssim(bad, gt, 4, test_y_channel=True)


def test_small_images_use_fewer_scales_with_renormalised_weights():
    """64 x 64: scales 64, 32, 16 (8 < the 11-pixel window); the first three weights, divided by
    their sum; each scale's factor from pytorch-msssim's own single-scale SSIM."""
    assert [ms_ssim_levels(s, s) for s in (10, 11, 20, 21, 43, 87, 160, 161, 1000)] == \
        [0, 1, 1, 2, 3, 4, 4, 5, 5]
    gt, bad = degraded_pair(IMAGES[0], crop=(64, 64))
    x, y = as_tensor(bad), as_tensor(gt)
    win = reference_window()
    weights = torch.tensor(MS_SSIM_WEIGHTS[:3], dtype=torch.float64)
    weights = weights / weights.sum()
    expected = torch.ones(1, 3, dtype=torch.float64)
    for level in range(3):
        ssim, cs = pm_core._ssim(x, y, data_range=1.0, win=win)
        expected = expected * (ssim if level == 2 else cs).clamp(min=0)**weights[level]
        x, y = torch.nn.functional.avg_pool2d(x, 2), torch.nn.functional.avg_pool2d(y, 2)
    x, y = as_tensor(bad), as_tensor(gt)
    assert torch.allclose(ms_ssim_per_channel(x, y), expected, atol=1e-12)


def test_images_smaller_than_the_window_are_refused():
    x = torch.rand(1, 3, 10, 40)
    with pytest.raises(ValueError, match='at least 11x11'):
        ms_ssim_per_channel(x, x)
    with pytest.raises(ValueError, match='at least 11x11'):
        build_loss({'type': 'SSIMLoss'})(x, x)


def test_ms_ssim_gradient_is_finite_even_where_a_scale_is_clipped_to_zero():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 64, 64, dtype=torch.float64, requires_grad=True)
    value = ms_ssim_per_channel(x, 1 - x.detach())  # anti-correlated: cs < 0, clipped to 0
    value.sum().backward()
    assert value.item() == 0.0
    assert torch.isfinite(x.grad).all()


def test_loss_runs_in_float32_on_half_inputs():
    gt, bad = degraded_pair(IMAGES[0], crop=(64, 64))
    x, y = as_tensor(bad, torch.float16), as_tensor(gt, torch.float16)
    loss = build_loss({'type': 'MSSSIMLoss'})(x, y)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(
        build_loss({'type': 'MSSSIMLoss'})(x.float(), y.float()).item(), abs=1e-6)


@pytest.mark.parametrize('name', ['SSIMLoss', 'MSSSIMLoss', 'MSSSIML1Loss'])
def test_losses_leave_autocast_for_float32(name):
    """Under bf16 autocast the Gaussian filtering would run in bf16 (measured: 1 - MS-SSIM off by
    38% on 96 x 96 patches); the losses switch it off and equal their float32 value."""
    gt, bad = degraded_pair(IMAGES[0], crop=(96, 96))
    x, y = as_tensor(bad, torch.float32), as_tensor(gt, torch.float32)
    loss = build_loss({'type': name})
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(x, y)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(loss(x, y).item(), rel=1e-6)
