import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr_lite.data.transforms import mod_crop
from basicsr_lite.metrics import (calculate_metric, calculate_psnr, calculate_psnr_pt,
                                  calculate_ssim, calculate_ssim_pt)
from basicsr_lite.utils.img_util import img2tensor

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'data'


def random_pair(seed=0, shape=(40, 36, 3)):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, shape).astype(np.uint8)
    noisy = np.clip(img.astype(int) + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)
    return img, noisy


def test_identical_images():
    img, _ = random_pair()
    assert calculate_psnr(img, img, 0) == math.inf
    assert calculate_ssim(img, img, 4) == pytest.approx(1.0, abs=1e-12)
    t = img2tensor(img.astype(np.float32) / 255)[None]
    assert torch.isinf(calculate_psnr_pt(t, t, 0)).all()
    assert calculate_ssim_pt(t, t, 0).item() == pytest.approx(1.0, abs=1e-12)


def test_psnr_constant_difference_by_hand():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = np.full((8, 8, 3), 110, np.uint8)
    assert calculate_psnr(a, b, 0) == pytest.approx(10 * math.log10(255**2 / 100))
    # Y of BGR (100,100,100) vs (110,...): difference (65.481 + 128.553 + 24.966) * 10 / 255
    dy = 219.0 * 10 / 255
    assert calculate_psnr(a, b, 2, test_y_channel=True) == pytest.approx(
        10 * math.log10(255**2 / dy**2))


def test_crop_border_ignores_edges():
    a = np.full((10, 10, 3), 50, np.uint8)
    b = a.copy()
    b[0, :] = 0
    assert calculate_psnr(a, b, 1) == math.inf
    assert calculate_psnr(a, b, 0) < 40


def test_ssim_of_constant_images_by_hand():
    # Constant images: means a, b and zero variance -> (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 100.0, 120.0
    c1 = (0.01 * 255)**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    img_a = np.full((20, 20, 1), a, np.uint8)
    img_b = np.full((20, 20, 1), b, np.uint8)
    assert calculate_ssim(img_a, img_b, 0) == pytest.approx(expected, abs=1e-9)


def test_y_channel_of_pure_colours():
    # BT.601: Y = 16 + 65.481 R + 128.553 G + 24.966 B (RGB in [0, 1]).
    from basicsr_lite.utils.img_util import bgr2y, rgb2y
    bgr = np.array([[[0, 0, 255], [0, 255, 0], [255, 0, 0]]], np.uint8)
    np.testing.assert_allclose(bgr2y(bgr)[0], [16 + 65.481, 16 + 128.553, 16 + 24.966])
    rgb = torch.eye(3).view(3, 1, 3)  # pixel i is the pure colour i
    np.testing.assert_allclose(rgb2y(rgb).flatten().numpy() * 255,
                               [16 + 65.481, 16 + 128.553, 16 + 24.966], rtol=1e-6)


@pytest.mark.parametrize('crop,y', [(0, False), (4, False), (4, True)])
def test_numpy_and_torch_agree(crop, y):
    pairs = [random_pair(seed) for seed in range(3)]
    batch_a = torch.stack([img2tensor(a.astype(np.float32) / 255) for a, _ in pairs])
    batch_b = torch.stack([img2tensor(b.astype(np.float32) / 255) for _, b in pairs])
    psnr_pt = calculate_psnr_pt(batch_a, batch_b, crop, test_y_channel=y)
    ssim_pt = calculate_ssim_pt(batch_a, batch_b, crop, test_y_channel=y)
    assert psnr_pt.shape == (3,)
    for i, (a, b) in enumerate(pairs):
        assert abs(psnr_pt[i].item() - calculate_psnr(a, b, crop, test_y_channel=y)) < 1e-4
        assert abs(ssim_pt[i].item() - calculate_ssim(a, b, crop, test_y_channel=y)) < 1e-6


def test_shape_mismatch_and_small_images():
    with pytest.raises(ValueError, match='shapes differ'):
        calculate_psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)), 0)
    with pytest.raises(ValueError, match='at least 11x11'):
        calculate_ssim(np.zeros((12, 12, 3)), np.zeros((12, 12, 3)), 1)


def test_calculate_metric_from_options():
    a, b = random_pair()
    opt = {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True, 'better': 'higher'}
    assert calculate_metric({'img': a, 'img2': b}, opt) == calculate_psnr(a, b, 2,
                                                                         test_y_channel=True)


@pytest.mark.reproduction
@pytest.mark.skipif(not SHARED.is_dir(), reason='../shared/data is absent')
def test_matches_rcan_matlab_results():
    ref = (SHARED / 'reference' / 'RCAN_Set5' / 'PSNR_SSIM_Results_BI_model.txt').read_text()
    rows = re.findall(r'x(\d) \d+ (\w+)_RCAN_x\d\.png: PSNR= ([\d.]+) SSIM= ([\d.]+)',
                      ref.split('Method_2')[0])
    assert len(rows) >= 15
    for scale, name, psnr, ssim in rows:
        scale = int(scale)
        sr_path = next((SHARED / 'reference' / 'RCAN_Set5' / 'RCAN').rglob(
            f'{name}_RCAN_x{scale}.png'))
        sr = cv2.imread(str(sr_path))
        hr = mod_crop(cv2.imread(str(SHARED / 'Set5' / 'HR' / f'{name}.png')), scale)
        assert calculate_psnr(sr, hr, scale, test_y_channel=True) == pytest.approx(
            float(psnr), abs=1e-4)
        assert calculate_ssim(sr, hr, scale, test_y_channel=True) == pytest.approx(
            float(ssim), abs=1e-4)


@pytest.mark.parametrize('y', [False, True])
def test_validation_scores_on_tensors_equal_the_numpy_metrics(y):
    """val.tensor_metrics (default): PSNR / SSIM in torch on the model's device give the values
    of BasicSR's numpy functions on the uint8 images, to 1e-9."""
    from basicsr_lite.engine.validate import image_metrics
    generator = torch.Generator().manual_seed(1)
    gt = torch.randint(0, 256, (1, 3, 40, 36), generator=generator).float() / 255
    result = (gt + 0.08 * torch.randn(gt.shape, generator=generator)).float()  # not 8-bit
    metrics = {'psnr': {'type': 'calculate_psnr', 'crop_border': 3, 'test_y_channel': y,
                        'input_order': 'HWC'},
               'ssim': {'type': 'calculate_ssim', 'crop_border': 3, 'test_y_channel': y}}
    on_tensors = image_metrics(result, gt, metrics, on_tensors=True)
    on_numpy = image_metrics(result, gt, metrics, on_tensors=False)
    for name in metrics:
        assert on_tensors[name] == pytest.approx(on_numpy[name], abs=1e-9, rel=0)
    assert 20 < on_numpy['psnr'] < 40 and 0.1 < on_numpy['ssim'] < 0.99
