import io
import math
import os
import pickle

import pytest
import torch
from torch import nn

from basicsr_lite.engine.checkpoint import (CheckpointError, find_resumable_state, load_torch,
                                            save_torch)
from basicsr_lite.engine.ema import ModelEMA
from basicsr_lite.engine.lr_scheduler import (CosineAnnealingRestartLR, MultiStepRestartLR,
                                              build_optimizer, build_scheduler)
from basicsr_lite.models.base_model import BaseModel


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


def test_scheduler_resume_continues_identically():
    opt_a = optimizer()
    sched_a = build_scheduler(opt_a, {'type': 'CosineAnnealingRestartLR', 'periods': [10]})
    first = lrs(sched_a, 4)
    state = sched_a.state_dict()
    opt_b = optimizer()
    sched_b = build_scheduler(opt_b, {'type': 'CosineAnnealingRestartLR', 'periods': [10]})
    sched_b.load_state_dict(state)
    opt_b.param_groups[0]['lr'] = opt_a.param_groups[0]['lr']
    assert lrs(sched_b, 3) == lrs(sched_a, 3)
    assert len(first) == 4


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
    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null',))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    buffer = io.BytesIO()
    torch.save({'params': Evil()}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match='Refusing to load .*evil.pth'):
        load_torch(path)
    plain = tmp_path / 'plain.pkl'
    plain.write_bytes(pickle.dumps({'a': Evil()}))
    with pytest.raises(CheckpointError):
        load_torch(plain)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / 'x.pth'
    save_torch({'w': torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match='Cannot read checkpoint'):
        load_torch(path)


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
