"""WGAN-GP's gradient penalty (``train.gp_weight``): the formula on a linear critic, and D's
loss in a GAN iteration carrying it."""
from __future__ import annotations

import copy

import pytest
import torch

from basicsr_lite.losses.gan_loss import gradient_penalty
from tests.test_gan_iteration_values import batch, build, gan_train, tiny_archs  # noqa: F401


def test_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared():
    """D(x) = sum(w * x): the gradient is w at every mix, so the penalty is (||w|| - 1)^2
    whatever the mixing draws are."""
    w = torch.randn(3, 4, 4, dtype=torch.float64)
    real, fake = torch.rand(5, 3, 4, 4, dtype=torch.float64), torch.rand(5, 3, 4, 4,
                                                                         dtype=torch.float64)
    penalty = gradient_penalty(lambda x: (x * w).flatten(1).sum(1), real, fake)
    assert penalty.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-12)
    # a multiscale critic: the gradient of the sum of its scales
    penalty = gradient_penalty(lambda x: [(x * w).flatten(1).sum(1), (2 * x * w).sum((1, 2, 3))],
                               real, fake)
    assert penalty.item() == pytest.approx((3 * w.norm().item() - 1) ** 2, rel=1e-12)


def test_penalty_is_differentiable_for_the_critic():
    w = torch.randn(3, 4, 4, requires_grad=True)
    gradient_penalty(lambda x: (x * w).flatten(1).sum(1), torch.rand(2, 3, 4, 4),
                     torch.rand(2, 3, 4, 4)).backward()
    expected = 2 * (w.norm() - 1) * w / w.norm()
    torch.testing.assert_close(w.grad, expected.detach())


def test_gp_weight_adds_the_penalty_to_d_loss(tiny_opt):
    opt = copy.deepcopy(tiny_opt)
    opt['model_type'] = 'SRGANModel'
    opt['network_g'] = {'type': 'IterValueG', 'scale': 2}
    opt['network_d'] = {'type': 'IterValueD', 'num_in_ch': 3}
    opt['train'] = gan_train(ema_decay=0.5)
    opt['train']['gan_opt'] = {'type': 'GANLoss', 'gan_type': 'wgan', 'loss_weight': 0.1}
    opt['train']['gp_weight'] = 10.0
    model = build(opt)
    model.feed_data(batch())
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert log['l_d_gp'] > 0 and torch.isfinite(torch.tensor(log['l_d_gp']))
