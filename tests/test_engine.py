import contextlib
import io
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from basicsr_lite.models.base_model import BaseModel
from basicsr_lite.engine.checkpoint import find_resumable_state
from basicsr_lite.runtime.weights import CheckpointError, load_torch, save_torch
from basicsr_lite.runtime.ema import ModelEMA
from basicsr_lite.runtime.lr_scheduler import (CosineAnnealingRestartLR, MultiStepRestartLR,
                                               build_scheduler)
from basicsr_lite.runtime.optim import build_optimizer


def lrs(scheduler, steps):
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]['lr'])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def optimizer(lr=1.0):
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


def test_multistep_restart_values():
    sched = MultiStepRestartLR(optimizer(), milestones=[2, 4, 7], gamma=0.5, restarts=[0, 6],
                               restart_weights=[1, 0.5])
    assert lrs(sched, 9) == [1, 1, 0.5, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25]


def test_cosine_restart_values():
    sched = CosineAnnealingRestartLR(optimizer(), periods=[4, 4], restart_weights=[1, 0.5],
                                     eta_min=0.0)
    got = lrs(sched, 9)
    expected = [0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(5)]
    expected += [0.5 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(1, 5)]
    assert got == pytest.approx(expected)


def model_with_schedule() -> BaseModel:
    model = BaseModel.__new__(BaseModel)  # only the optimizer / scheduler plumbing
    opt = optimizer()
    model.optimizers = [opt]
    model.schedulers = [build_scheduler(opt, {'type': 'CosineAnnealingRestartLR',
                                              'periods': [10]})]
    model.best_metric_results, model.skipped_steps, model.steppers = {}, 0, {}
    return model


def test_training_state_resume_continues_the_schedule():
    """Through BaseModel.training_state / resume_training (what a resumed run does), nothing
    copied by hand: the resumed learning rates continue the uninterrupted ones."""
    straight, first = model_with_schedule(), model_with_schedule()
    expected = lrs(straight.schedulers[0], 7)
    assert lrs(first.schedulers[0], 4) == expected[:4]
    state = torch.load(save_state(first), weights_only=True)
    resumed = model_with_schedule()
    resumed.load_state_dict(state)
    assert resumed.get_current_learning_rate() == first.get_current_learning_rate()
    assert lrs(resumed.schedulers[0], 3) == expected[4:]


def save_state(model: BaseModel) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    return buffer


def test_warmup_is_linear_then_schedule_takes_over():
    model = BaseModel.__new__(BaseModel)
    opt = optimizer(lr=0.1)
    model.optimizers = [opt]
    model.schedulers = [build_scheduler(opt, {'type': 'MultiStepRestartLR', 'milestones': [6],
                                              'gamma': 0.1})]
    seen = []
    for it in range(1, 9):
        model.update_learning_rate(it, warmup_iter=4)
        seen.append(model.get_current_learning_rate()[0])
        opt.step()
    # As in BasicSR, schedulers step from iteration 2, so milestone m applies from iteration m + 1.
    assert seen == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_build_optimizer_types():
    params = [nn.Parameter(torch.zeros(2))]
    adam = build_optimizer(params, {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]})
    assert adam.param_groups[0]['betas'] == (0.9, 0.99)
    assert isinstance(build_optimizer(params, {'type': 'AdamW', 'lr': 1e-3}), torch.optim.AdamW)


def test_ema_params_and_buffers():
    net = nn.BatchNorm1d(2)
    ema = ModelEMA(net, decay=0.9)
    with torch.no_grad():
        net.weight.fill_(2.0)
        net.running_mean.fill_(5.0)
    ema.update(net)
    torch.testing.assert_close(ema.module.weight, torch.full((2,), 0.9 * 1 + 0.1 * 2))
    torch.testing.assert_close(ema.module.running_mean, torch.full((2,), 5.0))
    assert not any(p.requires_grad for p in ema.module.parameters())
    with pytest.raises(ValueError, match='ema_decay'):
        ModelEMA(net, 1.0)


def test_atomic_save_and_safe_load(tmp_path):
    path = tmp_path / 'models' / 'net.pth'
    save_torch({'params': {'w': torch.ones(2)}}, path)
    assert load_torch(path)['params']['w'].sum() == 2
    assert [p.name for p in path.parent.iterdir()] == ['net.pth']  # no temp files left


class Evil:
    """Unpickling it runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'payload_ran'
    plain = pickle.dumps({'a': Evil(marker)}, protocol=2)  # torch.load reads legacy pickles
    pickle.loads(plain)  # the payload is real: a plain unpickler runs it
    assert marker.exists()
    marker.unlink()
    path = tmp_path / 'evil.pth'
    buffer = io.BytesIO()
    torch.save({'params': Evil(marker)}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match=r'Refusing to load .*evil.pth.*GLOBAL posix.system'):
        load_torch(path)
    (tmp_path / 'plain.pkl').write_bytes(plain)
    with pytest.raises(CheckpointError, match='Refusing to load'):
        load_torch(tmp_path / 'plain.pkl')
    assert not marker.exists()


@pytest.mark.parametrize('damage', ['truncated', 'random bytes', 'text'])
def test_damaged_file_is_not_a_readable_checkpoint(tmp_path, damage):
    path = tmp_path / 'x.pth'
    save_torch({'w': torch.ones(1000)}, path)
    if damage == 'truncated':
        path.write_bytes(path.read_bytes()[:100])
    elif damage == 'random bytes':
        path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)))
    else:
        path.write_text('not a checkpoint\n' * 5)
    with pytest.raises(CheckpointError, match='x.pth is not a readable checkpoint') as err:
        load_torch(path)
    assert 'Refusing' not in str(err.value)


def test_find_resumable_state_skips_bad_ones(tmp_path):
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    for it in (2, 4, 6):
        save_torch({'iter': it}, states / f'{it}.state')
    for it in (2, 4):
        save_torch({'params': {}}, models / f'net_g_{it}.pth')
    (states / '4.state').write_bytes(b'garbage')
    path, state = find_resumable_state(states, models)
    assert path == states / '2.state' and state == {'iter': 2}
    assert find_resumable_state(tmp_path / 'none', models) is None


@pytest.mark.parametrize('dist, error', [(True, True), (True, False), (False, True)])
def test_a_rank_ending_on_an_error_keeps_stop_signals_out(monkeypatch, dist, error):
    """When a rank dies, torchrun sends SIGTERM to the others: a rank leaving the loop on that
    error must not be ended by the default handler before it has reported why it stops."""
    import signal

    from basicsr_lite.engine import signals
    monkeypatch.setattr(signals, 'is_dist', lambda: dist)
    try:
        with pytest.raises(RuntimeError) if error else contextlib.nullcontext():
            with signals.GracefulStop():
                if error:
                    raise RuntimeError('Connection reset by peer')
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert (set(signals.STOP_SIGNALS) <= blocked) == (dist and error)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals.STOP_SIGNALS)
