"""Optimizers of pytorch-optimizer by name (issue 25): option checks, exact resume through the
framework's training state, and schedule-free AdamW's train / eval points (validation and the
saved network files use the averaged weights, the EMA follows the training weights)."""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import torch

from basicsr_lite.engine.hooks import Hook
from basicsr_lite.errors import OptionError
from basicsr_lite.options.parse import validate_options
from basicsr_lite.runtime.dist import unwrap
from basicsr_lite.runtime.optim import OPTIMIZERS, PACKAGE_OPTIMIZERS, build_optimizer
from basicsr_lite.train import main as train_main, train_pipeline
from tests.conftest import TINY_OPT, write_yaml
from tests.runs import assert_identical, final_weights, load

pytest.importorskip('pytorch_optimizer')

# the issue's six, with small settings that make every one of them do its work in 8 steps
RESUMED = {
    'AdamWScheduleFree': {'lr': 2e-3, 'warmup_steps': 2, 'weight_decay': 1e-4},
    'Adan': {'lr': 1e-3, 'weight_decay': 0.02},
    'Prodigy': {'lr': 1.0},
    'Lion': {'lr': 1e-4, 'weight_decay': 0.01},
    'SOAP': {'lr': 1e-3, 'precondition_frequency': 2},
    'ADOPT': {'lr': 1e-3},
}


def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1))


@pytest.mark.parametrize('name', sorted(PACKAGE_OPTIMIZERS))
def test_every_name_builds_and_steps(name):
    model = net()
    optimizer = build_optimizer(model.parameters(), {'type': name})
    assert isinstance(optimizer, OPTIMIZERS[name])
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(6):  # (ADOPT: the first step only initialises; RAdam: 5 steps of warm-up)
        optimizer.zero_grad()
        model(torch.rand(2, 3, 8, 8)).square().mean().backward()
        optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def raw_options(optim_g: dict, **train) -> dict:
    opt = copy.deepcopy(TINY_OPT)
    opt['train'].update(optim_g=optim_g, **train)
    for key, data in opt['datasets'].items():
        data.update(dataroot_gt=f'/nowhere/{key}_gt', dataroot_lq=f'/nowhere/{key}_lq')
    return opt


def test_neosr_and_trainner_names_are_the_same_optimizer():
    assert OPTIMIZERS['AdamWScheduleFree'] is OPTIMIZERS['adamw_sf'] is \
        OPTIMIZERS['ScheduleFreeAdamW']
    assert OPTIMIZERS['Adan'] is OPTIMIZERS['adan']


def test_a_typo_is_one_error_naming_the_key_and_the_right_one():
    raw = raw_options({'type': 'AdamWScheduleFree', 'lr': 1e-3, 'warmup_step': 100})
    with pytest.raises(OptionError) as err:
        validate_options(raw, True, check_paths=False)
    message = str(err.value)
    assert '1 problem(s)' in message
    assert 'train.optim_g.warmup_step: unknown argument of optimizer AdamWScheduleFree' in message
    assert "did you mean 'warmup_steps'" in message


def test_a_misspelt_optimizer_name_is_suggested():
    with pytest.raises(OptionError, match="did you mean 'AdamWScheduleFree'"):
        validate_options(raw_options({'type': 'AdamWSchedulefree', 'lr': 1e-3}), True,
                         check_paths=False)


def test_a_wrongly_typed_argument_is_reported():
    raw = raw_options({'type': 'SOAP', 'lr': 1e-3, 'precondition_frequency': 'often'})
    with pytest.raises(OptionError, match='train.optim_g.precondition_frequency: expected int'):
        validate_options(raw, True, check_paths=False)


def run_opt(tiny_opt: dict, root, optim_g: dict, total: int, **train) -> dict:
    """``tiny_opt`` with ``optim_g`` for ``total`` iterations of an 8-iteration schedule,
    validated every 2 and saved every 4 iterations."""
    opt = copy.deepcopy(tiny_opt)
    opt['train'].update(optim_g=optim_g, total_iter=total,
                        scheduler={'type': 'CosineAnnealingRestartLR', 'periods': [8]}, **train)
    opt['val'].update(val_freq=2, save_img=False)
    opt['logger'].update(save_checkpoint_freq=4, print_freq=4)
    opt['path']['experiments_root'] = str(root)
    return opt


# schedule-free AdamW (the one with modes) in the default run, the others in the slow one
@pytest.mark.parametrize('name', [pytest.param(n, marks=() if n == 'AdamWScheduleFree'
                                               else pytest.mark.slow) for n in sorted(RESUMED)])
def test_resume_is_bitwise(tiny_opt, tmp_path, name):
    """8 iterations straight == 4, save, a fresh process state from the training state file
    (torch.load weights_only=True), 4 more: networks and EMA bitwise equal."""
    optim_g = {'type': name, **RESUMED[name]}
    straight = run_opt(tiny_opt, tmp_path / 'straight', optim_g, 8)
    assert train_main(['-opt', str(write_yaml(tmp_path / 'straight.yml', straight))]) == 0
    first = run_opt(tiny_opt, tmp_path / 'run', optim_g, 4)
    assert train_main(['-opt', str(write_yaml(tmp_path / 'first.yml', first))]) == 0
    second = run_opt(tiny_opt, tmp_path / 'run', optim_g, 8)
    assert train_main(['-opt', str(write_yaml(tmp_path / 'second.yml', second)),
                       '--auto_resume']) == 0
    expected, resumed = final_weights(tmp_path / 'straight'), final_weights(tmp_path / 'run')
    assert_identical(expected, resumed)
    assert not torch.equal(expected['params']['conv_first.weight'],
                           load(tmp_path / 'run' / 'models' / 'net_g_4.pth')['params']
                           ['conv_first.weight'])  # (it trained after the resume)


class Recorder(Hook):
    """Records per iteration the training weights and schedule-free state after the step
    (``on_iter_end`` runs before validation), and what validation evaluated."""

    def __init__(self) -> None:
        self.after_step: dict[int, dict] = {}
        self.validated: dict[int, dict] = {}

    def on_iter_end(self, run, it, log) -> None:
        model = run.model
        optimizer = model.optimizers[0]
        params = dict(unwrap(model.net_g).named_parameters())
        self.after_step[it] = {
            'train_mode': [g['train_mode'] for g in optimizer.param_groups],
            'y': {n: p.detach().clone() for n, p in params.items()},
            'z': {n: optimizer.state[p]['z'].clone() for n, p in params.items()},
            'ema': None if model.ema is None else
            {n: p.clone() for n, p in model.ema.module.named_parameters()}}

    def on_validation_end(self, run, it, results) -> None:
        model = run.model
        self.validated[it] = {
            'train_mode': [g['train_mode'] for g in model.optimizers[0].param_groups],
            'net': {n: p.detach().clone() for n, p in unwrap(model.net_g).named_parameters()},
            'used': {n: p.detach().clone()
                     for n, p in model.inference_network().named_parameters()}}


def schedule_free_run(tiny_opt, tmp_path, ema_decay: float) -> tuple[Recorder, dict]:
    """4 iterations, validated at 3 and 4 (the last), saved at 2 and 4."""
    opt = run_opt(tiny_opt, tmp_path / 'sf', {'type': 'AdamWScheduleFree', 'lr': 2e-3,
                                              'betas': [0.9, 0.999]}, 4, ema_decay=ema_decay)
    opt['train']['scheduler'] = None
    opt['val']['val_freq'] = 3
    opt['logger']['save_checkpoint_freq'] = 2
    recorder = Recorder()
    train_pipeline(['-opt', str(write_yaml(tmp_path / 'sf.yml', opt))], hooks=[recorder])
    return recorder, opt


def test_validation_and_checkpoint_use_the_averaged_weights(tiny_opt, tmp_path):
    """Steps run at the training point y; validation (at iterations 3 and 4) evaluates the
    averaged point x = y + (1 - 1/beta1) (z - y), which is what net_g_4.pth holds; net_g_2.pth,
    saved without a validation, holds that iteration's x too."""
    recorder, _ = schedule_free_run(tiny_opt, tmp_path, ema_decay=0.0)
    assert set(recorder.validated) == {3, 4}
    averaged = {}
    for it in (1, 2, 3, 4):
        step = recorder.after_step[it]
        assert step['train_mode'] == [True]  # every step at y
        averaged[it] = {name: y.lerp(step['z'][name], 1 - 1 / 0.9)
                        for name, y in step['y'].items()}
        if it > 1:  # (after the first step y = z = x)
            assert not any(torch.equal(averaged[it][n], y) for n, y in step['y'].items())
    for it in (3, 4):
        seen = recorder.validated[it]
        assert seen['train_mode'] == [False]
        for name, x in averaged[it].items():
            assert torch.equal(seen['used'][name], x), name
    for it in (2, 4):
        saved = load(tmp_path / 'sf' / 'models' / f'net_g_{it}.pth')['params']
        for name, x in averaged[it].items():
            assert torch.equal(saved[name], x), (it, name)
    saved = load(tmp_path / 'sf' / 'models' / 'net_g_4.pth')['params']
    latest = load(tmp_path / 'sf' / 'models' / 'net_g_latest.pth')['params']
    assert all(torch.equal(latest[n], saved[n]) for n in saved)


def test_ema_follows_the_training_weights(tiny_opt, tmp_path):
    """With EMA, validation evaluates the EMA network, which is updated after each step from
    the training point y (as traiNNer-redux does), never from the averaged x; the checkpoint
    holds that EMA network as params_ema and x as params."""
    recorder, _ = schedule_free_run(tiny_opt, tmp_path, ema_decay=0.9)
    steps = recorder.after_step
    for it in (2, 3, 4):
        for name, ema in steps[it]['ema'].items():
            expected = steps[it - 1]['ema'][name].lerp(steps[it]['y'][name], 1 - 0.9)
            assert torch.equal(ema, expected), name
    saved = load(tmp_path / 'sf' / 'models' / 'net_g_4.pth')
    for name, value in recorder.validated[4]['used'].items():
        assert torch.equal(saved['params_ema'][name], value), name
        assert torch.equal(saved['params'][name], recorder.validated[4]['net'][name])


def test_resume_and_branch_keep_the_state_schedule_free_keeps_in_its_groups(tiny_opt, tmp_path):
    """weight_sum, lr_max, train_mode live in the param groups: they are state, not settings. A
    plain resume warns about nothing; a branch with another lr keeps them (and the state)."""
    from basicsr_lite.engine.checkpoint import LoopState, restore, save_checkpoint
    from basicsr_lite.models import build_model
    from basicsr_lite.options import parse_options
    from tests.test_schedulers_r3 import Messages

    def built(opt):
        parsed, _ = parse_options(['-opt', str(write_yaml(tmp_path / 'b.yml', opt))], True)
        parsed['rank'], parsed['world_size'] = 0, 1
        return build_model(parsed, torch.device('cpu')), parsed

    opt = copy.deepcopy(tiny_opt)
    opt['train']['optim_g'] = {'type': 'AdamWScheduleFree', 'lr': 2e-3}
    model, parsed = built(opt)
    torch.manual_seed(0)
    for it in (1, 2):
        model.update_learning_rate(it)
        model.feed_data({'lq': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 16, 16)})
        model.optimize_parameters(it)
    for key in ('models', 'training_states'):
        Path(parsed['path'][key]).mkdir(parents=True)
    save_checkpoint(model, LoopState(2, 0, 2), parsed)
    state_path = Path(parsed['path']['training_states']) / '2.state'
    saved = load(state_path)['optimizers'][0]['param_groups'][0]
    assert saved['train_mode'] is False and saved['weight_sum'] > 0
    handler = Messages()
    logging.getLogger('basicsr_lite').addHandler(handler)
    try:
        resumed, parsed = built(opt)
        restore(resumed, parsed, state_path, load(state_path))
        assert not [r for r in handler.records if r.levelno >= logging.WARNING]
        opt['train']['optim_g']['lr'] = 1e-3
        branched, parsed = built(opt)
        restore(branched, parsed, state_path, load(state_path), branching=True)
    finally:
        logging.getLogger('basicsr_lite').removeHandler(handler)
    group = branched.optimizers[0].param_groups[0]
    assert group['initial_lr'] == 1e-3
    for key in ('weight_sum', 'lr_max', 'train_mode'):
        assert group[key] == saved[key], key
    assert [r.getMessage() for r in handler.records if r.getMessage().startswith('Branch:')] == \
        ['Branch: train.optim_g.lr: 0.002 -> 0.001 (the state had the first value).']
