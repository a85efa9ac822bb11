import numpy as np
import pytest
import torch

from basicsr_lite.data import build_dataset
from basicsr_lite.data.degradations import add_gaussian_noise, degrade, gaussian_blur, jpeg_compress
from basicsr_lite.data.imresize import imresize
from basicsr_lite.data.sample_wrappers import SeededSamples
from basicsr_lite.train import main as train_main
from basicsr_lite.utils.img_util import tensor2img
from basicsr_lite.utils.synthetic import smooth_image
from tests.conftest import write_yaml


@pytest.fixture
def img():
    return smooth_image(np.random.default_rng(0), 64, 64)


def test_degrade_without_options_is_matlab_bicubic(img):
    np.testing.assert_array_equal(degrade(img, 4, np.random.default_rng(0)), imresize(img, 0.25))


def test_each_degradation_does_its_job(img):
    noisy_src = np.random.default_rng(1).integers(0, 256, img.shape, np.uint8)
    assert gaussian_blur(noisy_src, 2.0).astype(float).var() < noisy_src.astype(float).var() / 4
    flat = np.full((64, 64, 3), 128, np.uint8)
    noise = add_gaussian_noise(flat, 10.0, np.random.default_rng(2)).astype(float) - 128
    assert abs(noise.std() - 10.0) < 0.5
    compressed = jpeg_compress(noisy_src, 10)
    assert compressed.shape == noisy_src.shape and not np.array_equal(compressed, noisy_src)


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


def test_dataset_val_is_fixed_per_image(tiny_data):
    dataset = build_dataset(dataset_opt(tiny_data['val_gt'], noise_prob=1.0), 'val', 2)
    assert torch.equal(dataset[1]['lq'], dataset[1]['lq'])
    assert dataset[1]['gt'].shape == (3, 32, 40) and dataset[1]['lq'].shape == (3, 16, 20)


def test_training_with_on_the_fly_degradation(tiny_opt, tmp_path):
    tiny_opt['datasets']['train'] = {
        'type': 'DegradationDataset', 'dataroot_gt': tiny_opt['datasets']['train']['dataroot_gt'],
        'gt_size': 16, 'use_hflip': True, 'blur_prob': 0.5, 'blur_sigma': [0.5, 1.5],
        'noise_prob': 0.5, 'noise_sigma': [1, 10], 'jpeg_prob': 0.5, 'jpeg_quality': [50, 90],
        'batch_size_per_gpu': 2, 'num_worker_per_gpu': 1}
    tiny_opt['train']['total_iter'] = 4
    assert train_main(['-opt', str(write_yaml(tmp_path / 'opt.yml', tiny_opt))]) == 0
