"""LDL (Liang et al., CVPR 2022): the artefact map against a numpy re-implementation of the
authors' formula, the loss's value in a GAN iteration (EMA output, gradient through the map as
in the authors' code), the EMA requirement, and tiny runs with the list entry and ``ldl_opt``."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from basicsr_lite.errors import OptionError
from basicsr_lite.losses.ldl_loss import LDLLoss, artifact_map
from basicsr_lite.options import validate_options
from tests.runs import train_in_process as run
from tests.test_gan_iteration_values import (IterValueD, IterValueG, LR_G, build, g_ref,  # noqa: F401
                                             gan_train, leaves, tiny_archs)


def numpy_artifact_map(gt: np.ndarray, out: np.ndarray, ema: np.ndarray, k: int) -> np.ndarray:
    """The authors' get_refined_artifact_map, pixel by pixel."""
    r = np.abs(gt - out).sum(1)  # (N, H, W)
    r_ema = np.abs(gt - ema).sum(1)
    n, h, w = r.shape
    p = (k - 1) // 2
    result = np.zeros((n, 1, h, w))
    for b in range(n):
        global_weight = np.var(r[b], ddof=1) ** (1 / 5)
        padded = np.pad(r[b], p, mode='reflect')
        for i in range(h):
            for j in range(w):
                local = np.var(padded[i:i + k, j:j + k], ddof=1)
                result[b, 0, i, j] = 0.0 if r[b, i, j] < r_ema[b, i, j] \
                    else global_weight * local
    return result


@pytest.mark.parametrize('ksize', [7, 3])
def test_artifact_map_matches_the_authors_formula(ksize):
    g = torch.Generator().manual_seed(0)
    gt, out, ema = (torch.rand(2, 3, 11, 9, generator=g, dtype=torch.float64) for _ in range(3))
    got = artifact_map(gt, out, ema, ksize)
    expected = numpy_artifact_map(gt.numpy(), out.numpy(), ema.numpy(), ksize)
    assert got.shape == (2, 1, 11, 9)
    assert 0 < (got == 0).sum() < got.numel()  # both branches are exercised
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_ldl_loss_value_and_criterion():
    g = torch.Generator().manual_seed(1)
    gt, out, ema = (torch.rand(1, 3, 8, 8, generator=g) for _ in range(3))
    w = torch.from_numpy(numpy_artifact_map(gt.double().numpy(), out.double().numpy(),
                                            ema.double().numpy(), 7)).float()
    torch.testing.assert_close(LDLLoss(0.5)(out, gt, ema), 0.5 * (w * out - w * gt).abs().mean())
    torch.testing.assert_close(LDLLoss(1.0, 'l2')(out, gt, ema), ((w * out - w * gt)**2).mean())
    with pytest.raises(ValueError, match='ksize must be odd'):
        LDLLoss(ksize=4)


@pytest.fixture
def ldl_opt(tiny_opt) -> dict:
    opt = copy.deepcopy(tiny_opt)
    opt['model_type'] = 'RealESRGANModel'
    opt['high_order_degradation'] = False
    opt['network_g'] = {'type': 'IterValueG', 'scale': 2}
    opt['network_d'] = {'type': 'IterValueD', 'num_in_ch': 3}
    opt['train'] = gan_train(ema_decay=0.5, ldl_opt={'type': 'L1Loss', 'loss_weight': 0.7})
    return opt


def test_ldl_iteration_value_uses_the_ema_output_and_the_plain_gt(ldl_opt):
    """Iteration 2 (the EMA has moved away from G): l_g_ldl = 0.7 * L1(map * out, map * gt)
    with the map from G's and the EMA network's outputs against the plain GT (BasicSR's
    RealESRGANModel, whatever l1_gt_usm says); G's step includes the gradient through the map."""
    model = build(ldl_opt)
    model.usm_sharpener = lambda x: 0.9 - 0.8 * x
    g = torch.Generator().manual_seed(2)
    data = {'lq': torch.rand(2, 3, 4, 4, generator=g), 'gt': torch.rand(2, 3, 8, 8, generator=g)}
    model.feed_data(data)
    model.optimize_parameters(1)
    pg = leaves(model.net_g)
    pe = {k: v.detach() for k, v in model.ema.module.named_parameters()}
    assert not all(torch.equal(pe[k], pg[k]) for k in pe)
    out, ema_out = g_ref(pg, data['lq']), g_ref(pe, data['lq'])
    w = artifact_map(data['gt'], out, ema_out, 7)
    expected = 0.7 * (w * out - w * data['gt']).abs().mean()
    model.feed_data(data)
    model.optimize_parameters(2)
    log = model.get_current_log()
    assert list(log)[:2] == ['l_g_pix', 'l_g_ldl']  # BasicSR's order
    assert log['l_g_ldl'] == pytest.approx(float(expected.detach()), rel=1e-5)
    torch.testing.assert_close(model.ema_output(), ema_out.detach())
    grad = torch.autograd.grad(expected, pg['a'])[0]
    assert grad != 0  # the map's gradient is part of it, as in the authors' code


def test_ldl_without_ema_is_a_startup_error(ldl_opt):
    ldl_opt['train']['ema_decay'] = 0
    with pytest.raises(OptionError, match=r"train.ldl_opt: LDLLoss compares with the EMA "
                                          r"network's output; set train.ema_decay > 0"):
        validate_options(ldl_opt, True)
    ldl_opt['train']['ldl_opt'] = {'type': 'SSIMLoss'}
    with pytest.raises(OptionError, match='train.ldl_opt.type: LDL weights a pixel loss'):
        validate_options(ldl_opt, True)


@pytest.mark.parametrize('form', ['list', pytest.param('slot', marks=pytest.mark.slow)])
def test_tiny_esrgan_run_with_ldl(tiny_opt, tmp_path, form):
    opt = copy.deepcopy(tiny_opt)
    opt['model_type'] = 'ESRGANModel'
    opt['network_d'] = {'type': 'UNetDiscriminatorSN', 'num_feat': 4}
    opt['train'].update(optim_d={'type': 'Adam', 'lr': 1e-3}, total_iter=3, ema_decay=0.9)
    gan = {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1}
    if form == 'list':
        opt['train']['losses'] = [opt['train'].pop('pixel_opt'),
                                  {'type': 'LDLLoss', 'loss_weight': 1.0}, gan]
    else:
        opt['train'].update(ldl_opt={'type': 'L1Loss', 'loss_weight': 1.0}, gan_opt=gan)
    assert run(tmp_path, opt) == 0
    log = next(Path(opt['path']['experiments_root']).glob('train_*.log')).read_text()
    assert 'l_g_ldl:' in log and 'l_d_real:' in log
