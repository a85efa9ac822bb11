"""Self-describing checkpoints (issue 28): ``logger.save_format: safetensors`` writes the network
files as safetensors with the architecture in the metadata; the weights are the .pth run's
bitwise, resume and ``--auto_resume`` work with either format (also when it changes between
runs), and the file alone is enough for test.py, tools/inference.py and check_interop.py.

spandrel (check_interop) comes through tests/spandrel_support.py (a torchvision stand-in where
torchvision is missing: see its docstring)."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open

from basicsr_lite.archs import build_network
from basicsr_lite.engine.checkpoint import find_resumable_state, network_file_for_state
from basicsr_lite.engine.checkpoint.files import prune_checkpoints, write_networks
from basicsr_lite.engine.checkpoint.metadata import network_metadata
from basicsr_lite.errors import OptionError
from basicsr_lite.options.parse import validate_options
from basicsr_lite.runtime.weights import (load_torch, load_weights, load_weights_into,
                                          save_safetensors, save_torch)
from basicsr_lite.test import main as evaluate_main
from basicsr_lite.tools import check_interop
from basicsr_lite.tools import inference as inference_tool
from basicsr_lite.train import main as train_main
from tests.conftest import write_yaml
from tests.runs import assert_identical, configure, final_weights
from tests.spandrel_support import spandrel  # noqa: F401  (fixture)
from tests.test_gan_models import gan_opt  # noqa: F401  (fixture)


def metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), 'pt') as f:
        return dict(f.metadata())


def run(opt: dict, yml: Path, *extra: str) -> None:
    assert train_main(['-opt', str(write_yaml(yml, opt)), *extra]) == 0


def test_save_format_is_checked(tiny_opt):
    tiny_opt['logger']['save_format'] = 'safetensor'
    with pytest.raises(OptionError, match=r"logger.save_format: 'safetensor' is not one of "
                                          r"\['pth', 'safetensors'\].*did you mean"):
        validate_options(tiny_opt, True)
    tiny_opt['logger'].pop('save_format')
    assert validate_options(tiny_opt, True)['logger']['save_format'] == 'pth'  # BasicSR's


def test_safetensors_run_equals_pth_run_and_describes_itself(tiny_opt, tmp_path):
    """Same run in both formats: every network file holds the same tensors bitwise; the
    safetensors ones carry the metadata, and the best checkpoints follow the format."""
    tiny_opt['logger']['keep_best_checkpoints'] = {'metric': 'psnr', 'k': 2}
    named = {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    tiny_opt['network_g'] = dict(named)  # num_in_ch / num_out_ch left to their defaults
    roots = {}
    for fmt in ('pth', 'safetensors'):
        opt = copy.deepcopy(tiny_opt)
        opt['logger']['save_format'] = fmt
        roots[fmt] = tmp_path / fmt
        opt['path']['experiments_root'] = str(roots[fmt])
        run(opt, tmp_path / f'{fmt}.yml')
    models = roots['safetensors'] / 'models'
    assert sorted(p.name for p in models.glob('net_g_*')) == [
        'net_g_3.safetensors', 'net_g_6.safetensors', 'net_g_best_psnr.safetensors',
        'net_g_best_psnr_3.safetensors', 'net_g_best_psnr_6.safetensors',
        'net_g_latest.safetensors']
    for tag in ('3', '6', 'latest', 'best_psnr'):
        pth = load_torch(roots['pth'] / 'models' / f'net_g_{tag}.pth')
        sft = load_weights(models / f'net_g_{tag}.safetensors')
        assert list(sft) == ['params', 'params_ema']
        assert_identical(pth, sft)
    meta = metadata(models / 'net_g_latest.safetensors')
    net = json.loads(meta.pop('network_g'))
    assert meta == {'format': 'basicsr_lite', 'label': 'net_g', 'arch': 'MSRResNet',
                    'scale': '2', 'iteration': '6', 'param_keys': 'params,params_ema'}
    # the option file's arguments, and the constructor's defaults it leaves out
    assert net == {**named, 'num_in_ch': 3, 'num_out_ch': 3}
    assert metadata(models / 'net_g_3.safetensors')['iteration'] == '3'
    best = json.loads((models / 'best_psnr.json').read_text())['best']
    assert {e['file'] for e in best} == {'net_g_best_psnr_3.safetensors',
                                         'net_g_best_psnr_6.safetensors'}
    state = load_torch(roots['safetensors'] / 'training_states' / '6.state')
    assert state['network_files'] == {'net_g': 'net_g_6.safetensors'}
    # the file alone rebuilds the network and loads strictly with either param key
    for key in ('params', 'params_ema'):
        rebuilt = build_network(net)
        load_weights_into(rebuilt, str(models / 'net_g_latest.safetensors'), True, key)
        for name, value in rebuilt.state_dict().items():
            assert torch.equal(value, load_torch(roots['pth'] / 'models' /
                                                 'net_g_latest.pth')[key][name])


@pytest.mark.parametrize('first,second', [
    ('safetensors', 'safetensors'),
    pytest.param('pth', 'safetensors', marks=pytest.mark.slow),
    pytest.param('safetensors', 'pth', marks=pytest.mark.slow)])
def test_auto_resume_in_either_format_is_exact(tiny_opt, tmp_path, first, second):
    """10 iterations straight (.pth) == 6 in ``first``, then --auto_resume to 10 in ``second``."""
    straight = configure(tiny_opt, tmp_path / 'straight', 10, 4)
    run(straight, tmp_path / 'straight.yml')
    opt = configure(tiny_opt, tmp_path / 'run', 6, 3)
    opt['train']['scheduler']['periods'] = [10]
    opt['logger']['save_format'] = first
    run(opt, tmp_path / 'a.yml')
    opt['train']['total_iter'], opt['logger']['save_format'] = 10, second
    run(opt, tmp_path / 'b.yml', '--auto_resume')
    # (a run that started over would end the same: check that it resumed)
    log = sorted((tmp_path / 'run').glob('train_*.log'))[-1].read_text()
    assert 'training_states/6.state: epoch' in log
    assert re.search(r'Start training from epoch \d+, iter 6\.', log)
    models = tmp_path / 'run' / 'models'
    final = load_weights(models / f'net_g_latest.{second}')
    assert_identical(final_weights(tmp_path / 'straight'), final)
    other = 'pth' if second == 'safetensors' else 'safetensors'
    assert not (models / f'net_g_latest.{other}').exists()  # one file per tag


@pytest.mark.slow  # default-suite time: kept for the slow run
def test_resume_follows_the_newest_checkpoint_whatever_its_format(tiny_opt, tmp_path):
    """pth to 4, safetensors to 6, pth to 10 (keep_last_checkpoints 2): the third run resumes
    from the safetensors state of 6, ends as the straight run, and pruning removed the old
    checkpoints in both formats."""
    straight = configure(tiny_opt, tmp_path / 'straight', 10, 4)
    run(straight, tmp_path / 'straight.yml')
    opt = configure(tiny_opt, tmp_path / 'run', 4, 2)
    opt['train']['scheduler']['periods'] = [10]
    opt['logger']['keep_last_checkpoints'] = 2
    root = tmp_path / 'run'
    for total, fmt in ((4, 'pth'), (6, 'safetensors'), (10, 'pth')):
        opt['train']['total_iter'], opt['logger']['save_format'] = total, fmt
        run(opt, tmp_path / f'{total}.yml', '--auto_resume')
        if total == 6:
            assert sorted(p.name for p in (root / 'models').glob('net_g_*')) == [
                'net_g_4.pth', 'net_g_6.safetensors', 'net_g_latest.safetensors']
    log = sorted(root.glob('train_*.log'))[-1].read_text()
    assert 'training_states/6.state: epoch' in log and 'iter 6.' in log
    assert_identical(final_weights(tmp_path / 'straight'), final_weights(root))
    assert sorted(p.name for p in (root / 'models').glob('net_g_*')) == [
        'net_g_10.pth', 'net_g_8.pth', 'net_g_latest.pth']


@pytest.mark.slow  # default-suite time: kept for the slow run
def test_resume_state_naming_a_safetensors_checkpoint_of_another_folder(tiny_opt, tmp_path):
    """``path.resume_state`` of a safetensors run's state, in a new experiment folder: its
    network file is found beside the state, and the run ends as the straight one."""
    straight = configure(tiny_opt, tmp_path / 'straight', 10, 4)
    run(straight, tmp_path / 'straight.yml')
    first = configure(tiny_opt, tmp_path / 'first', 6, 3)
    first['train']['scheduler']['periods'] = [10]
    first['logger']['save_format'] = 'safetensors'
    run(first, tmp_path / 'first.yml')
    second = configure(first, tmp_path / 'second', 10, 4)
    second['path']['resume_state'] = str(tmp_path / 'first' / 'training_states' / '6.state')
    run(second, tmp_path / 'second.yml')
    log = next((tmp_path / 'second').glob('train_*.log')).read_text()
    assert re.search(r'Start training from epoch \d+, iter 6\.', log)
    final = load_weights(tmp_path / 'second' / 'models' / 'net_g_latest.safetensors')
    assert_identical(final_weights(tmp_path / 'straight'), final)


def test_finding_and_pruning_know_both_suffixes(tmp_path):
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    weights = {'params': {'w': torch.ones(2)}}
    for it in (2, 4, 6):
        save_torch({'iter': it}, states / f'{it}.state')
    save_torch(weights, models / 'net_g_2.pth')
    save_safetensors(weights, models / 'net_g_4.safetensors', {})
    path, state = find_resumable_state(states, models)  # 6 has no network file
    assert path == states / '4.state'
    assert network_file_for_state(path, state, str(models)) == models / 'net_g_4.safetensors'
    recorded = {'iter': 2, 'network_files': {'net_g': 'net_g_2.pth'}}
    assert network_file_for_state(states / '2.state', recorded, str(models)).name == 'net_g_2.pth'
    assert prune_checkpoints(states, models, 1) == [4, 2]
    assert not list(models.iterdir())


def self_describing_run(tiny_opt, tmp_path, network: dict | None = None) -> Path:
    opt = configure(tiny_opt, tmp_path / 'exp', 2, 2)
    if network is not None:
        opt['network_g'] = network
    opt['logger']['save_format'] = 'safetensors'
    run(opt, tmp_path / 'train.yml')
    return tmp_path / 'exp' / 'models' / 'net_g_latest.safetensors'


def test_the_file_alone_is_enough_for_test_py(tiny_opt, tiny_data, tmp_path):
    """test.py with ``network_g: {type: auto}`` and with no network_g: the metadata names the
    network; the metrics equal those with the network spelled out."""
    weights = self_describing_run(tiny_opt, tmp_path)
    means = {}
    for case, network in (('named', tiny_opt['network_g']), ('auto', {'type': 'auto'}),
                          ('absent', None)):
        opt = {'name': case, 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0,
               'datasets': {'test_1': {**tiny_opt['datasets']['val'], 'name': 'tiny'}},
               'path': {'pretrain_network_g': str(weights), 'param_key_g': 'params_ema',
                        'results_root': str(tmp_path / case)},
               'val': {'save_img': False, 'metrics': tiny_opt['val']['metrics']}}
        if network is not None:
            opt['network_g'] = network
        assert evaluate_main(['-opt', str(write_yaml(tmp_path / f'{case}.yml', opt))]) == 0
        means[case] = json.loads((tmp_path / case / 'metrics.json').read_text())['tiny']['mean']
    assert means['auto'] == means['named'] == means['absent']
    assert means['named']['psnr'] > 10


@pytest.mark.slow  # default-suite time: kept for the slow run
def test_the_file_alone_is_enough_for_inference(tmp_path):
    """``--pretrained`` takes the metadata's options, also those the weights do not show
    (EDSR's res_scale 0.5, rgb_mean: detection would build 1.0 and DIV2K's mean)."""
    options = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
               'upscale': 2, 'res_scale': 0.5, 'rgb_mean': [0.5, 0.5, 0.5]}
    torch.manual_seed(0)
    net = build_network(options)
    weights = tmp_path / 'edsr.safetensors'
    opt = {'scale': 2, 'network_g': options}
    write_networks({'params': net}, weights, network_metadata(opt, 'net_g', 0, ['params']))
    inputs = tmp_path / 'in'
    inputs.mkdir()
    img = np.random.default_rng(3).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    cv2.imwrite(str(inputs / 'a.png'), img)
    arch_opt = [f'{k}={v}' for k, v in options.items() if k not in ('type', 'upscale')]
    for name, args in (('pretrained', ['--pretrained', str(weights)]),
                       ('named', ['--arch', 'EDSR', '--scale', '2', '--arch-opt', *arch_opt,
                                  '--weights', str(weights)]),
                       ('defaults', ['--arch', 'EDSR', '--scale', '2', '--arch-opt',
                                     *arch_opt[:4], '--weights', str(weights)])):
        assert inference_tool.main(['-i', str(inputs), '-o', str(tmp_path / name),
                                    '--device', 'cpu', *args]) == 0
    a, b, c = (cv2.imread(str(tmp_path / n / 'a.png')) for n in ('pretrained', 'named',
                                                                   'defaults'))
    assert a.shape == (24, 20, 3) and np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.slow  # default-suite time: kept for the slow run
def test_the_file_alone_is_enough_for_check_interop(spandrel, tiny_opt, tmp_path, capsys):
    compact = {'type': 'SRVGGNetCompact', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8,
               'num_conv': 2, 'upscale': 2}
    weights = self_describing_run(tiny_opt, tmp_path, compact)
    assert check_interop.main([str(weights)]) == 0
    out = capsys.readouterr().out
    assert 'interop check passes for SRVGGNetCompact' in out and "'num_conv': 2" in out
    assert check_interop.main([str(tmp_path / 'exp')]) == 0  # the experiment folder
    assert 'net_g_latest.safetensors' in capsys.readouterr().out


@pytest.mark.slow  # default-suite time: kept for the slow run
def test_gan_discriminator_file_describes_itself_and_resumes(gan_opt, tmp_path):
    """An ESRGAN run: ``net_d`` files carry ``network_d`` (not ``network_g``), and a resume
    loads both networks from safetensors."""
    opt = configure(gan_opt, tmp_path / 'gan', 3, 3)
    opt['logger']['save_format'] = 'safetensors'
    run(opt, tmp_path / 'a.yml')
    meta = metadata(tmp_path / 'gan' / 'models' / 'net_d_3.safetensors')
    assert meta['label'] == 'net_d' and meta['arch'] == 'UNetDiscriminatorSN'
    assert 'network_g' not in meta and meta['param_keys'] == 'params'
    assert json.loads(meta['network_d']) == {'type': 'UNetDiscriminatorSN', 'num_feat': 4,
                                             'num_in_ch': 3, 'skip_connection': True}
    opt['train']['total_iter'] = 4
    run(opt, tmp_path / 'b.yml', '--auto_resume')
    log = sorted((tmp_path / 'gan').glob('train_*.log'))[-1].read_text()
    assert 'Loaded UNetDiscriminatorSN from' in log and 'net_d_3.safetensors [params]' in log
    assert (tmp_path / 'gan' / 'models' / 'net_d_latest.safetensors').is_file()
