"""RealESRNetModel / RealESRGANModel: tiny runs, which GT each loss sees, exact resume (pool
and random stream in the state; SIGKILL), the same batches with 0 and 2 loader workers, bad
input, the degraded-sample tool, BasicSR's option files."""
from __future__ import annotations

import copy
from pathlib import Path

import cv2
import pytest
import torch
import yaml

from basicsr_lite.models import build_model
from basicsr_lite.options import validate_options
from basicsr_lite.prep.degraded_samples import write_degraded_samples
from tests.conftest import load_tool, write_yaml
from tests.runs import assert_identical, configure, final_weights, killed_run_resumes_exactly, load
from tests.runs import train_in_process as run

ROOT = Path(__file__).resolve().parent.parent
SMALL_SYNTHESIS = {'gt_size': 16, 'queue_size': 4}
GAN_TRAIN = {
    'optim_d': {'type': 'Adam', 'lr': 1e-3},
    'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1},
}


@pytest.fixture
def esrnet_opt(tiny_opt) -> dict:
    return synthetic_data_opt(tiny_opt, 'RealESRNetModel')


def synthetic_data_opt(tiny_opt: dict, model_type: str) -> dict:
    """``tiny_opt`` for ``model_type`` on RealESRGANDataset (pairs made on the fly)."""
    opt = copy.deepcopy(tiny_opt)
    opt['model_type'] = model_type
    opt.update(SMALL_SYNTHESIS)
    train = opt['datasets']['train']
    opt['datasets']['train'] = {
        'name': 'synthetic', 'type': 'RealESRGANDataset', 'dataroot_gt': train['dataroot_gt'],
        'io_backend': {'type': 'disk'}, 'crop_pad_size': 32, 'use_hflip': True,
        'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 2}
    return opt


@pytest.fixture
def esrgan_opt(esrnet_opt) -> dict:
    opt = copy.deepcopy(esrnet_opt)
    opt['model_type'] = 'RealESRGANModel'
    opt['network_d'] = {'type': 'UNetDiscriminatorSN', 'num_feat': 4}
    opt['train'].update(copy.deepcopy(GAN_TRAIN))
    return opt


def built(opt: dict):
    opt = validate_options(opt, is_train=True)
    opt.update(is_train=True, rank=0, world_size=1, dist=False)
    return build_model(opt, torch.device('cpu'))


def training_batch(size: int = 32, b: int = 2) -> dict:
    gen = torch.Generator().manual_seed(0)
    impulse = torch.zeros(b, 21, 21)
    impulse[:, 10, 10] = 1
    return {'gt': torch.rand(b, 3, size, size, generator=gen), 'kernel1': impulse,
            'kernel2': impulse, 'sinc_kernel': impulse, 'gt_path': ['a'] * b}


@pytest.mark.parametrize('fixture', ['esrnet_opt', 'esrgan_opt'])
def test_tiny_runs_train_validate_and_save(request, tmp_path, fixture):
    opt = request.getfixturevalue(fixture)
    assert run(tmp_path, opt) == 0
    exp = Path(opt['path']['experiments_root'])
    state = load(exp / 'training_states' / '6.state')
    rank_state = state['model_rank_states'][0]
    assert rank_state['pair_pool']['filled'] == 4
    assert set(rank_state['synthesis_streams']) == {'numpy', 'torch'}
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    if fixture == 'esrgan_opt':
        assert (exp / 'models' / 'net_d_latest.pth').is_file()


def test_feed_data_synthesises_patches_and_keeps_pairs_as_they_are(esrnet_opt):
    model = built(esrnet_opt)
    model.feed_data(training_batch())
    assert model.lq.shape == (2, 3, 8, 8) and model.gt.shape == (2, 3, 16, 16)
    pair = {'lq': torch.rand(1, 3, 5, 6), 'gt': torch.rand(1, 3, 10, 12)}
    model.feed_data(pair)  # validation images
    assert torch.equal(model.lq, pair['lq']) and torch.equal(model.gt, pair['gt'])


def test_gt_usm_decides_the_training_gt(esrnet_opt, esrgan_opt):
    """Real-ESRNet: gt_usm sharpens the target; Real-ESRGAN: l1 / percep / gan_gt_usm."""
    batch = training_batch()
    esrnet_opt['queue_size'] = 0
    esrnet_opt['gt_usm'] = False
    model = built(esrnet_opt)
    model.feed_data(batch)
    assert any(torch.equal(model.gt, batch['gt'][..., i:i + 16, j:j + 16])
               for i in range(0, 17, 2) for j in range(0, 17, 2))
    esrgan_opt.update(queue_size=0, l1_gt_usm=True, percep_gt_usm=False, gan_gt_usm=True)
    model = built(esrgan_opt)
    model.feed_data(batch)
    sharpened = model.usm_sharpener(model.gt)
    assert torch.equal(model.gt_for('pixel'), sharpened)
    assert torch.equal(model.gt_for('perceptual'), model.gt)
    assert torch.equal(model.gt_for('gan'), sharpened)
    assert not torch.equal(sharpened, model.gt)


def test_high_order_degradation_false_trains_on_pairs(esrnet_opt, tiny_opt, tmp_path):
    esrnet_opt['datasets']['train'] = copy.deepcopy(tiny_opt['datasets']['train'])
    esrnet_opt['high_order_degradation'] = False
    assert run(tmp_path, esrnet_opt) == 0


@pytest.mark.parametrize('workers', [0, 2])
def test_resume_is_exact(esrgan_opt, tmp_path, workers):
    """4 + 4 iterations == 8 straight (the pool is full from iteration 3 on)."""
    straight = configure(esrgan_opt, tmp_path / 'straight', 8, 4, workers)
    assert run(tmp_path, straight) == 0
    first = configure(esrgan_opt, tmp_path / 'run', 4, 4, workers)
    first['train']['scheduler']['periods'] = [8]
    assert run(tmp_path, first) == 0
    first['train']['total_iter'] = 8
    assert run(tmp_path, first, '--auto_resume') == 0
    for label in ('net_g', 'net_d'):
        a = load(tmp_path / 'straight' / 'models' / f'{label}_latest.pth')
        b = load(tmp_path / 'run' / 'models' / f'{label}_latest.pth')
        assert_identical(a, b, tuple(a))


def test_same_batches_with_0_and_2_loader_workers(esrnet_opt, tmp_path):
    weights = []
    for workers in (0, 2):
        opt = configure(esrnet_opt, tmp_path / f'w{workers}', 4, 4, workers)
        assert run(tmp_path, opt) == 0
        weights.append(final_weights(tmp_path / f'w{workers}'))
    assert_identical(*weights)


@pytest.mark.slow
def test_sigkill_then_auto_resume_is_exact(esrgan_opt, tmp_path):
    total = 60
    esrgan_opt['datasets']['train']['dataset_enlarge_ratio'] = 4
    killed_run_resumes_exactly(esrgan_opt, tmp_path, total, 20, 2, ('net_g', 'net_d'))


def user_error(tmp_path: Path, opt: dict, capsys) -> str:
    assert run(tmp_path, opt) == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err and err.count('Error:') == 1
    assert not Path(opt['path']['experiments_root']).exists()
    return err


def test_bad_synthesis_options_are_one_message_before_anything_is_written(
        esrgan_opt, tiny_opt, tmp_path, capsys):
    bad = copy.deepcopy(esrgan_opt)
    bad.update(resize_prob=[0.5, 0.5, 0.5], jpeg_range=[95, 30], noise_range2=[1])
    bad['datasets']['train'].update(blur_kernel_size=20, kernel_prob=[0.5, 0.5])
    err = user_error(tmp_path, bad, capsys)
    assert 'has 5 problem(s)' in err
    assert 'resize_prob: probabilities must sum to 1; [0.5, 0.5, 0.5] sums to 1.5.' in err
    assert 'jpeg_range: min > max in [95, 30].' in err
    assert 'noise_range2: must be a range [min, max] of two numbers; got [1].' in err
    assert 'datasets.train.blur_kernel_size: must be an odd integer >= 3; got 20.' in err
    assert 'datasets.train.kernel_prob: has 2 probabilities for the 6 kernels of kernel_list.' \
        in err
    bad = copy.deepcopy(esrgan_opt)
    bad['queue_size'] = 5
    assert 'queue_size: 5 is not a multiple of datasets.train.batch_size_per_gpu (2).' in \
        user_error(tmp_path, bad, capsys)
    bad = copy.deepcopy(esrgan_opt)
    bad['datasets']['train'] = copy.deepcopy(tiny_opt['datasets']['train'])
    assert 'Set high_order_degradation: false to train on its pairs.' in \
        user_error(tmp_path, bad, capsys)
    bad = copy.deepcopy(esrgan_opt)
    bad['high_order_degradation'] = False
    assert 'high_order_degradation: false trains on pairs, but datasets.train ' \
           '(RealESRGANDataset) gives GT images and kernels' in user_error(tmp_path, bad, capsys)
    bad = copy.deepcopy(esrgan_opt)
    bad['datasets']['train']['gt_size'] = 24
    assert 'datasets.train.gt_size (24) differs from gt_size (16)' in \
        user_error(tmp_path, bad, capsys)


def test_degraded_sample_tool(esrgan_opt, tmp_path):
    esrgan_opt['path']['pretrain_network_g'] = str(tmp_path / 'not_trained_yet.pth')
    esrgan_opt['datasets']['val']['dataroot_lq'] = str(tmp_path / 'no_such_folder')
    opt_path = write_yaml(tmp_path / 'opt.yml', esrgan_opt)
    assert write_degraded_samples(opt_path, tmp_path / 'a', num_per_image=2, seed=3) == 8
    assert write_degraded_samples(opt_path, tmp_path / 'b', num_per_image=2, seed=3) == 8
    names = sorted(p.name for p in (tmp_path / 'a' / 'LQ').iterdir())
    assert len(names) == 8 and names[0] == 'img0_0.png'
    for sub in ('GT', 'LQ'):
        for name in names:
            assert (tmp_path / 'a' / sub / name).read_bytes() == \
                (tmp_path / 'b' / sub / name).read_bytes()
    assert cv2.imread(str(tmp_path / 'a' / 'LQ' / names[0])).shape == (16, 16, 3)
    with pytest.raises(Exception, match='is not empty; choose a new one'):
        write_degraded_samples(opt_path, tmp_path / 'a')


def test_degraded_sample_tool_cli(esrnet_opt, tiny_opt, tmp_path, capsys):
    tool = load_tool('degrade_samples')
    opt_path = write_yaml(tmp_path / 'opt.yml', esrnet_opt)
    assert tool.main(['-opt', str(opt_path), '--output', str(tmp_path / 'out'),
                      '--crop_pad_size', '48']) == 0
    assert '4 GT / LQ pairs written' in capsys.readouterr().out
    assert cv2.imread(str(tmp_path / 'out' / 'GT' / 'img0.png')).shape == (48, 48, 3)
    assert cv2.imread(str(tmp_path / 'out' / 'LQ' / 'img0.png')).shape == (24, 24, 3)
    srmodel = write_yaml(tmp_path / 'sr.yml', tiny_opt)
    assert tool.main(['-opt', str(srmodel), '--output', str(tmp_path / 'sr')]) == 2
    assert "model_type must be one of RealESRNetModel, RealESRGANModel" in \
        capsys.readouterr().err


@pytest.mark.parametrize('name', ['train_realesrnet_x4plus.yml', 'train_realesrgan_x4plus.yml',
                                  'train_realesrnet_demo.yml', 'train_realesrgan_demo.yml'])
def test_shipped_option_files_validate(name):
    raw = yaml.safe_load((ROOT / 'options' / 'train' / 'RealESRGAN' / name).read_text())
    opt = validate_options(raw, is_train=True, check_paths=False)
    assert opt['datasets']['train']['type'] == 'RealESRGANDataset'
