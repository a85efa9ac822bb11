"""The default optimizer path (Adam with ``optimizer_impl: auto``, fused on the CPU when torch has
the kernel: the step is taken or dropped on the device): gradient clipping against hand-computed
Adam updates, and an fp16 GradScaler whose scale changed through real overflows before a
checkpoint, resumed bitwise (and visibly not, when the scaler state is dropped)."""
from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from torch import nn

from basicsr_lite.models import build_model
from basicsr_lite.options import validate_options
from basicsr_lite.runtime.optim import build_optimizer
from basicsr_lite.runtime.speed import fused_kernel_applies, is_fused
from basicsr_lite.runtime.step import OptimizerStepper
from tests.conftest import TINY_OPT

LR, EPS, BETAS = 0.1, 1.0, (0.9, 0.999)  # eps 1: Adam's update depends on the gradient's size


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is several times faster than many on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Weights(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.5, -0.25]))


def default_adam(params) -> torch.optim.Optimizer:
    """Adam as the option file's ``optim_g`` builds it with the default ``optimizer_impl``."""
    return build_optimizer(params, {'type': 'Adam', 'lr': LR, 'eps': EPS, 'betas': list(BETAS)})


def hand_adam(w: np.ndarray, grads: list[np.ndarray], max_norm: float) -> np.ndarray:
    """Adam (bias-corrected) on gradients clipped like torch's ``clip_grad_norm_``: multiplied by
    ``max_norm / (norm + 1e-6)`` when that is below 1."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        g = g * min(1.0, max_norm / (np.linalg.norm(g) + 1e-6))
        m = BETAS[0] * m + (1 - BETAS[0]) * g
        v = BETAS[1] * v + (1 - BETAS[1]) * g * g
        m_hat, v_hat = m / (1 - BETAS[0]**t), v / (1 - BETAS[1]**t)
        w = w - LR * m_hat / (np.sqrt(v_hat) + EPS)
    return w


@pytest.mark.parametrize('fp16_scaler', [False, True])
def test_clipping_on_the_default_fused_adam_matches_hand_computed_updates(fp16_scaler):
    net = Weights()
    if not fused_kernel_applies(list(net.parameters())):
        pytest.skip('this torch has no fused Adam kernel on the CPU')
    optimizer = default_adam(net.parameters())
    assert is_fused(optimizer)  # the default path: decided on the device
    scaler = torch.amp.GradScaler('cpu') if fp16_scaler else None
    stepper = OptimizerStepper('g', optimizer, [net], clip=1.0, scaler=scaler)
    assert stepper.on_device
    # gradient (3, 4): norm 5, clipped to norm 1; then (0.3, -0.4): norm 0.5, left alone
    grads = [np.array([3.0, 4.0]), np.array([0.3, -0.4])]
    norms = []
    for g in grads:
        result = stepper.backward({'l': (torch.tensor(g, dtype=torch.float32) * net.w).sum()})
        assert result.deferred and bool(result.stepped)
        norms.append(float(result.grad_norm))
    assert norms == pytest.approx([5.0, 0.5], rel=1e-6)  # reported before clipping (unscaled)
    expected = hand_adam(np.array([0.5, -0.25]), grads, max_norm=1.0)
    np.testing.assert_allclose(net.w.detach().numpy(), expected, rtol=0, atol=2e-7)
    unclipped = hand_adam(np.array([0.5, -0.25]), grads, max_norm=np.inf)
    assert np.abs(expected - unclipped).min() > 1e-2  # clipping did change the update
    # Adam's first moment holds the clipped gradients: 0.9 * 0.1 * (0.6, 0.8) + 0.1 * (0.3, -0.4)
    exp_avg = optimizer.state[net.w]['exp_avg'].numpy()
    np.testing.assert_allclose(exp_avg, [0.054 + 0.03, 0.072 - 0.04], rtol=0, atol=1e-6)
    assert stepper.settle() is None


# ---- fp16 GradScaler: resume after overflows --------------------------------------------------

def fp16_model():
    """A tiny SRModel, fp16 AMP, L1 weighted so that the fp16 gradients overflow at the
    GradScaler's initial scale (65536): its scale falls during the first iterations."""
    opt = copy.deepcopy(TINY_OPT)
    for phase in ('train', 'val'):
        opt['datasets'][phase].update(dataroot_gt='unused', dataroot_lq='unused')
    opt['path'] = {'experiments_root': 'unused'}
    opt['train'].update(amp='fp16', pixel_opt={'type': 'L1Loss', 'loss_weight': 100})
    opt = validate_options(opt, True, check_paths=False)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    torch.manual_seed(0)
    return build_model(opt, torch.device('cpu'))


def batches(n: int) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [{'lq': torch.rand(2, 3, 8, 8, generator=g),
             'gt': torch.rand(2, 3, 16, 16, generator=g)} for _ in range(n)]


def train(model, data: list[dict], first_iter: int) -> list[float]:
    """Train on ``data`` from iteration ``first_iter``; the scaler's scale after each step."""
    scales = []
    for it, batch in enumerate(data, first_iter):
        model.update_learning_rate(it)
        model.feed_data(batch)
        model.optimize_parameters(it)
        scales.append(model.steppers['g'].scaler.get_scale())
    return scales


def snapshot(model) -> dict:
    return {'net_g': copy.deepcopy(model.net_g.state_dict()),
            'ema': copy.deepcopy(model.ema.module.state_dict()),
            'adam': copy.deepcopy(model.optimizer_g.state_dict()['state']),
            'scale': model.steppers['g'].scaler.get_scale()}


def through_disk(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def resumed(saved: dict, state: dict, data: list[dict]) -> tuple[dict, list[float]]:
    """A model given the saved weights and training state, trained on ``data`` from iteration
    5: its snapshot and its scales."""
    model = fp16_model()
    model.net_g.load_state_dict(saved['net_g'])
    model.ema.module.load_state_dict(saved['ema'])
    model.load_state_dict(through_disk(state))
    scales = train(model, data, 5)
    return snapshot(model), scales


def identical(a: dict, b: dict) -> bool:
    def same(x, y) -> bool:
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        return torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
    return same(a, b)


def test_fp16_scaler_state_after_overflows_resumes_bitwise():
    data = batches(8)
    straight = fp16_model()
    assert straight.steppers['g'].on_device and straight.steppers['g'].scaler is not None
    scales = train(straight, data, 1)
    # the overflows of iterations 2, 3 and 5 each halved the scale and dropped their step
    assert scales == [65536.0, 32768.0, 16384.0, 16384.0, 8192.0, 8192.0, 8192.0, 8192.0]
    assert straight.skipped_steps == 0  # overflows are the scaler's business, not faults
    final = snapshot(straight)

    first = fp16_model()
    assert train(first, data[:4], 1) == scales[:4]
    saved, state = snapshot(first), first.state_dict()
    assert state['scalers']['g']['scale'] == 16384.0  # the scale changed before the save

    after, after_scales = resumed(saved, state, data[4:])
    assert after_scales == scales[4:]
    assert identical(after, final)
    # A run resumed without the scaler state starts again from 65536: it overflows again,
    # drops steps the straight run took, and ends elsewhere.
    lost, lost_scales = resumed(saved, {**state, 'scalers': {}}, data[4:])
    assert lost_scales[0] > scales[4]
    assert any(not torch.equal(v, final['net_g'][k]) for k, v in lost['net_g'].items())
    assert any(not torch.equal(v, final['ema'][k]) for k, v in lost['ema'].items())
