import numpy as np
import pytest
import torch

from basicsr_lite.data import build_dataset
from basicsr_lite.data.degrade.degradations import (add_gaussian_noise, degrade, gaussian_blur,
                                                    jpeg_compress)
from basicsr_lite.data.degrade.imresize import imresize
from basicsr_lite.data.loading.sample_wrappers import SeededSamples
from basicsr_lite.prep.synthetic import smooth_image
from basicsr_lite.train import main as train_main
from basicsr_lite.utils.img_util import tensor2img
from tests.conftest import write_yaml


@pytest.fixture
def img():
    return smooth_image(np.random.default_rng(0), 64, 64)


def test_degrade_without_options_is_matlab_bicubic(img):
    np.testing.assert_array_equal(degrade(img, 4, np.random.default_rng(0)), imresize(img, 0.25))


def test_gaussian_blur_of_an_impulse_is_the_gaussian_kernel():
    sigma = 1.5
    impulse = np.zeros((31, 31), np.float32)
    impulse[15, 15] = 1.0
    out = gaussian_blur(impulse, sigma)
    radius = int(np.ceil(3 * sigma))
    g = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma**2))
    kernel = np.outer(g, g) / g.sum() ** 2
    np.testing.assert_allclose(out[15 - radius:16 + radius, 15 - radius:16 + radius], kernel,
                               atol=1e-7)
    assert np.abs(out).sum() == pytest.approx(1.0, abs=1e-6)


def test_gaussian_noise_is_exactly_the_drawn_noise():
    flat = np.full((64, 64, 3), 128, np.uint8)
    noisy = add_gaussian_noise(flat, 10.0, np.random.default_rng(2))
    drawn = np.random.default_rng(2).normal(0.0, 10.0, flat.shape).astype(np.float32)
    np.testing.assert_array_equal(noisy, np.clip(np.round(128 + drawn), 0, 255).astype(np.uint8))
    assert 9.5 < (noisy.astype(float) - 128).std() < 10.5


def test_jpeg_quality_orders_the_error():
    src = smooth_image(np.random.default_rng(1), 64, 64)
    errors = [np.abs(jpeg_compress(src, q).astype(float) - src).mean() for q in (10, 50, 95)]
    assert errors[0] > errors[1] > errors[2] > 0


def test_degrade_is_deterministic_in_its_rng(img):
    kwargs = dict(blur_prob=1.0, noise_prob=1.0, jpeg_prob=1.0)
    a = degrade(img, 2, np.random.default_rng(5), **kwargs)
    b = degrade(img, 2, np.random.default_rng(5), **kwargs)
    c = degrade(img, 2, np.random.default_rng(6), **kwargs)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def dataset_opt(folder, **extra):
    return {'type': 'DegradationDataset', 'dataroot_gt': str(folder), **extra}


def test_dataset_train_lq_is_bicubic_of_gt_patch(tiny_data):
    dataset = SeededSamples(build_dataset(dataset_opt(tiny_data['train_gt'], gt_size=16), 'train',
                                          2))
    item = dataset[(0, 7)]
    assert item['gt'].shape == (3, 16, 16) and item['lq'].shape == (3, 8, 8)
    np.testing.assert_array_equal(tensor2img(item['lq']), imresize(tensor2img(item['gt']), 0.5))
    again = dataset[(0, 7)]
    assert torch.equal(item['lq'], again['lq']) and torch.equal(item['gt'], again['gt'])


def test_dataset_val_noise_prob_1_adds_the_drawn_noise(tiny_data):
    """Val images are degraded with the rng seeded by their index: with noise_prob 1 the LQ is
    MATLAB bicubic of the GT plus exactly the noise that rng draws."""
    dataset = build_dataset(dataset_opt(tiny_data['val_gt'], noise_prob=1.0), 'val', 2)
    item = dataset[1]
    assert item['gt'].shape == (3, 32, 40) and item['lq'].shape == (3, 16, 20)
    bicubic = imresize(tensor2img(item['gt']), 0.5)
    rng = np.random.default_rng(1)
    rng.random()  # the blur draw (blur_prob 0: no blur)
    assert rng.random() < 1.0
    sigma = rng.uniform(1.0, 25.0)
    noise = rng.normal(0.0, sigma, bicubic.shape).astype(np.float32)
    expected = np.clip(np.round(bicubic.astype(np.float32) + noise), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(tensor2img(item['lq']), expected)
    assert np.abs(expected.astype(int) - bicubic).mean() > 0.5  # visibly noisy
    assert torch.equal(dataset[1]['lq'], item['lq'])


def test_training_with_on_the_fly_degradation(tiny_opt, tmp_path):
    tiny_opt['datasets']['train'] = {
        'type': 'DegradationDataset', 'dataroot_gt': tiny_opt['datasets']['train']['dataroot_gt'],
        'gt_size': 16, 'use_hflip': True, 'blur_prob': 0.5, 'blur_sigma': [0.5, 1.5],
        'noise_prob': 0.5, 'noise_sigma': [1, 10], 'jpeg_prob': 0.5, 'jpeg_quality': [50, 90],
        'batch_size_per_gpu': 2, 'num_worker_per_gpu': 1}
    tiny_opt['train']['total_iter'] = 4
    assert train_main(['-opt', str(write_yaml(tmp_path / 'opt.yml', tiny_opt))]) == 0
