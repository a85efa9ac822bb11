"""Shared fixtures: tiny generated LQ/GT datasets and option files for tiny networks."""
from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from basicsr_lite.data.imresize import imresize
from basicsr_lite.utils.img_util import imwrite

SCALE = 2


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random uint8 BGR image (upscaled noise), closer to photos than white noise."""
    small = rng.integers(0, 256, size=(max(h // 8, 2), max(w // 8, 2), 3)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0, 255).astype(np.uint8)


def make_paired_folder(root: Path, names: list[str], size: tuple[int, int], scale: int = SCALE,
                       seed: int = 0, tmpl: str = '{}x%d') -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    gt_dir, lq_dir = root / 'HR', root / f'LR_X{scale}'
    for name in names:
        hr = smooth_image(rng, *size)
        imwrite(hr, gt_dir / f'{name}.png')
        imwrite(imresize(hr, 1 / scale), lq_dir / ((tmpl % scale).format(name) + '.png'))
    return gt_dir, lq_dir


@pytest.fixture
def tiny_data(tmp_path: Path) -> dict:
    train_gt, train_lq = make_paired_folder(tmp_path / 'train', [f'img{i}' for i in range(4)],
                                            (48, 48), seed=1)
    val_gt, val_lq = make_paired_folder(tmp_path / 'val', ['a', 'b'], (32, 40), seed=2)
    return {'train_gt': str(train_gt), 'train_lq': str(train_lq), 'val_gt': str(val_gt),
            'val_lq': str(val_lq), 'root': tmp_path}


TINY_OPT = {
    'name': 'tiny',
    'model_type': 'SRModel',
    'scale': SCALE,
    'num_gpu': 0,
    'manual_seed': 10,
    'datasets': {
        'train': {'name': 'tiny_train', 'type': 'PairedImageDataset', 'filename_tmpl': '{}x2',
                  'io_backend': {'type': 'disk'}, 'gt_size': 16, 'use_hflip': True,
                  'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
                  'dataset_enlarge_ratio': 2},
        'val': {'name': 'tiny_val', 'type': 'PairedImageDataset', 'filename_tmpl': '{}x2',
                'io_backend': {'type': 'disk'}},
    },
    'network_g': {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8,
                  'num_block': 1, 'upscale': SCALE},
    'train': {'ema_decay': 0.9, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
              'scheduler': {'type': 'MultiStepLR', 'milestones': [4], 'gamma': 0.5},
              'total_iter': 6, 'pixel_opt': {'type': 'L1Loss'}},
    'val': {'val_freq': 3, 'save_img': True,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2},
                        'ssim': {'type': 'calculate_ssim', 'crop_border': 2}}},
    'logger': {'print_freq': 1, 'save_checkpoint_freq': 3, 'use_tb_logger': False},
}


@pytest.fixture
def tiny_opt(tiny_data: dict) -> dict:
    """A complete, valid training option dict for a tiny run on ``tiny_data``."""
    opt = copy.deepcopy(TINY_OPT)
    opt['datasets']['train'].update(dataroot_gt=tiny_data['train_gt'],
                                    dataroot_lq=tiny_data['train_lq'])
    opt['datasets']['val'].update(dataroot_gt=tiny_data['val_gt'], dataroot_lq=tiny_data['val_lq'])
    opt['path'] = {'experiments_root': str(tiny_data['root'] / 'experiments' / 'tiny')}
    return opt


def write_yaml(path: Path, opt: dict) -> Path:
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path
