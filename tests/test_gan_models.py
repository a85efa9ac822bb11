"""SRGANModel / ESRGANModel: tiny runs of every GAN type, the D / G phases, exact resume with two
networks (EMA, loader workers, bf16 AMP), BasicSR's ESRGAN state and option files, bad input."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from basicsr_lite.models import build_model
from basicsr_lite.options import validate_options
from basicsr_lite.prep.synthetic import make_paired_folder
from basicsr_lite.runtime.weights import save_torch
from basicsr_lite.train import main as train_main
from tests.conftest import write_yaml
from tests.runs import assert_identical, configure, killed_run_resumes_exactly, load, run_to_end
from tests.runs import train_in_process as run

GAN_TRAIN = {
    'optim_d': {'type': 'Adam', 'lr': 1e-3},
    'perceptual_opt': {'type': 'PerceptualLoss', 'layer_weights': {'conv2_2': 1.0}},
    'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1},
}


@pytest.fixture
def gan_opt(tiny_opt, random_vgg) -> dict:
    random_vgg('conv2_2')
    opt = copy.deepcopy(tiny_opt)
    opt['model_type'] = 'ESRGANModel'
    opt['network_d'] = {'type': 'UNetDiscriminatorSN', 'num_feat': 4}
    opt['train'].update(copy.deepcopy(GAN_TRAIN))
    return opt


@pytest.mark.parametrize('model_type', ['SRGANModel', 'ESRGANModel'])
@pytest.mark.parametrize('gan_type', ['vanilla', 'lsgan', 'wgan', 'wgan_softplus', 'hinge'])
def test_tiny_gan_runs(gan_opt, tmp_path, model_type, gan_type):
    gan_opt['model_type'] = model_type
    gan_opt['train']['gan_opt']['gan_type'] = gan_type
    gan_opt['train'].update(total_iter=3, r1_reg_weight=1.0, d_reg_every=2)
    assert run(tmp_path, gan_opt) == 0
    exp = Path(gan_opt['path']['experiments_root'])
    assert {'net_g_3.pth', 'net_d_3.pth', 'net_g_latest.pth', 'net_d_latest.pth'} <= \
        {p.name for p in (exp / 'models').iterdir()}
    assert set(load(exp / 'models' / 'net_g_3.pth')) == {'params', 'params_ema'}
    state = load(exp / 'training_states' / '3.state')
    assert len(state['optimizers']) == 2 and len(state['schedulers']) == 2
    log = next(exp.glob('train_*.log')).read_text()
    for name in ('l_g_pix', 'l_g_percep', 'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real',
                 'out_d_fake'):
        assert f'{name}: ' in log
    assert 'l_d_r1: ' in log and ': nan' not in log


def built_model(opt: dict):
    opt = validate_options(opt, True)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    torch.manual_seed(0)
    return build_model(opt, torch.device('cpu'))


def snapshot(net) -> dict:
    return {k: v.clone() for k, v in net.state_dict().items()}


def changed(before: dict, net) -> bool:
    return any(not torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_phases_d_every_iteration_g_every_net_d_iters_after_init(gan_opt):
    """net_d_init_iters 2, net_d_iters 2: iterations 1-2 train D only; then G on even
    iterations; D on every iteration."""
    gan_opt['train'].update(net_d_init_iters=2, net_d_iters=2)
    model = built_model(gan_opt)
    batch = {'lq': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 16, 16)}
    g_steps, d_steps = [], []
    for it in range(1, 8):
        g, d = snapshot(model.net_g), snapshot(model.net_d)
        model.feed_data(batch)
        model.optimize_parameters(it)
        g_steps.append(changed(g, model.net_g))
        d_steps.append(changed(d, model.net_d))
        assert ('l_g_gan' in model.log_dict) == g_steps[-1]
    assert g_steps == [False, False, False, True, False, True, False]
    assert all(d_steps)
    assert model.g_iters == 2


def test_g_pretraining_iterations_train_g_alone(gan_opt):
    gan_opt['train']['net_g_pretrain_iters'] = 2
    model = built_model(gan_opt)
    batch = {'lq': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 16, 16)}
    for it in (1, 2, 3):
        g, d = snapshot(model.net_g), snapshot(model.net_d)
        model.feed_data(batch)
        model.optimize_parameters(it)
        assert changed(g, model.net_g)
        assert changed(d, model.net_d) == (it == 3)
        assert ('l_g_gan' in model.log_dict) == (it == 3)
    assert set(model.log_dict) >= {'l_g_pix', 'l_g_percep', 'l_d_real'}
    gan_opt['train'].update(pixel_opt=None, perceptual_opt=None)
    with pytest.raises(ValueError, match='net_g_pretrain_iters: G needs a pixel_opt'):
        built_model(gan_opt)


def two_network_resume(gan_opt: dict, tmp_path: Path, workers: int = 0) -> None:
    straight = configure(gan_opt, tmp_path / 'straight', 8, 4, workers)
    assert train_main(['-opt', str(write_yaml(tmp_path / 's.yml', straight))]) == 0
    first = configure(gan_opt, tmp_path / 'run', 4, 4, workers)
    first['train']['scheduler']['periods'] = [8]
    assert train_main(['-opt', str(write_yaml(tmp_path / 'a.yml', first))]) == 0
    first['train']['total_iter'] = 8
    assert train_main(['-opt', str(write_yaml(tmp_path / 'b.yml', first)), '--auto_resume']) == 0
    for label in ('net_g', 'net_d'):
        a = load(tmp_path / 'straight' / 'models' / f'{label}_latest.pth')
        b = load(tmp_path / 'run' / 'models' / f'{label}_latest.pth')
        assert_identical(a, b, tuple(a))


@pytest.mark.parametrize('workers,amp', [(0, None), (2, None), (0, 'bf16')])
def test_esrgan_resume_is_exact(gan_opt, tmp_path, workers, amp):
    gan_opt['train'].update(amp=amp, gan_warmup_iter=5, r1_reg_weight=0.5, d_reg_every=3)
    two_network_resume(gan_opt, tmp_path, workers)


@pytest.mark.slow
@pytest.mark.parametrize('workers,amp', [(0, None), (2, None), (0, 'bf16')])
def test_esrgan_sigkill_then_auto_resume_is_exact(gan_opt, tmp_path, workers, amp):
    total = 120
    gan_opt['train']['amp'] = amp
    killed_run_resumes_exactly(gan_opt, tmp_path, total, 30, workers, ('net_g', 'net_d'))


def test_basicsr_esrgan_state_resumes(gan_opt, tmp_path):
    """A BasicSR-made ESRGAN state: epoch, iter, two optimizers, two schedulers (Counter
    milestones), nothing else."""
    gan_opt['train']['total_iter'] = 3
    gan_opt['train']['scheduler'] = {'type': 'MultiStepLR', 'milestones': [2, 4], 'gamma': 0.5}
    assert run(tmp_path, gan_opt) == 0
    exp = Path(gan_opt['path']['experiments_root'])
    state = load(exp / 'training_states' / '3.state')
    basicsr = tmp_path / 'basicsr'
    save_torch({k: state[k] for k in ('epoch', 'iter', 'optimizers', 'schedulers')},
               basicsr / 'training_states' / '3.state')
    for label in ('net_g', 'net_d'):
        save_torch(load(exp / 'models' / f'{label}_3.pth'), basicsr / 'models' / f'{label}_3.pth')
    gan_opt['train']['total_iter'] = 6
    gan_opt['path']['resume_state'] = str(basicsr / 'training_states' / '3.state')
    assert run(tmp_path, gan_opt) == 0
    log = ''.join(p.read_text() for p in exp.glob('train_*.log'))
    assert 'Resumed from' in log and 'iter:       4' in log
    schedulers = load(exp / 'training_states' / '6.state')['schedulers']
    assert [s['last_epoch'] for s in schedulers] == [5, 5]  # G's and D's, both continued


def user_error(tmp_path: Path, opt: dict, capsys) -> str:
    assert run(tmp_path, opt) == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    assert not Path(opt['path']['experiments_root']).exists()
    return err


def test_bad_gan_input_is_one_message_and_writes_nothing(gan_opt, tmp_path, capsys, monkeypatch):
    bad = copy.deepcopy(gan_opt)
    bad['train']['gan_opt']['gan_type'] = 'vanila'
    assert "train.gan_opt (GANLoss) rejected its options: ValueError: gan_type 'vanila' is not " \
           "one of" in user_error(tmp_path, bad, capsys)
    bad = copy.deepcopy(gan_opt)
    bad['train']['net_d_iters'] = 0
    assert 'train.net_d_iters: must be > 0; got 0.' in user_error(tmp_path, bad, capsys)
    bad = copy.deepcopy(gan_opt)
    del bad['train']['gan_opt']
    assert 'train.gan_opt: required key is missing.' in user_error(tmp_path, bad, capsys)
    bad = copy.deepcopy(gan_opt)
    bad['model_type'] = 'SRModel'
    err = user_error(tmp_path, bad, capsys)
    assert 'network_d: used by the GAN models (model_type SRGANModel / ESRGANModel)' in err
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty_torch_home'))
    err = user_error(tmp_path, copy.deepcopy(gan_opt), capsys)
    assert 'The ImageNet weights vgg19-dcbb9e9d.pth are not available' in err
    assert str(tmp_path / 'empty_torch_home' / 'hub' / 'checkpoints') in err


FILES = Path(__file__).resolve().parents[2] / 'shared' / 'basicsr_options'


@pytest.mark.skipif(not FILES.is_dir(), reason='../shared/basicsr_options is absent')
@pytest.mark.parametrize('name', ['train_ESRGAN_x4.yml', 'train_MSRGAN_x4.yml'])
def test_basicsr_gan_files_run_with_data_and_vgg_paths_changed(tmp_path, random_vgg, name):
    """BasicSR's own GAN files: data paths, sizes and iteration counts changed; the VGG weights
    come from the torch hub cache (random here)."""
    random_vgg('conv5_4')
    opt = yaml.safe_load((FILES / name).read_text())
    gt, lq = make_paired_folder(tmp_path / 'data', ['a', 'b'], (128, 128), 4, seed=3)
    for dataset in opt['datasets'].values():
        dataset.update(dataroot_gt=str(gt), dataroot_lq=str(lq), filename_tmpl='{}x4')
        if 'gt_size' in dataset:
            dataset.update(batch_size_per_gpu=1, num_worker_per_gpu=0)
    opt['num_gpu'] = 0
    opt['network_g'].update(num_feat=4, num_block=1)
    if opt['network_g']['type'] == 'RRDBNet':
        opt['network_g']['num_grow_ch'] = 4
    opt['network_d']['num_feat'] = 4
    opt['path'].update(pretrain_network_g=None, experiments_root=str(tmp_path / 'exp'))
    opt['train']['total_iter'] = 2
    opt['val'] = None
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    assert train_main(['-opt', str(write_yaml(tmp_path / name, opt))]) == 0
    assert (tmp_path / 'exp' / 'models' / 'net_d_2.pth').is_file()


@pytest.mark.slow
def test_esrgan_under_torchrun(gan_opt, tmp_path):
    """Two processes: D through DDP, G's adversarial term through the unwrapped D; the ranks
    end with identical weights (checked at every checkpoint)."""
    opt = configure(gan_opt, tmp_path / 'ddp', 6, 3, 1)
    output = run_to_end(write_yaml(tmp_path / 'ddp.yml', opt), nproc=2)
    log = next((tmp_path / 'ddp').glob('train_*.log')).read_text()
    for it in (3, 6):
        assert f'iter {it} (weights identical on all 2 ranks)' in log, output[-2000:]


def test_keep_last_checkpoints_prunes_every_network(gan_opt, tmp_path):
    gan_opt['train']['total_iter'] = 6
    gan_opt['logger'].update(save_checkpoint_freq=2, keep_last_checkpoints=1)
    gan_opt['val']['val_freq'] = 1000
    assert run(tmp_path, gan_opt) == 0
    models = Path(gan_opt['path']['experiments_root']) / 'models'
    assert sorted(p.name for p in models.glob('net_*_[0-9]*.pth')) == ['net_d_6.pth', 'net_g_6.pth']
