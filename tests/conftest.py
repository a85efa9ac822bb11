"""Shared fixtures: tiny generated LQ/GT datasets and option files for tiny networks."""
from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from basicsr_lite.prep.synthetic import make_paired_folder

SCALE = 2


@pytest.fixture
def tiny_data(tmp_path: Path) -> dict:
    train_gt, train_lq = make_paired_folder(tmp_path / 'train', [f'img{i}' for i in range(4)],
                                            (48, 48), SCALE, seed=1)
    val_gt, val_lq = make_paired_folder(tmp_path / 'val', ['a', 'b'], (32, 40), SCALE, seed=2)
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
              'total_iter': 6, 'pixel_opt': {'type': 'L1Loss'},
              # keep amp / channels_last as written (test_speed_probe.py tests the probe)
              'speed_policy': 'force'},
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


TOOLS = Path(__file__).resolve().parent.parent / 'tools'


def load_tool(name: str):
    """The tool ``name``: the module ``basicsr_lite.tools.<name>``, or for a developer script
    that stays in tools/ (benchmarks, fault injection, ...), ``tools/<name>.py`` imported as a
    module."""
    if importlib.util.find_spec(f'basicsr_lite.tools.{name}') is not None:
        return importlib.import_module(f'basicsr_lite.tools.{name}')
    spec = importlib.util.spec_from_file_location(name, TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def random_vgg(tmp_path: Path, monkeypatch):
    """Random VGG19 weights in torchvision's layout where the torch hub cache keeps the ImageNet
    file (none is obtainable offline): ``random_vgg(last_layer)`` writes features up to that
    layer under a fresh TORCH_HOME and returns the state dict."""
    import torch

    from basicsr_lite.archs.vgg_arch import VGGFeatureExtractor, hub_weight_path
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))

    def write(last_layer: str = 'conv2_2') -> dict:
        torch.manual_seed(3)
        vgg = VGGFeatureExtractor([last_layer], 'vgg19', pretrained=None)
        state = {f'features.{k}': v for k, v in vgg.features.state_dict().items()}
        path = hub_weight_path('vgg19')
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        return state

    return write


@pytest.fixture
def random_backbones(tmp_path: Path, monkeypatch):
    """Random AlexNet and VGG16 ``features`` in torchvision's layout where the torch hub cache
    keeps torchvision's ImageNet files (none is obtainable offline)."""
    import torch

    from basicsr_lite.archs.vgg_arch import VGGFeatureExtractor, hub_weight_path
    from basicsr_lite.metrics.lpips_metric import VGG_LAYERS, AlexNetFeatures
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setenv('BASICSR_LITE_SKIP_VGG_HASH', '1')  # random files: no release hash
    torch.manual_seed(5)
    for name, net in (('alexnet', AlexNetFeatures(pretrained=None)),
                      ('vgg16', VGGFeatureExtractor(VGG_LAYERS, 'vgg16', pretrained=None))):
        path = hub_weight_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({f'features.{k}': v for k, v in net.features.state_dict().items()}, path)
