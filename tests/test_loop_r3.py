"""Issue 22, the loop's part: a branch applies the option file's optimizer and schedule, the final
validation goes through every hook (once), epoch hooks across a resume, and resume checks."""
from __future__ import annotations

import copy
import json
import logging
import os
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

from basicsr_lite.engine.checkpoint import (LoopState, check_resume_state, restore,
                                           save_checkpoint, state_iterations)
from basicsr_lite.engine.hooks import Hook, Run
from basicsr_lite.models import build_model
from basicsr_lite.options import parse_options
from basicsr_lite.prep.synthetic import make_paired_folder
from basicsr_lite.runtime.weights import CheckpointError, load_weights_into, save_torch
from basicsr_lite.train import train_pipeline
from tests.conftest import SCALE, TINY_OPT, write_yaml
from tests.runs import load, saved_iterations, train_in_process


class Recorder(Hook):
    """Records the calls the tests look at: validations, checkpoints, epochs."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_epoch_start(self, run: Run, epoch: int) -> None:
        self.calls.append(('epoch_start', epoch, run.loop.current_iter))

    def on_epoch_end(self, run: Run, epoch: int) -> None:
        self.calls.append(('epoch_end', epoch, run.loop.current_iter))

    def on_validation_end(self, run: Run, it: int, results: dict) -> None:
        self.calls.append(('validation', it, results['tiny_val'].means['psnr']))

    def on_checkpoint(self, run: Run, it: int) -> None:
        self.calls.append(('checkpoint', it))


def tiny(root: Path) -> dict:
    """TINY_OPT on data in ``root``: 4 images x enlarge 2 / batch 2 = 4 iterations per epoch;
    Adam lr 1e-3, MultiStepLR halving it after iteration 4 (milestone 4)."""
    train_gt, train_lq = make_paired_folder(root / 'train', [f'img{i}' for i in range(4)],
                                            (48, 48), SCALE, seed=1)
    val_gt, val_lq = make_paired_folder(root / 'val', ['a', 'b'], (32, 40), SCALE, seed=2)
    opt = copy.deepcopy(TINY_OPT)
    opt['datasets']['train'].update(dataroot_gt=str(train_gt), dataroot_lq=str(train_lq))
    opt['datasets']['val'].update(dataroot_gt=str(val_gt), dataroot_lq=str(val_lq))
    opt['val']['save_img'] = False
    opt['path'] = {'experiments_root': str(root / 'experiments' / 'tiny')}
    return opt


def built_model(opt: dict, folder: Path):
    parsed, _ = parse_options(['-opt', str(write_yaml(folder / 'b.yml', opt))], is_train=True)
    parsed['rank'], parsed['world_size'] = 0, 1
    return build_model(parsed, torch.device('cpu')), parsed


@pytest.fixture(scope='module')
def made(tmp_path_factory) -> dict:
    """A training state at iteration 6 made without a training run: one Adam step on random
    images, the schedule stepped to iteration 6 (position 5: milestone 4 passed, lr 5e-4)."""
    root = tmp_path_factory.mktemp('made')
    opt = tiny(root)
    model, parsed = built_model(opt, root)
    torch.manual_seed(0)
    model.feed_data({'lq': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 16, 16)})
    model.optimize_parameters(1)
    for it in range(2, 7):
        model.update_learning_rate(it)
    assert model.optimizers[0].param_groups[0]['lr'] == 5e-4
    for key in ('models', 'training_states'):
        Path(parsed['path'][key]).mkdir(parents=True)
    save_checkpoint(model, LoopState(6, 1, 2), parsed)
    exp = Path(opt['path']['experiments_root'])
    return {'opt': opt, 'exp': exp, 'state_path': exp / 'training_states' / '6.state'}


@pytest.fixture(scope='module')
def source(tmp_path_factory) -> dict:
    """One 6-iteration run shared by the tests: a state and network file every iteration,
    validations at 3 and 6 (the final one), the 2 best checkpoints by PSNR; what a Recorder
    saw of it."""
    root = tmp_path_factory.mktemp('source')
    opt = tiny(root)
    opt['logger'].update(save_checkpoint_freq=1, keep_best_checkpoints={'metric': 'psnr', 'k': 2})
    recorder = Recorder()
    train_pipeline(['-opt', str(write_yaml(root / 'source.yml', opt))], hooks=[recorder])
    return {'opt': opt, 'root': root, 'exp': Path(opt['path']['experiments_root']),
            'calls': recorder.calls}


class Messages(logging.Handler):
    """The package logger's records (it does not propagate to pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def messages():
    handler, package_logger = Messages(), logging.getLogger('basicsr_lite')
    level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    yield handler
    package_logger.removeHandler(handler)
    package_logger.setLevel(level)


def log_text(exp: Path) -> str:
    return ''.join(p.read_text() for p in sorted(exp.glob('train_*.log')))


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob('*')}


# ---- item 3 of the issue: the final validation is a validation ----------------------------------

@pytest.mark.slow  # training runs
def test_the_final_validation_goes_through_every_hook_once(source):
    exp, calls = source['exp'], source['calls']
    validations = [c for c in calls if c[0] == 'validation']
    assert [c[1] for c in validations] == [3, 6]
    # validation first, then the checkpoint of the same iteration
    assert calls.index(validations[1]) + 1 == calls.index(('checkpoint', 6))
    psnr = {it: value for _, it, value in validations}
    # The best-K list holds the final iteration; each file holds its iteration's weights.
    listing = json.loads((exp / 'models' / 'best_psnr.json').read_text())
    ranked = sorted(psnr, key=lambda it: -psnr[it])
    assert [e['iter'] for e in listing['best']] == ranked
    assert [e['value'] for e in listing['best']] == [psnr[it] for it in ranked]
    for it in (3, 6):
        assert_same_weights(exp / 'models' / f'net_g_best_psnr_{it}.pth',
                            exp / 'models' / f'net_g_{it}.pth')
    assert_same_weights(exp / 'models' / 'net_g_best_psnr.pth',
                        exp / 'models' / f'net_g_{ranked[0]}.pth')
    assert_same_weights(exp / 'models' / 'net_g_6.pth', exp / 'models' / 'net_g_latest.pth')
    # It runs once: the final table shows the values of the validation at 6.
    log = log_text(exp)
    assert log.count('Validation tiny_val') == 2
    table = log.split('Final validation on tiny_val (2 images):')[1]
    assert table.split('\n')[2].split()[:2] == ['psnr', f'{psnr[6]:.4f}']
    assert f'Best: {psnr[ranked[0]]:.4f} @ {ranked[0]} iter' in log.split('iter:       6,')[1]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load(a), load(b)
    assert set(wa) == set(wb) == {'params', 'params_ema'}
    for key in wa:
        assert all(torch.equal(wa[key][n], wb[key][n]) for n in wa[key]), f'{a} vs {b}: {key}'


# ---- item 1: a branch applies the option file's optimizer and schedule ---------------------------

@pytest.mark.slow  # training runs
def test_branch_with_half_the_lr_steps_half_as_far(source, tmp_path):
    opt = copy.deepcopy(source['opt'])
    opt['train'].update(total_iter=4)
    opt['logger'].update(keep_best_checkpoints=None)
    state_3 = source['exp'] / 'training_states' / '3.state'
    assert train_in_process(tmp_path, opt, '--branch', 'half', '--force_yml',
                            'train:optim_g:lr=0.0005', f'path:resume_state={state_3}') == 0
    branch = source['exp'].with_name('half')
    assert 'Branch: train.optim_g.lr: 0.001 -> 0.0005 (the state had the first value).' \
        in log_text(branch)
    state = load(branch / 'training_states' / '4.state')
    group = state['optimizers'][0]['param_groups'][0]
    assert (group['lr'], group['initial_lr']) == (5e-4, 5e-4)
    assert state['schedulers'][0]['base_lrs'] == [5e-4]
    # Same state, data and gradients as the source's iteration 4: Adam's step is lr times the
    # same direction, so half as long.
    before = load(source['exp'] / 'models' / 'net_g_3.pth')['params']
    source_4 = load(source['exp'] / 'models' / 'net_g_4.pth')['params']
    branch_4 = load(branch / 'models' / 'net_g_latest.pth')['params']
    for name, w in before.items():
        full, half = source_4[name] - w, branch_4[name] - w
        assert full.abs().max() > 1e-4
        torch.testing.assert_close(half, full / 2, rtol=1e-3, atol=1e-8)


@pytest.mark.parametrize('change, lr, base_lr, next_lr, logged', [
    # at state 6 (scheduler position 5) milestone 4 has halved the lr: 2e-3 -> 1e-3
    ({'optim_g': {'type': 'Adam', 'lr': 2e-3}}, 1e-3, 2e-3, 1e-3,
     ['train.optim_g.lr: 0.001 -> 0.002']),
    # milestone 6 not passed yet: the full lr, halved at iteration 7 (position 6)
    ({'scheduler': {'type': 'MultiStepLR', 'milestones': [6], 'gamma': 0.5}}, 1e-3, 1e-3, 5e-4,
     ['train.scheduler.milestones: [4] -> [6]']),
    ({'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.5, 0.99]},
      'scheduler': {'type': 'MultiStepLR', 'milestones': [4], 'gamma': 0.25}}, 2.5e-4, 1e-3,
     2.5e-4,
     ['train.optim_g.betas: [0.9, 0.999] -> [0.5, 0.99]', 'train.scheduler.gamma: 0.5 -> 0.25']),
])
def test_branch_settings_at_the_saved_position(made, tmp_path, messages, change, lr, base_lr,
                                               next_lr, logged):
    opt = copy.deepcopy(made['opt'])
    opt['train'].update(change)
    model, parsed = built_model(opt, tmp_path)
    state_path = made['state_path']
    saved = load(state_path)
    loop = restore(model, parsed, state_path, saved, branching=True)
    assert loop.current_iter == 6
    (optimizer,), (scheduler,) = model.optimizers, model.schedulers
    group = optimizer.param_groups[0]
    assert (group['lr'], group['initial_lr'], scheduler.base_lrs) == (lr, base_lr, [base_lr])
    assert scheduler.last_epoch == saved['schedulers'][0]['last_epoch'] == 5
    assert group['betas'] == tuple(opt['train']['optim_g'].get('betas', (0.9, 0.999)))
    # the optimizer's state tensors are the source's
    moments = saved['optimizers'][0]['state'][0]['exp_avg']
    assert torch.equal(optimizer.state_dict()['state'][0]['exp_avg'], moments)
    assert [r.getMessage() for r in messages.records if r.getMessage().startswith('Branch:')] == \
        [f'Branch: {line} (the state had the first value).' for line in logged]
    # The next step of the schedule goes on from there (iteration 7: position 6).
    model.update_learning_rate(7)
    assert group['lr'] == next_lr


def test_a_plain_resume_keeps_the_saved_settings_and_says_which_differ(made, tmp_path,
                                                                        messages):
    opt = copy.deepcopy(made['opt'])
    opt['train']['optim_g']['lr'] = 2e-3
    model, parsed = built_model(opt, tmp_path)
    state_path = made['state_path']
    restore(model, parsed, state_path, load(state_path))
    group = model.optimizers[0].param_groups[0]
    assert (group['lr'], group['initial_lr'], model.schedulers[0].base_lrs) == \
        (5e-4, 1e-3, [1e-3])
    (warning,) = [r.getMessage() for r in messages.records if r.levelno == logging.WARNING]
    assert warning == (f'Resuming {state_path}: the option file changes settings that a resume '
                       f'does not apply (it continues the saved run; --branch applies them): '
                       f'train.optim_g.lr: 0.001 -> 0.002.')


# ---- item 3: epoch hooks -------------------------------------------------------------------------

@pytest.mark.slow  # training runs
def test_epoch_hooks_once_per_epoch_across_resumes(tmp_path):
    opt = tiny(tmp_path)
    opt['val'] = None
    del opt['datasets']['val']
    opt['logger']['save_checkpoint_freq'] = 2
    opt['train']['total_iter'] = 9
    straight = Recorder()
    train_pipeline(['-opt', str(write_yaml(tmp_path / 'straight.yml', opt))], hooks=[straight])
    # 4 iterations per epoch: each starts at its first batch, ends after its last one (before
    # that iteration's checkpoint)
    assert straight.calls == [
        ('epoch_start', 0, 0), ('checkpoint', 2), ('epoch_end', 0, 4), ('checkpoint', 4),
        ('epoch_start', 1, 4), ('checkpoint', 6), ('epoch_end', 1, 8), ('checkpoint', 8),
        ('epoch_start', 2, 8)]
    # Stopped at an epoch's end (4), in the middle of one (6), resumed each time.
    opt['path']['experiments_root'] = str(tmp_path / 'experiments' / 'pieces')
    pieces = []
    for total in (4, 6, 9):
        opt['train']['total_iter'] = total
        pieces.append(Recorder())
        train_pipeline(['-opt', str(write_yaml(tmp_path / 'pieces.yml', opt)), '--auto_resume'],
                       hooks=[pieces[-1]])
    assert [call for piece in pieces for call in piece.calls] == straight.calls
    assert pieces[1].calls[0] == ('epoch_start', 1, 4) and pieces[2].calls[0] == ('epoch_end', 1, 8)


class OneEpoch(Recorder):
    """Ends training after the first epoch."""

    def on_epoch_end(self, run: Run, epoch: int) -> None:
        super().on_epoch_end(run, epoch)
        run.finish('one epoch')


@pytest.mark.slow  # a training run
def test_a_run_ended_by_a_hook_is_validated_there_once(tmp_path):
    opt = tiny(tmp_path)
    opt['train']['total_iter'] = 9
    opt['val']['val_freq'] = 100
    hook = OneEpoch()
    train_pipeline(['-opt', str(write_yaml(tmp_path / 'one.yml', opt))], hooks=[hook])
    (validation,) = [c for c in hook.calls if c[0] == 'validation']
    assert hook.calls == [('epoch_start', 0, 0), ('checkpoint', 3), ('epoch_end', 0, 4),
                          validation, ('checkpoint', 4)]
    assert validation[1] == 4
    log = log_text(Path(opt['path']['experiments_root']))
    assert log.count('Validation tiny_val') == 1
    assert 'Training ends at iteration 4: one epoch' in log
    table = log.split('Final validation on tiny_val (2 images):')[1]
    assert table.split('\n')[2].split()[:2] == ['psnr', f'{validation[2]:.4f}']


class SigtermBeforeTheEnd(Hook):
    """Sends this process SIGTERM after the last iteration but one."""

    def on_iter_end(self, run: Run, it: int, log) -> None:
        if it == run.opt['train']['total_iter'] - 1:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow  # a training run
def test_a_stop_at_the_last_iteration_finishes_the_run(tmp_path, capfd):
    opt = tiny(tmp_path)
    opt['val'] = None
    del opt['datasets']['val']
    opt['logger']['save_checkpoint_freq'] = 4
    train_pipeline(['-opt', str(write_yaml(tmp_path / 'stop.yml', opt))],
                   hooks=[SigtermBeforeTheEnd()])
    exp = Path(opt['path']['experiments_root'])
    assert 'SIGTERM received' in capfd.readouterr().err
    log = log_text(exp)
    assert 'Stopped by' not in log and 'End of training' in log
    assert saved_iterations(exp) == [4, 6]  # the stop's state, and the run is complete
    assert_same_weights(exp / 'models' / 'net_g_6.pth', exp / 'models' / 'net_g_latest.pth')


# ---- item 4: resume checks -----------------------------------------------------------------------

def resume_opt(made: dict, tmp_path: Path, state: dict, **train) -> dict:
    """Options resuming ``state`` (written beside the network files of ``made``)."""
    path = made['exp'] / 'training_states' / f'edited_{tmp_path.name}.state'
    save_torch(state, path)
    opt = copy.deepcopy(made['opt'])
    opt['train'].update(train)
    opt['path'].update(resume_state=str(path), experiments_root=str(tmp_path / 'resumed'))
    return opt


def test_a_state_of_another_model_type_is_named(made, tmp_path, capsys):
    state = load(made['state_path'])
    assert state['model_type'] == 'SRModel'
    opt = resume_opt(made, tmp_path, {**state, 'model_type': 'ESRGANModel'})
    edited = opt['path']['resume_state']
    assert train_in_process(tmp_path, opt) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f'Error: {edited} is a training state of model_type ESRGANModel, '
        f'but this option file trains model_type SRModel. Resume it with its own option file, '
        f'or start a new run from its network files (path.pretrain_network_g).')
    # A state that does not say (BasicSR's): its optimizers are counted, not blamed.
    legacy = {k: v for k, v in state.items() if k != 'model_type'}
    legacy['optimizers'] = legacy['optimizers'] * 2
    legacy['schedulers'] = legacy['schedulers'] * 2
    opt = resume_opt(made, tmp_path, legacy)
    assert train_in_process(tmp_path, opt) == 2
    assert (f'Error: {edited} holds 2 optimizer(s) and 2 scheduler(s); a '
            f'SRModel with this option file has 1 (train.optim_g) and 1. Was it saved by '
            f'another model_type') in capsys.readouterr().err
    assert not (tmp_path / 'resumed').exists()


def test_a_state_past_total_iter_is_refused_before_anything_changes(made, tmp_path, capsys):
    before = tree(made['exp'])
    opt = copy.deepcopy(made['opt'])
    opt['train']['total_iter'] = 5
    assert train_in_process(tmp_path, opt, '--auto_resume') == 2
    state = made['state_path']
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f'Error: train.total_iter is 5, but the training state {state} is already at iteration '
        f'6: nothing to train. Set train.total_iter above 6 to train on from it.')
    assert tree(made['exp']) == before and state_iterations(made['exp'] / 'training_states') == [6]


@pytest.mark.parametrize('branching, level', [(False, logging.WARNING), (True, logging.INFO)])
def test_a_changed_batch_size_or_warmup_is_said(made, messages, branching, level):
    opt = copy.deepcopy(made['opt'])
    opt['datasets']['train']['batch_size_per_gpu'] = 4
    opt['train']['warmup_iter'] = 3
    state_path = made['state_path']
    state = load(state_path)
    assert state['run_settings'] == {'batch_size_per_gpu': 2, 'warmup_iter': -1}
    check_resume_state(opt, 'SRModel', state_path, state, branching)
    said = [(r.levelno, r.getMessage()) for r in messages.records
            if 'trained with' in r.getMessage()]
    assert said == [
        (level, f'datasets.train.batch_size_per_gpu: 2 -> 4 (the state {state_path} was trained '
                f'with 2); the run goes on with 4, so it does not continue the saved run exactly.'),
        (level, f'train.warmup_iter: -1 -> 3 (the state {state_path} was trained with -1); the '
                f'run goes on with 3, so it does not continue the saved run exactly.')]


def test_a_non_strict_load_that_matches_nothing_is_an_error(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 3))
    path = tmp_path / 'other.pth'
    save_torch({'params': {'body.weight': torch.zeros(2, 2), 'body.bias': torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError) as err:
        load_weights_into(net, str(path), strict=False)
    assert str(err.value) == (
        f'{path} has no weight that fits Sequential (strict_load is false, but 0 of its tensors '
        f'match a key and shape of the network). The network expects e.g. 0.weight (4, 3, 3, 3), '
        f'0.bias (4,); the file [params] has e.g. body.weight (2, 2), body.bias (2,).')
    # one tensor that fits: loaded, the rest is a warning as before
    save_torch({'params': {'0.bias': torch.ones(4), 'body.bias': torch.zeros(2)}}, path)
    load_weights_into(net, str(path), strict=False)
    assert torch.equal(net[0].bias, torch.ones(4))
