"""GAN stabilisers: adaptive discriminator skipping (``train.d_skip_threshold``) and one-sided label
smoothing (``GANLoss.d_real_label_val``), with values."""
from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from basicsr_lite.errors import OptionError
from basicsr_lite.losses.gan_loss import GANLoss
from basicsr_lite.options import validate_options
from tests.test_gan_iteration_values import (GAN_WEIGHT, LR_D, LR_G, PIX_WEIGHT, IterValueD,  # noqa: F401
                                             IterValueG, assert_log, assert_params, batch, bce,
                                             build, d_ref, g_ref, gan_train, leaves, sgd,
                                             tiny_archs)


@pytest.fixture
def srgan_opt(tiny_opt) -> dict:
    opt = copy.deepcopy(tiny_opt)
    opt['model_type'] = 'SRGANModel'
    opt['network_g'] = {'type': 'IterValueG', 'scale': 2}
    opt['network_d'] = {'type': 'IterValueD', 'num_in_ch': 3}
    opt['train'] = gan_train(ema_decay=0.5)
    return opt


def bce_label(logits: torch.Tensor, label: float) -> torch.Tensor:
    return (F.softplus(logits) - label * logits).mean()


def test_gan_loss_smooths_d_real_targets_only():
    pred = torch.linspace(-2, 2, 12).reshape(1, 1, 3, 4)
    loss = GANLoss('vanilla', d_real_label_val=0.9, loss_weight=0.5)
    torch.testing.assert_close(loss(pred, True, is_disc=True), bce_label(pred, 0.9))
    torch.testing.assert_close(loss(pred, False, is_disc=True), bce_label(pred, 0.0))
    torch.testing.assert_close(loss(pred, True, is_disc=False), 0.5 * bce_label(pred, 1.0))
    lsgan = GANLoss('lsgan', d_real_label_val=0.8)
    torch.testing.assert_close(lsgan(pred, True, is_disc=True), ((pred - 0.8)**2).mean())
    torch.testing.assert_close(lsgan(pred, True, is_disc=False), ((pred - 1.0)**2).mean())
    with pytest.raises(ValueError, match='needs labels'):
        GANLoss('hinge', d_real_label_val=0.9)


def test_smoothed_label_in_an_srgan_iteration(srgan_opt):
    srgan_opt['train']['gan_opt']['d_real_label_val'] = 0.9
    model = build(srgan_opt)
    data = batch()
    pg, pd = leaves(model.net_g), leaves(model.net_d)
    lq, gt = data['lq'], data['gt']
    out = g_ref(pg, lq)
    g_losses = {'l_g_pix': PIX_WEIGHT * (out - gt).abs().mean(),
                'l_g_gan': GAN_WEIGHT * bce(d_ref({k: v.detach() for k, v in pd.items()}, out),
                                            True)}
    real_pred, fake_pred = d_ref(pd, gt), d_ref(pd, out.detach())
    d_losses = {'l_d_real': bce_label(real_pred, 0.9), 'l_d_fake': bce(fake_pred, False)}
    model.feed_data(data)
    model.optimize_parameters(1)
    assert_log(model, {**g_losses, **d_losses, 'out_d_real': real_pred.mean(),
                       'out_d_fake': fake_pred.mean()})
    assert_params(model.net_g, sgd(pg, sum(g_losses.values()), LR_G))
    assert_params(model.net_d, sgd(pd, sum(d_losses.values()), LR_D))


def test_d_skipped_while_its_loss_is_below_the_threshold(srgan_opt):
    """Iteration 1: D's loss (about 1.4) is below 100: D's weights stay, G steps, the EMA moves,
    d_skipped 1. Then threshold 0.5: D steps again (d_skipped 0, the count stays 1)."""
    srgan_opt['train']['d_skip_threshold'] = 100.0
    model = build(srgan_opt)
    data = batch()
    pg, pd = leaves(model.net_g), leaves(model.net_d)
    ema_before = {k: v.clone() for k, v in model.ema.module.state_dict().items()}
    model.feed_data(data)
    model.optimize_parameters(1)
    out = g_ref(pg, data['lq'])
    g_total = PIX_WEIGHT * (out - data['gt']).abs().mean() + GAN_WEIGHT * bce(
        d_ref({k: v.detach() for k, v in pd.items()}, out), True)
    assert_params(model.net_d, {k: v.detach() for k, v in pd.items()})
    assert_params(model.net_g, sgd(pg, g_total, LR_G))
    assert any(not torch.equal(v, ema_before[k]) for k, v in model.ema.module.state_dict().items())
    log = model.get_current_log()
    assert log['d_skipped'] == 1 and log['d_skips'] == 1
    assert log['l_d_real'] + log['l_d_fake'] < 100
    model.opt['train']['d_skip_threshold'] = 0.5
    pd = leaves(model.net_d)
    model.optimize_parameters(2)
    assert any(not torch.equal(v, pd[k]) for k, v in model.net_d.named_parameters())
    log = model.get_current_log()
    assert log['d_skipped'] == 0 and log['d_skips'] == 1
    assert model.state_dict()['d_skips'] == 1


def test_d_skipping_with_gradient_accumulation_is_an_option_error(srgan_opt):
    srgan_opt['train'].update(d_skip_threshold=0.1, accumulate_grad_batches=2)
    with pytest.raises(OptionError, match='train.d_skip_threshold: skipping D decides per step'):
        validate_options(srgan_opt, True)
