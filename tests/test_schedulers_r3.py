"""Schedules of issue 25: warm-up + cosine, warm-up-stable-decay, one-cycle (each against its
formula, at several iterations and across a resume), ReduceLROnPlateau on a validation metric,
and adopting an edited schedule in a resumed run (--new-schedule)."""
from __future__ import annotations

import copy
import io
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from basicsr_lite.engine.builtin_hooks import PlateauSchedule, build_hooks
from basicsr_lite.engine.checkpoint import LoopState, restore, save_checkpoint
from basicsr_lite.errors import CheckpointError, OptionError
from basicsr_lite.models import build_model
from basicsr_lite.options import parse_options
from basicsr_lite.options.parse import validate_options
from basicsr_lite.runtime.lr_scheduler import build_scheduler
from basicsr_lite.train import main as train_main
from tests.conftest import TINY_OPT, write_yaml
from tests.runs import assert_identical, final_weights, load

LR = 1e-3
# (the tests step schedulers without optimizer steps)
pytestmark = pytest.mark.filterwarnings('ignore:Detected call of `lr_scheduler.step')


def optimizer(groups: int = 1) -> torch.optim.Optimizer:
    params = [{'params': [torch.nn.Parameter(torch.zeros(1))], 'lr': LR * (i + 1)}
              for i in range(groups)]
    return torch.optim.SGD(params, lr=LR)


def lrs_over(scheduler_opt: dict, iters: int, total: int = 100, groups: int = 1) -> list:
    """The lr of each iteration 1..iters as the model steps it (position = iteration - 1)."""
    sched = build_scheduler(optimizer(groups), scheduler_opt, {'train': {'total_iter': total}})
    values = []
    for it in range(1, iters + 1):
        if it > 1:
            sched.step()
        values.append([g['lr'] for g in sched.optimizer.param_groups])
    return values


def warm_cosine(t: int, base: float, warm: int, total: int, eta_min: float) -> float:
    if t < warm:
        return base * (t + 1) / warm
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * (t - warm) / (total - warm))) / 2


def test_warmup_cosine_is_its_formula():
    got = lrs_over({'type': 'WarmupCosineLR', 'warmup_iters': 10, 'eta_min': 1e-5}, 100,
                   groups=2)
    for t in (0, 4, 9, 10, 11, 50, 99):
        for g, base in enumerate((LR, 2 * LR)):
            assert got[t][g] == pytest.approx(warm_cosine(t, base, 10, 100, 1e-5), rel=1e-12)
    assert got[0][0] == LR / 10 and got[9][0] == got[10][0] == LR  # peak at the warm-up's end


def test_total_iters_defaults_to_train_total_iter_and_can_be_given():
    assert lrs_over({'type': 'WarmupCosineLR'}, 30, total=30)[29][0] == \
        pytest.approx(warm_cosine(29, LR, 0, 30, 0.0))
    got = lrs_over({'type': 'WarmupCosineLR', 'total_iters': 20}, 30, total=1000)
    assert got[25][0] == 0.0  # after total_iters: eta_min


@pytest.mark.parametrize('decay, shape', [
    ('linear', lambda p: 1 - p),
    ('cosine', lambda p: (1 + math.cos(math.pi * p)) / 2),
    ('1-sqrt', lambda p: 1 - math.sqrt(p)),
])
def test_warmup_stable_decay_is_its_formula(decay, shape):
    got = lrs_over({'type': 'WarmupStableDecayLR', 'warmup_iters': 5, 'decay_fraction': 0.2,
                    'decay': decay, 'eta_min': 1e-6}, 100)
    expected = {0: LR / 5, 3: LR * 4 / 5, 4: LR, 5: LR, 79: LR}  # warm-up, stable until 80
    for t in (80, 81, 90, 99):  # decay over the last 20: p = (t - 80) / 20
        expected[t] = 1e-6 + (LR - 1e-6) * shape((t - 80) / 20)
    for t, value in expected.items():
        assert got[t][0] == pytest.approx(value, rel=1e-12), t


@pytest.mark.parametrize('three_phase, anneal', [(False, 'cos'), (True, 'linear'),
                                                 (False, 'linear'), (True, 'cos')])
def test_one_cycle_matches_torch_one_cycle(three_phase, anneal):
    """The optimizer's lr is the peak (torch's max_lr); torch's values at every step."""
    ours = lrs_over({'type': 'OneCycleLR', 'pct_start': 0.25, 'three_phase': three_phase,
                     'anneal_strategy': anneal}, 40, total=40)
    reference = torch.optim.lr_scheduler.OneCycleLR(
        optimizer(), max_lr=LR, total_steps=40, pct_start=0.25, anneal_strategy=anneal,
        three_phase=three_phase, cycle_momentum=False)
    for t in range(40):
        if t:
            reference.step()
        assert ours[t][0] == pytest.approx(reference.get_last_lr()[0], rel=1e-12, abs=1e-20), t
    assert ours[0][0] == pytest.approx(LR / 25)
    assert ours[39][0] == pytest.approx(LR / 25 / 1e4)


@pytest.mark.parametrize('scheduler_opt', [
    {'type': 'WarmupCosineLR', 'warmup_iters': 7, 'eta_min': 1e-6},
    {'type': 'WarmupStableDecayLR', 'warmup_iters': 3, 'decay_fraction': 0.5, 'decay': 'cosine'},
    {'type': 'OneCycleLR', 'pct_start': 0.3},
])
def test_a_restored_scheduler_goes_on_with_the_same_values(scheduler_opt):
    """Half the schedule, state_dict through torch.save / torch.load(weights_only=True) into a
    fresh optimizer and scheduler, the other half: the values of the straight run, exactly."""
    straight = lrs_over(scheduler_opt, 30, total=30)
    first = build_scheduler(optimizer(), scheduler_opt, {'train': {'total_iter': 30}})
    for _ in range(14):
        first.step()
    buffer = io.BytesIO()
    torch.save({'optimizer': first.optimizer.state_dict(), 'scheduler': first.state_dict()},
               buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    second = build_scheduler(optimizer(), scheduler_opt, {'train': {'total_iter': 30}})
    second.optimizer.load_state_dict(saved['optimizer'])
    second.load_state_dict(saved['scheduler'])
    for t in range(15, 30):
        second.step()
        assert second.optimizer.param_groups[0]['lr'] == straight[t][0], t


def test_out_of_range_settings_are_option_errors():
    for bad in ({'type': 'WarmupCosineLR', 'warmup_iters': 100},
                {'type': 'WarmupStableDecayLR', 'warmup_iters': 90, 'decay_fraction': 0.2},
                {'type': 'WarmupStableDecayLR', 'decay': 'sqrt'},
                {'type': 'OneCycleLR', 'anneal_strategy': 'cosine'}):
        with pytest.raises(OptionError, match=f"train.scheduler \\({bad['type']}\\) rejected"):
            build_scheduler(optimizer(), bad, {'train': {'total_iter': 100}})


# ---- option checks -------------------------------------------------------------------------------

def raw_options(scheduler: dict, **train) -> dict:
    opt = copy.deepcopy(TINY_OPT)
    opt['train'].update(scheduler=scheduler, **train)
    for key, data in opt['datasets'].items():
        data.update(dataroot_gt=f'/nowhere/{key}_gt', dataroot_lq=f'/nowhere/{key}_lq')
    return opt


def problems(raw: dict) -> str:
    with pytest.raises(OptionError) as err:
        validate_options(raw, True, check_paths=False)
    return str(err.value)


def test_two_warm_ups_are_refused():
    message = problems(raw_options({'type': 'WarmupCosineLR', 'warmup_iters': 10},
                                   warmup_iter=10))
    assert 'train.warmup_iter: 10, and train.scheduler (WarmupCosineLR) warms up itself' in message


def test_a_plateau_watches_a_validated_metric():
    message = problems(raw_options({'type': 'ReduceLROnPlateau', 'metric': 'psnr_y'}))
    assert "train.scheduler.metric: 'psnr_y' is not one of val.metrics (psnr, ssim); did you " \
           "mean 'psnr'" in message
    message = problems(raw_options({'type': 'ReduceLROnPlateau', 'metric': 'psnr',
                                    'dataset': 'tiny_vla'}))
    assert "train.scheduler.dataset: 'tiny_vla' is not the name of a validation dataset" in message
    raw = raw_options({'type': 'ReduceLROnPlateau', 'metric': 'psnr', 'mode': 'min'})
    assert 'train.scheduler.mode: unknown argument' in problems(raw)  # (from the metric)
    assert 'train.scheduler.patiense' in problems(
        raw_options({'type': 'ReduceLROnPlateau', 'metric': 'psnr', 'patiense': 2}))


# ---- ReduceLROnPlateau ---------------------------------------------------------------------------

def tiny(root: Path) -> dict:
    from basicsr_lite.prep.synthetic import make_paired_folder
    train_gt, train_lq = make_paired_folder(root / 'train', [f'img{i}' for i in range(4)],
                                            (48, 48), 2, seed=1)
    val_gt, val_lq = make_paired_folder(root / 'val', ['a', 'b'], (32, 40), 2, seed=2)
    opt = copy.deepcopy(TINY_OPT)
    opt['datasets']['train'].update(dataroot_gt=str(train_gt), dataroot_lq=str(train_lq))
    opt['datasets']['val'].update(dataroot_gt=str(val_gt), dataroot_lq=str(val_lq))
    opt['val']['save_img'] = False
    opt['path'] = {'experiments_root': str(root / 'experiments' / 'tiny')}
    return opt


def built(opt: dict, folder: Path, *extra: str):
    parsed, _ = parse_options(['-opt', str(write_yaml(folder / 'b.yml', opt)), *extra],
                              is_train=True)
    parsed['rank'], parsed['world_size'] = 0, 1
    return build_model(parsed, torch.device('cpu')), parsed


def results(value: float, metric: str = 'psnr') -> dict:
    return {'tiny_val': SimpleNamespace(means={metric: value})}


PLATEAU = {'type': 'ReduceLROnPlateau', 'metric': 'psnr', 'factor': 0.5, 'patience': 1}


def test_plateau_steps_on_validations_only_and_after_the_warm_up(tmp_path):
    opt = tiny(tmp_path)
    opt['train'].update(scheduler=PLATEAU, warmup_iter=3)
    model, parsed = built(opt, tmp_path)
    (plateau,) = [h for h in build_hooks(parsed).hooks if isinstance(h, PlateauSchedule)]
    run = SimpleNamespace(model=model)
    group = model.optimizers[0].param_groups[0]
    assert model.schedulers[0].mode == 'max'  # PSNR: higher is better
    model.update_learning_rate(1, 3)
    assert group['lr'] == LR / 3
    for value in (20.0, 19.0):  # a best, then 1 bad validation: within patience
        plateau.on_validation_end(run, 2, results(value))
    model.update_learning_rate(2, 3)
    assert group['lr'] == LR * 2 / 3
    plateau.on_validation_end(run, 2, results(19.5))  # 2 bad: halved
    model.update_learning_rate(3, 3)
    assert group['lr'] == LR / 2
    for it in range(4, 50):  # iterations do not step it
        model.update_learning_rate(it, 3)
    assert group['lr'] == LR / 2
    plateau.on_validation_end(run, 50, results(21.0))  # a new best
    plateau.on_validation_end(run, 50, results(18.0))
    assert model.schedulers[0].scheduled_lrs == [LR / 2]
    plateau.on_validation_end(run, 50, results(18.0))
    model.update_learning_rate(51, 3)
    assert group['lr'] == LR / 4


def test_plateau_mode_follows_the_metric_direction(tmp_path):
    opt = tiny(tmp_path)
    opt['val']['metrics']['niqe_like'] = {'type': 'calculate_psnr', 'crop_border': 2,
                                          'better': 'lower'}
    opt['train']['scheduler'] = {**PLATEAU, 'metric': 'niqe_like'}
    model, _ = built(opt, tmp_path)
    assert model.schedulers[0].mode == 'min'


def test_plateau_state_is_in_the_training_state(tmp_path):
    opt = tiny(tmp_path)
    opt['train']['scheduler'] = PLATEAU
    model, parsed = built(opt, tmp_path)
    run = SimpleNamespace(model=model)
    (hook,) = [h for h in build_hooks(parsed).hooks if isinstance(h, PlateauSchedule)]
    for value in (20.0, 19.0, 19.0, 19.5):  # halved at the third; one bad since
        hook.on_validation_end(run, 1, results(value))
    for key in ('models', 'training_states'):
        Path(parsed['path'][key]).mkdir(parents=True)
    save_checkpoint(model, LoopState(6, 1, 2), parsed)
    state_path = Path(parsed['path']['training_states']) / '6.state'
    saved = load(state_path)['schedulers'][0]
    assert (saved['best'], saved['num_bad_epochs'], saved['scheduled_lrs']) == (20.0, 1, [LR / 2])
    resumed, parsed = built(opt, tmp_path)
    restore(resumed, parsed, state_path, load(state_path))
    (hook,) = [h for h in build_hooks(parsed).hooks if isinstance(h, PlateauSchedule)]
    hook.on_validation_end(SimpleNamespace(model=resumed), 7, results(19.9))  # 2nd bad: halve
    resumed.update_learning_rate(7)
    assert resumed.optimizers[0].param_groups[0]['lr'] == LR / 4


@pytest.mark.slow
def test_plateau_run_resumes_exactly(tmp_path):
    """A run whose lr the plateau halves at most validations (threshold 100 dB: only the
    first is a best): 6 iterations straight == 4 + resume + 2, bitwise."""
    opt = tiny(tmp_path)
    opt['train'].update(scheduler={**PLATEAU, 'patience': 0, 'threshold': 100.0,
                                   'threshold_mode': 'abs'}, total_iter=6)
    opt['val'].update(val_freq=1)
    opt['logger'].update(save_checkpoint_freq=2)
    straight = copy.deepcopy(opt)
    straight['path']['experiments_root'] = str(tmp_path / 'straight')
    assert train_main(['-opt', str(write_yaml(tmp_path / 'straight.yml', straight))]) == 0
    state = load(tmp_path / 'straight' / 'training_states' / '6.state')
    assert state['schedulers'][0]['scheduled_lrs'] == [LR / 2**5]  # halved at 2, 3, 4, 5, 6
    assert state['optimizers'][0]['param_groups'][0]['lr'] == LR / 2**5
    opt['path']['experiments_root'] = str(tmp_path / 'run')
    opt['train']['total_iter'] = 4
    assert train_main(['-opt', str(write_yaml(tmp_path / 'a.yml', opt))]) == 0
    opt['train']['total_iter'] = 6
    assert train_main(['-opt', str(write_yaml(tmp_path / 'b.yml', opt)), '--auto_resume']) == 0
    assert_identical(final_weights(tmp_path / 'straight'), final_weights(tmp_path / 'run'))
    log = ''.join(p.read_text() for p in (tmp_path / 'straight').glob('train_*.log'))
    assert 'ReduceLROnPlateau: psnr on tiny_val (higher is better) did not improve for 1 ' \
           'validation(s) (best' in log


# ---- an edited schedule in a resumed run -------------------------------------------------------

class Messages(logging.Handler):
    """The package logger's records (it does not propagate to pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def messages():
    handler = Messages()
    logging.getLogger('basicsr_lite').addHandler(handler)
    yield handler
    logging.getLogger('basicsr_lite').removeHandler(handler)


COSINE = {'type': 'WarmupCosineLR', 'total_iters': 20, 'warmup_iters': 2}


@pytest.fixture
def state_at_6(tmp_path) -> dict:
    """A training state at iteration 6 of a WarmupCosineLR(20, warm-up 2) run, made without
    training (the schedule stepped to position 5)."""
    opt = tiny(tmp_path)
    opt['train']['scheduler'] = COSINE
    model, parsed = built(opt, tmp_path)
    for it in range(1, 7):
        model.update_learning_rate(it)
    for key in ('models', 'training_states'):
        Path(parsed['path'][key]).mkdir(parents=True)
    save_checkpoint(model, LoopState(6, 1, 2), parsed)
    return {'opt': opt, 'path': Path(parsed['path']['training_states']) / '6.state'}


def resumed(state_at_6: dict, tmp_path: Path, scheduler: dict, *extra: str):
    opt = copy.deepcopy(state_at_6['opt'])
    opt['train']['scheduler'] = scheduler
    model, parsed = built(opt, tmp_path, *extra)
    restore(model, parsed, state_at_6['path'], load(state_at_6['path']))
    return model


def test_without_the_flag_a_resume_keeps_the_saved_schedule(state_at_6, tmp_path, messages):
    model = resumed(state_at_6, tmp_path, {**COSINE, 'total_iters': 40})
    model.update_learning_rate(7)
    assert model.optimizers[0].param_groups[0]['lr'] == pytest.approx(
        warm_cosine(6, LR, 2, 20, 0.0), rel=1e-15)
    (warning,) = [r.getMessage() for r in messages.records if r.levelno == logging.WARNING]
    assert warning == (f"Resuming {state_at_6['path']}: the option file changes settings that a "
                       f'resume does not apply (it continues the saved run; --branch applies '
                       f'them): train.scheduler.total_iters: 20 -> 40.')


@pytest.mark.parametrize('how', [('--new-schedule',), ('--force_yml',
                                                       'train:scheduler_change=adopt')])
def test_the_flag_applies_the_edited_schedule_at_the_saved_position(state_at_6, tmp_path,
                                                                    messages, how):
    model = resumed(state_at_6, tmp_path, {**COSINE, 'total_iters': 40, 'eta_min': 1e-5}, *how)
    group = model.optimizers[0].param_groups[0]
    assert group['lr'] == pytest.approx(warm_cosine(5, LR, 2, 40, 1e-5), rel=1e-15)
    for it in (7, 8, 30):
        for step in range(model.schedulers[0].last_epoch + 2, it + 1):
            model.update_learning_rate(step)
        assert group['lr'] == pytest.approx(warm_cosine(it - 1, LR, 2, 40, 1e-5), rel=1e-15)
    lines = [r.getMessage() for r in messages.records if 'New schedule' in r.getMessage()]
    assert lines == [f'New schedule from iter 6 (train.scheduler_change: adopt): '
                     f'train.scheduler.eta_min: 0.0 -> 1e-05; train.scheduler.total_iters: '
                     f'20 -> 40; lr now {warm_cosine(5, LR, 2, 40, 1e-5):.4g}.']
    assert not [r for r in messages.records if r.levelno == logging.WARNING]


def test_another_scheduler_type_needs_the_flag(state_at_6, tmp_path, messages):
    wsd = {'type': 'WarmupStableDecayLR', 'total_iters': 20, 'decay_fraction': 0.5,
           'decay': 'linear'}
    with pytest.raises(CheckpointError, match='was trained with train.scheduler WarmupCosineLR; '
                                              'the option file has WarmupStableDecayLR'):
        resumed(state_at_6, tmp_path, wsd)
    model = resumed(state_at_6, tmp_path, wsd, '--new-schedule')
    (scheduler,) = model.schedulers
    assert not hasattr(scheduler, 'warmup_iters') or scheduler.warmup_iters == 0
    assert 'eta_min' in scheduler.state_dict() and scheduler.last_epoch == 5
    for it in range(7, 13):
        model.update_learning_rate(it)
    # decay starts at position 10: iteration 12 trains at position 11, p = 1/10
    assert model.optimizers[0].param_groups[0]['lr'] == pytest.approx(LR * 0.9, rel=1e-15)
    assert any(r.getMessage().startswith('New schedule from iter 6 (train.scheduler_change: '
                                         'adopt): WarmupCosineLR -> WarmupStableDecayLR')
               for r in messages.records)


def test_the_flag_leaves_an_unchanged_schedule_exactly_as_saved(tmp_path, messages):
    """Left in the option file, adopt must not restart a ReduceLROnPlateau's patience."""
    opt = tiny(tmp_path)
    opt['train']['scheduler'] = PLATEAU
    model, parsed = built(opt, tmp_path)
    (hook,) = [h for h in build_hooks(parsed).hooks if isinstance(h, PlateauSchedule)]
    for value in (20.0, 19.0):
        hook.on_validation_end(SimpleNamespace(model=model), 1, results(value))
    for key in ('models', 'training_states'):
        Path(parsed['path'][key]).mkdir(parents=True)
    save_checkpoint(model, LoopState(6, 1, 2), parsed)
    state_path = Path(parsed['path']['training_states']) / '6.state'
    again, parsed = built(opt, tmp_path, '--new-schedule')
    restore(again, parsed, state_path, load(state_path))
    assert again.schedulers[0].state_dict() == model.schedulers[0].state_dict()
    assert not [r for r in messages.records if 'New schedule' in r.getMessage()]
