"""Pix2pix: the generators (pix2pix's parameter counts and keys), the aligned dataset (AB images
and two folders, direction, shared crops), the model (conditional D input, halved D loss, range
mapping) and a tiny run of the demo option file."""
from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from basicsr_lite.archs import build_network
from basicsr_lite.data import build_dataset
from basicsr_lite.data.loading.sample_wrappers import SeededSamples
from basicsr_lite.errors import DataError
from basicsr_lite.models.pix2pix_model import UnitRange
from basicsr_lite.train import main as train_main
from basicsr_lite.utils.img_util import tensor2img
from tests.conftest import write_yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize('arch,norm,count', [
    # pix2pix / CycleGAN print these totals: unet_256 (batch) 54.414 M, resnet_9blocks
    # (instance) 11.378 M.
    ('UNetGenerator', 'batch', 54_413_955),
    ('ResNetGenerator', 'instance', 11_378_179),
])
def test_generator_counts_match_pix2pix(arch, norm, count):
    net = build_network({'type': arch, 'norm': norm})
    assert sum(p.numel() for p in net.parameters()) == count
    assert round(count / 1e6, 3) == {'UNetGenerator': 54.414, 'ResNetGenerator': 11.378}[arch]


def test_generator_keys_shapes_and_range():
    unet = build_network({'type': 'UNetGenerator', 'num_downs': 5, 'num_feat': 4})
    assert {'model.model.0.weight', 'model.model.1.model.1.weight', 'model.model.3.weight'} <= \
        set(unet.state_dict())  # pix2pix's nesting: outermost down conv, inner block, up conv
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    y = unet(x)
    assert y.shape == (1, 3, 32, 32) and y.abs().max() <= 1
    with pytest.raises(ValueError, match='divisible by 32'):
        unet(torch.rand(1, 3, 48, 40))
    resnet = build_network({'type': 'ResNetGenerator', 'num_feat': 4, 'n_blocks': 2})
    assert 'model.10.conv_block.1.weight' in resnet.state_dict()
    assert resnet(torch.rand(1, 3, 20, 24)).shape == (1, 3, 20, 24)


def write_ab(folder: Path, name: str, a: np.ndarray, b: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f'{name}.png'), np.concatenate([a, b], axis=1))


def images(seed: int, h: int = 40, w: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (h, w, 3), np.uint8), rng.integers(0, 256, (h, w, 3), np.uint8))


def test_aligned_dataset_forms_direction_and_shared_crop(tmp_path):
    a, b = images(1)
    write_ab(tmp_path / 'ab', 'x', a, b)
    for folder, img in (('A', a), ('B', b)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / 'x.png'), img)
    side = build_dataset({'type': 'AlignedDataset', 'dataroot': str(tmp_path / 'ab')}, 'val', 1)
    two = build_dataset({'type': 'AlignedDataset', 'dataroot_a': str(tmp_path / 'A'),
                         'dataroot_b': str(tmp_path / 'B')}, 'val', 1)
    for item in (side[0], two[0]):
        np.testing.assert_array_equal(tensor2img(item['lq']), a)
        np.testing.assert_array_equal(tensor2img(item['gt']), b)
    swapped = build_dataset({'type': 'AlignedDataset', 'dataroot': str(tmp_path / 'ab'),
                             'direction': 'BtoA'}, 'val', 1)[0]
    np.testing.assert_array_equal(tensor2img(swapped['lq']), b)
    train = SeededSamples(build_dataset({'type': 'AlignedDataset', 'dataroot': str(tmp_path / 'ab'),
                                         'crop_size': 16}, 'train', 1))
    crop = train[(0, 5)]
    lq, gt = tensor2img(crop['lq']), tensor2img(crop['gt'])
    assert lq.shape == (16, 16, 3)
    # The same window of A and B (possibly flipped together): find it in A, check B there.
    for flip in (False, True):
        src_a, src_b = (a[:, ::-1], b[:, ::-1]) if flip else (a, b)
        hits = [(y, x) for y in range(25) for x in range(33)
                if np.array_equal(src_a[y:y + 16, x:x + 16], lq)]
        if hits:
            y, x = hits[0]
            np.testing.assert_array_equal(src_b[y:y + 16, x:x + 16], gt)
            break
    else:
        pytest.fail('the training crop of A is not a window of A')


def test_aligned_dataset_errors(tmp_path):
    (tmp_path / 'A').mkdir()
    (tmp_path / 'B').mkdir()
    a, _ = images(2)
    cv2.imwrite(str(tmp_path / 'A' / 'only_a.png'), a)
    cv2.imwrite(str(tmp_path / 'B' / 'other.png'), a)
    with pytest.raises(DataError, match='have no partner of the same name'):
        build_dataset({'type': 'AlignedDataset', 'dataroot_a': str(tmp_path / 'A'),
                       'dataroot_b': str(tmp_path / 'B')}, 'val', 1)
    with pytest.raises(DataError, match='either dataroot'):
        build_dataset({'type': 'AlignedDataset', 'dataroot_a': str(tmp_path / 'A')}, 'val', 1)
    write_ab(tmp_path / 'odd', 'x', a, a[:, :-1])
    # found by the start-up scan (tests/test_startup_checks.py); without it, at load time
    dataset = build_dataset({'type': 'AlignedDataset', 'dataroot': str(tmp_path / 'odd'),
                             'scan': False}, 'val', 1)
    with pytest.raises(DataError, match='two halves of equal width'):
        dataset[0]


def test_unit_range_adapter():
    net = torch.nn.Tanh()
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(UnitRange(net)(x), (torch.tanh(2 * x - 1) + 1) / 2)


def demo_opt(tmp_path: Path, total: int) -> dict:
    opt = yaml.safe_load((ROOT / 'options/train/Pix2pix/train_pix2pix_demo.yml').read_text())
    for dataset in opt['datasets'].values():
        dataset['dataroot'] = str(ROOT / dataset['dataroot'])
    opt['datasets']['train'].update(num_worker_per_gpu=0, batch_size_per_gpu=2)
    opt['train']['total_iter'] = total
    opt['train']['scheduler']['periods'] = [total]
    opt['val']['val_freq'] = total
    opt['logger'].update(print_freq=1, save_checkpoint_freq=total)
    opt['path'] = {'experiments_root': str(tmp_path / 'exp')}
    return opt


def test_demo_option_file_trains_and_reports_against_the_input(tmp_path):
    assert train_main(['-opt', str(write_yaml(tmp_path / 'p2p.yml', demo_opt(tmp_path, 4)))]) == 0
    log = next((tmp_path / 'exp').glob('train_*.log')).read_text()
    for name in ('l_g_pix', 'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake'):
        assert f'{name}: ' in log
    assert 'Final validation on demo_pix2pix_val (4 images)' in log
    saved = tmp_path / 'exp' / 'visualization' / 'demo_pix2pix_val'
    assert sorted(p.name for p in saved.iterdir()) == [
        f'{name}_11_4.png' for name in ('astronaut', 'chelsea', 'immunohistochemistry', 'rocket')]


def test_conditional_discriminator_sees_input_and_output(tmp_path):
    from basicsr_lite.models import build_model
    from basicsr_lite.options import validate_options
    opt = validate_options(demo_opt(tmp_path, 2), True)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    model = build_model(opt, torch.device('cpu'))
    model.feed_data({'lq': torch.rand(2, 3, 64, 64), 'gt': torch.rand(2, 3, 64, 64)})
    pair = model.d_input(model.gt)
    assert pair.shape == (2, 6, 64, 64)
    torch.testing.assert_close(pair[:, :3], model.lq * 2 - 1)
    torch.testing.assert_close(pair[:, 3:], model.gt * 2 - 1)
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    losses = model.adversarial_discriminator_losses(real, fake)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    torch.testing.assert_close(losses['l_d_real'], 0.5 * bce(real, torch.ones(1)))
    torch.testing.assert_close(losses['l_d_fake'], 0.5 * bce(fake, torch.zeros(1)))
    model.optimize_parameters(1)
    output = model.output.detach()
    assert 0 <= float(output.min()) and float(output.max()) <= 1


def test_shipped_pix2pix_options_validate():
    from basicsr_lite.options import validate_options
    for path in sorted((ROOT / 'options/train/Pix2pix').glob('*.yml')):
        validate_options(copy.deepcopy(yaml.safe_load(path.read_text())), True,
                         check_paths=False)
