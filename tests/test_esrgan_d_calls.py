"""ESRGAN's discriminator calls: BasicSR 1.4.2's five per iteration (G step: D(gt) then D(output);
D step: D(output) detached, D(gt), D(output.detach())) for a D whose forward changes it (spectral
norm, batch norm), four for one whose forward does not, and the calls a resumed pre-mend run
began with. A spectral-norm D's run matches a hand-written BasicSR-order iteration."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from basicsr_lite.models.esrgan_model import forward_changes_state
from tests.test_gan_iteration_values import (GAN_WEIGHT, LR_D, LR_G, PIX_WEIGHT, IterValueD,  # noqa: F401
                                             IterValueG, bce, build, gan_train, tiny_archs)


@pytest.fixture
def esrgan_opt(tiny_opt) -> dict:
    opt = copy.deepcopy(tiny_opt)
    opt['model_type'] = 'ESRGANModel'
    opt['network_g'] = {'type': 'IterValueG', 'scale': 2}
    opt['network_d'] = {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4}
    opt['train'] = gan_train()
    return opt


def data() -> dict:
    g = torch.Generator().manual_seed(5)
    return {'lq': torch.rand(2, 3, 8, 8, generator=g), 'gt': torch.rand(2, 3, 16, 16, generator=g)}


def count_calls(net: nn.Module) -> list:
    calls = []
    net.register_forward_hook(lambda module, args, out: calls.append(args[0].detach().clone()))
    return calls


@pytest.mark.parametrize('d_type,expected', [('UNetDiscriminatorSN', 5), ('IterValueD', 4),
                                             ('VGGStyleDiscriminator', 5)])
def test_d_forward_calls_per_iteration(esrgan_opt, d_type, expected):
    if d_type == 'IterValueD':
        esrgan_opt['network_d'] = {'type': 'IterValueD', 'num_in_ch': 3}
    elif d_type == 'VGGStyleDiscriminator':  # batch norm
        esrgan_opt['network_d'] = {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3,
                                   'num_feat': 2, 'input_size': 128}
        esrgan_opt['train']['pixel_opt'] = None
    model = build(esrgan_opt)
    calls = count_calls(model.net_d)
    batch = data()
    if d_type == 'VGGStyleDiscriminator':
        batch = {'lq': torch.rand(1, 3, 64, 64), 'gt': torch.rand(1, 3, 128, 128)}
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert len(calls) == expected
    gt = batch['gt']
    if expected == 5:  # BasicSR's order: gt, output | output, gt, output
        assert [torch.equal(c, gt) for c in calls] == [True, False, False, True, False]
    else:
        assert [torch.equal(c, gt) for c in calls] == [False, True, True, False]
    model.optimize_parameters(2)
    assert len(calls) == 2 * expected


def test_forward_changes_state():
    assert forward_changes_state(nn.Sequential(nn.utils.spectral_norm(nn.Conv2d(1, 1, 3))))
    assert forward_changes_state(
        nn.Sequential(nn.utils.parametrizations.spectral_norm(nn.Conv2d(1, 1, 3))))
    assert forward_changes_state(nn.Sequential(nn.Conv2d(1, 1, 3), nn.BatchNorm2d(1)))
    assert not forward_changes_state(nn.Sequential(nn.Conv2d(1, 1, 3), nn.LeakyReLU()))


def basicsr_iteration(g: nn.Module, d: nn.Module, opt_g, opt_d, lq, gt) -> dict:
    """BasicSR 1.4.2's ESRGANModel.optimize_parameters, written out (L1 + relativistic GAN)."""
    for p in d.parameters():
        p.requires_grad = False
    opt_g.zero_grad()
    output = g(lq)
    l_g_pix = PIX_WEIGHT * (output - gt).abs().mean()
    real_d_pred = d(gt).detach()
    fake_g_pred = d(output)
    l_g_gan = GAN_WEIGHT * (bce(real_d_pred - fake_g_pred.mean(), False)
                            + bce(fake_g_pred - real_d_pred.mean(), True)) / 2
    (l_g_pix + l_g_gan).backward()
    opt_g.step()
    for p in d.parameters():
        p.requires_grad = True
    opt_d.zero_grad()
    fake_d_pred = d(output).detach()
    real_d_pred = d(gt)
    l_d_real = bce(real_d_pred - fake_d_pred.mean(), True) * 0.5
    l_d_real.backward()
    fake_d_pred = d(output.detach())
    l_d_fake = bce(fake_d_pred - real_d_pred.detach().mean(), False) * 0.5
    l_d_fake.backward()
    opt_d.step()
    return {'l_g_pix': l_g_pix, 'l_g_gan': l_g_gan, 'l_d_real': l_d_real, 'l_d_fake': l_d_fake,
            'out_d_real': real_d_pred.mean(), 'out_d_fake': fake_d_pred.mean()}


def states_close(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.allclose(sa[k], sb[k], rtol=1e-5, atol=1e-7) for k in sa)


@pytest.mark.parametrize('d_calls', ['basicsr', 'compact'])
def test_spectral_norm_run_matches_basicsr_order(esrgan_opt, d_calls):
    """Three iterations on one batch: weights, spectral-norm vectors (u, v) and the logged
    values equal the hand-written BasicSR iteration's; the old four calls do not."""
    model = build(esrgan_opt)
    model.d_calls = d_calls
    g, d = copy.deepcopy(model.net_g), copy.deepcopy(model.net_d)
    opt_g = torch.optim.SGD(g.parameters(), lr=LR_G)
    opt_d = torch.optim.SGD(d.parameters(), lr=LR_D)
    batch = data()
    for it in (1, 2, 3):
        expected = basicsr_iteration(g, d, opt_g, opt_d, batch['lq'], batch['gt'])
        model.feed_data(batch)
        model.optimize_parameters(it)
    log = model.get_current_log()
    matches = states_close(model.net_d, d) and states_close(model.net_g, g) and all(
        log[k] == pytest.approx(float(v.detach()), rel=1e-5) for k, v in expected.items())
    assert matches == (d_calls == 'basicsr')


def test_a_state_from_before_the_mend_keeps_its_calls(esrgan_opt):
    model = build(esrgan_opt)
    assert model.d_calls == 'basicsr' and model.state_dict()['d_calls'] == 'basicsr'
    state = model.state_dict()
    legacy = {k: v for k, v in state.items() if k != 'd_calls'}
    model.load_state_dict(legacy)
    assert model.d_calls == 'compact'
    model.load_state_dict(state)
    assert model.d_calls == 'basicsr'
    basicsr_state = {k: legacy[k] for k in ('optimizers', 'schedulers')}  # BasicSR's own
    model.load_state_dict(basicsr_state)
    assert model.d_calls == 'basicsr'
