"""Problems that used to surface in the first batch, the first validation or the tracker's start
(after the experiment folder was made) are found at start-up: exit 2, one message, no
traceback, and nothing on disk changed (issue 22, "checks that come too late")."""
from __future__ import annotations

import copy
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from basicsr_lite.archs.constraints import NetworkNeeds, network_needs
from basicsr_lite.engine.trackers import wandb_problem
from basicsr_lite.test import main as evaluate_main
from basicsr_lite.train import main as train_main
from tests.conftest import write_yaml

GAN_TRAIN = {'optim_d': {'type': 'Adam', 'lr': 1e-3},
             'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1}}


@pytest.fixture
def tiny_opt(tiny_opt: dict) -> dict:
    """The shared tiny run without validation metrics (checking them at start-up takes most
    of a failed start's time; these tests are not about them)."""
    tiny_opt['val']['metrics'] = {}
    return tiny_opt


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob('*'))


def fails_at_start_up(main, opt: dict, tmp_path: Path, capsys) -> str:
    """Run ``main`` on ``opt``: exit 2, one 'Error:' and no traceback, ``tmp_path`` unchanged
    (bar the option file); returns the error message."""
    opt_path = write_yaml(tmp_path / 'bad.yml', opt)
    before = listing(tmp_path)
    capsys.readouterr()
    assert main(['-opt', str(opt_path)]) == 2
    err = capsys.readouterr().err
    assert err.count('Error: ') == 1 and 'Traceback' not in err, err[-2000:]
    assert listing(tmp_path) == before
    return err.split('Error: ', 1)[1].strip()


def test_upscale_differs_from_scale(tiny_opt, tmp_path, capsys):
    tiny_opt['network_g']['upscale'] = 4
    assert fails_at_start_up(train_main, tiny_opt, tmp_path, capsys) == (
        f'{tmp_path / "bad.yml"}: the networks do not fit the data (1 problem(s)):\n'
        '  - network_g.upscale: MSRResNet upscales x4 (upscale: 4), but datasets.train, '
        'datasets.val give LQ images 1/2 of GT (scale: 2); make them agree.')


def test_channels_differ_from_what_the_data_reads(tiny_opt, tmp_path, capsys):
    for entry in tiny_opt['datasets'].values():
        entry['color'] = 'y'
    message = fails_at_start_up(train_main, tiny_opt, tmp_path, capsys)
    assert message.splitlines()[1:] == [
        '  - network_g.num_in_ch: MSRResNet takes 3 channel(s), but datasets.train, '
        'datasets.val give 1-channel LQ images (color: y).',
        '  - network_g.num_out_ch: MSRResNet outputs 3 channel(s), but datasets.train, '
        'datasets.val give 1-channel GT images (color: y).']


def test_vgg_discriminator_needs_its_input_size(tiny_opt, tmp_path, capsys):
    tiny_opt.update(model_type='SRGANModel',
                    network_d={'type': 'VGGStyleDiscriminator', 'num_feat': 4})
    tiny_opt['train'].update(copy.deepcopy(GAN_TRAIN))
    assert fails_at_start_up(train_main, tiny_opt, tmp_path, capsys).splitlines()[1] == (
        '  - network_d.input_size: VGGStyleDiscriminator needs 128x128 inputs; the training GT '
        'patch is 16x16 (datasets.train.gt_size).')


def test_unet_discriminator_needs_multiples_of_8(tiny_opt, tmp_path, capsys):
    tiny_opt.update(model_type='ESRGANModel',
                    network_d={'type': 'UNetDiscriminatorSN', 'num_feat': 4})
    tiny_opt['train'].update(copy.deepcopy(GAN_TRAIN))
    tiny_opt['datasets']['train']['gt_size'] = 20
    assert fails_at_start_up(train_main, tiny_opt, tmp_path, capsys).splitlines()[1] == (
        '  - network_d: UNetDiscriminatorSN needs input sides that are multiples of 8; the '
        'training GT patch is 20x20 (datasets.train.gt_size).')


def test_a_patch_under_the_networks_minimum_side(tiny_opt, tmp_path, capsys):
    """The capability table's min_size: SAFMN pools its features to 1/8 of the input."""
    tiny_opt['network_g'] = {'type': 'SAFMN', 'dim': 8, 'n_blocks': 1, 'upscaling_factor': 2}
    tiny_opt['datasets']['train']['gt_size'] = 8
    assert fails_at_start_up(train_main, tiny_opt, tmp_path, capsys).splitlines()[1] == (
        '  - network_g: SAFMN needs inputs of at least 8x8; the training LQ patch of '
        'datasets.train is 4x4 (datasets.train.gt_size 8 / scale 2).')


def test_rrdbnet_unshuffle_needs_even_lq_patches(tiny_opt, tmp_path, capsys):
    tiny_opt['network_g'] = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 2,
                             'num_feat': 4, 'num_block': 1, 'num_grow_ch': 4}
    tiny_opt['datasets']['train']['gt_size'] = 18
    assert fails_at_start_up(train_main, tiny_opt, tmp_path, capsys).splitlines()[1] == (
        '  - network_g.scale: RRDBNet needs input sides that are multiples of 2; the training '
        'LQ patch of datasets.train is 9x9 (datasets.train.gt_size 18 / scale 2).')


def test_arbitrary_scales_above_the_top_level_scale(tiny_opt, tiny_data, tmp_path, capsys):
    tiny_opt['model_type'] = 'ArbitraryScaleSRModel'
    tiny_opt['network_g'] = {'type': 'ArbSR', 'num_feat': 4, 'num_block': 1, 'num_experts': 2}
    for key, scales in (('train', [2, 3]), ('val', [2])):
        tiny_opt['datasets'][key] = {
            'name': key, 'type': 'MultiScaleDataset', 'dataroot_gt': tiny_data['train_gt'],
            'scales': scales, 'lq_size': 8, **({'batch_size_per_gpu': 2} if key == 'train'
                                               else {})}
    assert fails_at_start_up(train_main, tiny_opt, tmp_path, capsys).splitlines()[1] == (
        '  - datasets.train.scales: up to x3, above the top-level scale 2 (the largest scale of '
        'the run); raise scale or drop those scales.')


def test_pix2pix_ab_images_are_scanned_at_start_up(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = Path(__file__).resolve().parent.parent
    import yaml
    opt = yaml.safe_load((root / 'options/train/Pix2pix/train_pix2pix_demo.yml').read_text())
    data = tmp_path / 'ab'
    data.mkdir()
    for name, width in (('good', 128), ('odd', 127), ('small', 64)):
        cv2.imwrite(str(data / f'{name}.png'), rng.integers(0, 256, (64, width, 3), np.uint8))
    opt['datasets']['train'].update(dataroot=str(data), num_worker_per_gpu=0)
    opt['datasets']['val']['dataroot'] = str(data)
    opt['path'] = {'experiments_root': str(tmp_path / 'exp')}
    assert fails_at_start_up(train_main, opt, tmp_path, capsys) == (
        '2 image(s) of AlignedDataset cannot be used:\n'
        f'  {data / "odd.png"} is 127 pixels wide: an AB image has two halves of equal width\n'
        f'  {data / "small.png"}: A is 32x64, smaller than crop_size 64')


def test_online_wandb_without_credentials(tiny_opt, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'wandb', types.ModuleType('wandb'))  # never started
    for name in ('WANDB_API_KEY', 'WANDB_IDENTITY_TOKEN_FILE', 'WANDB_MODE', 'WANDB_DISABLED',
                 'WANDB_BASE_URL'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('NETRC', str(tmp_path / 'no_netrc'))
    tiny_opt['logger']['wandb'] = {'project': 'tiny', 'mode': 'online'}
    assert fails_at_start_up(train_main, tiny_opt, tmp_path, capsys) == (
        "logger.wandb: mode online logs to https://api.wandb.ai, but no wandb API key was found "
        "(WANDB_API_KEY, or the netrc entry 'wandb login' writes); run wandb login, set "
        "WANDB_API_KEY, or set logger.wandb.mode: offline (wandb sync uploads it later).")


def test_wandb_credentials_and_local_modes(tmp_path, monkeypatch):
    for name in ('WANDB_API_KEY', 'WANDB_IDENTITY_TOKEN_FILE', 'WANDB_MODE', 'WANDB_DISABLED',
                 'WANDB_BASE_URL'):
        monkeypatch.delenv(name, raising=False)
    netrc_file = tmp_path / 'netrc'
    netrc_file.write_text('machine example.org login user password secret\n')
    monkeypatch.setenv('NETRC', str(netrc_file))
    assert wandb_problem({'mode': None}).startswith('logger.wandb: mode online logs to')
    assert wandb_problem({'mode': 'offline'}) is None
    monkeypatch.setenv('WANDB_MODE', 'disabled')
    assert wandb_problem({'mode': None}) is None
    assert wandb_problem({'mode': 'online'}) is not None  # the option file's mode wins
    netrc_file.write_text('machine api.wandb.ai login user password secret\n')
    assert wandb_problem({'mode': 'online'}) is None
    monkeypatch.setenv('WANDB_BASE_URL', 'https://wandb.example.org')
    assert wandb_problem({'mode': 'online'}) is not None


def test_missing_niqe_file_in_training_and_test(tiny_opt, tmp_path, capsys, monkeypatch):
    missing = tmp_path / 'nowhere' / 'niqe_pris_params.npz'
    monkeypatch.setenv('BASICSR_LITE_NIQE_PARAMS', str(missing))
    tiny_opt['val']['metrics'] = {'niqe': {'type': 'calculate_niqe', 'crop_border': 0}}
    expected = (f'val.metrics.niqe (calculate_niqe): NIQE needs its pristine model '
                f'niqe_pris_params.npz (BasicSR ships it as basicsr/metrics/'
                f'niqe_pris_params.npz); not found at {missing}.')
    assert fails_at_start_up(train_main, tiny_opt, tmp_path, capsys).startswith(expected)
    test_opt = {k: v for k, v in tiny_opt.items() if k not in ('train', 'logger')}
    test_opt['datasets'] = {'test_1': tiny_opt['datasets']['val']}
    test_opt['path'] = {'pretrain_network_g': str(tmp_path / 'bad.yml'),  # never read
                        'results_root': str(tmp_path / 'results')}
    assert fails_at_start_up(evaluate_main, test_opt, tmp_path, capsys).startswith(expected)


def test_test_py_checks_the_network_against_its_datasets(tiny_opt, tmp_path, capsys):
    test_opt = {k: v for k, v in tiny_opt.items() if k not in ('train', 'logger', 'val')}
    test_opt['datasets'] = {'test_1': tiny_opt['datasets']['val']}
    test_opt['network_g'] = {**tiny_opt['network_g'], 'num_in_ch': 4}
    test_opt['path'] = {'pretrain_network_g': str(tmp_path / 'bad.yml'),
                        'results_root': str(tmp_path / 'results')}
    assert fails_at_start_up(evaluate_main, test_opt, tmp_path, capsys).splitlines()[1] == (
        '  - network_g.num_in_ch: MSRResNet takes 4 channel(s), but datasets.test_1 give '
        '3-channel LQ images (RGB images).')


@pytest.mark.parametrize('options, needs', [
    ({'type': 'MSRResNet', 'upscale': 3}, NetworkNeeds(in_ch=3, out_ch=3, scale=3)),
    ({'type': 'FSRCNN', 'upscale': 2},
     NetworkNeeds(in_ch=1, out_ch=1, scale=2, out_key='num_in_ch')),
    ({'type': 'SwinIR', 'in_chans': 1, 'upscale': 4},
     NetworkNeeds(in_ch=1, out_ch=1, scale=1, in_key='in_chans', out_key='in_chans',
                  scale_key='upsampler')),
    ({'type': 'SwinIR', 'upscale': 3, 'upsampler': 'pixelshuffledirect'},
     NetworkNeeds(in_ch=3, out_ch=3, scale=3, in_key='in_chans', out_key='in_chans')),
    ({'type': 'RRDBNet', 'num_in_ch': 4, 'num_out_ch': 3, 'scale': 1},
     NetworkNeeds(in_ch=4, out_ch=3, scale=1, input_multiple=4, scale_key='scale',
                  size_key='scale')),
    ({'type': 'ArbSR'}, NetworkNeeds(in_ch=3, out_ch=3, scale=None, scale_key='scale')),
    ({'type': 'VGGStyleDiscriminator', 'input_size': 256},
     NetworkNeeds(in_ch=3, input_size=256, size_key='input_size')),
    ({'type': 'UNetGenerator', 'num_downs': 6},
     NetworkNeeds(in_ch=3, out_ch=3, scale=1, input_multiple=64, size_key='num_downs')),
    ({'type': 'ResNetGenerator'}, NetworkNeeds(in_ch=3, out_ch=3, scale=1, input_multiple=4)),
])
def test_network_needs_from_constructor_options(options, needs):
    assert network_needs(options) == needs


def test_niqe_file_is_looked_up_on_every_call(tmp_path, monkeypatch):
    """The cached contents of one file must not stand in for a file the environment no longer
    names (a run after another in one process found 'NIQE ready' and failed mid-validation)."""
    from basicsr_lite.metrics.niqe_metric import NiqeParamsMissing, load_params
    found = tmp_path / 'niqe_pris_params.npz'
    np.savez(found, mu_pris_param=np.arange(3.0), cov_pris_param=np.eye(2),
             gaussian_window=np.full((1, 1), 0.5))
    monkeypatch.setenv('BASICSR_LITE_NIQE_PARAMS', str(found))
    mu, cov, window = load_params()
    assert mu.tolist() == [0.0, 1.0, 2.0] and cov.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert window.tolist() == [[0.5]]
    monkeypatch.setenv('BASICSR_LITE_NIQE_PARAMS', str(tmp_path / 'moved.npz'))
    with pytest.raises(NiqeParamsMissing, match=f"not found at {tmp_path / 'moved.npz'}"):
        load_params()
