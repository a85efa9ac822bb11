"""Adan (LKDN's optimizer, from pytorch-optimizer): its update worked by hand on a scalar from the
authors' reference (sail-sg/Adan), and it builds from an option file's ``optim_g``."""
from __future__ import annotations

import math

import pytest
import torch

from pytorch_optimizer import Adan

from basicsr_lite.runtime.optim import build_optimizer


def _steps(grads: list[float], **kwargs) -> float:
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = Adan([p], **kwargs)
    for g in grads:
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
    return p.item()


def test_first_step_is_a_sign_step():
    # diff = 0 at step 1; bias-corrected m = g and n = g^2, so the update is g / (|g| + eps).
    assert _steps([0.3], lr=0.1, eps=0.0) == pytest.approx(1.0 - 0.1)
    assert _steps([-2.0], lr=0.1, eps=0.0) == pytest.approx(1.0 + 0.1)


def test_second_step_by_hand():
    b1, b2, b3, lr = 0.98, 0.92, 0.99, 0.01
    g1, g2 = 0.5, 0.2
    p1 = 1.0 - lr
    d = g2 - g1
    m = b1 * (1 - b1) * g1 + (1 - b1) * g2
    v = (1 - b2) * d
    n = b3 * (1 - b3) * g1**2 + (1 - b3) * (g2 + b2 * d) ** 2
    upd = (m / (1 - b1**2) + b2 * v / (1 - b2**2)) / (math.sqrt(n) / math.sqrt(1 - b3**2))
    assert _steps([g1, g2], lr=lr, eps=0.0) == pytest.approx(p1 - lr * upd, rel=1e-12)


def test_proximal_weight_decay():
    # the reference's default (no_prox False): p = (p - lr * u) / (1 + lr * wd)
    assert _steps([1.0], lr=0.1, eps=0.0, weight_decay=0.5) == pytest.approx(0.9 / 1.05)


def test_builds_from_lkdn_options():
    net = torch.nn.Linear(3, 2)
    opt = build_optimizer(net.parameters(), {'type': 'Adan', 'lr': 5e-3,
                                             'betas': [0.98, 0.92, 0.99], 'weight_decay': 0})
    assert isinstance(opt, Adan) and opt.defaults['betas'] == (0.98, 0.92, 0.99)
    net(torch.ones(4, 3)).sum().backward()
    before = net.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, net.weight)
    state = opt.state_dict()
    opt2 = Adan(net.parameters())
    opt2.load_state_dict(state)
    assert torch.equal(opt2.state[net.weight]['exp_avg'], opt.state[net.weight]['exp_avg'])
