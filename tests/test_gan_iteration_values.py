"""One iteration of every GAN model, number by number: a tiny analytic generator and
discriminator with fixed weights, plain SGD, and every logged value and every updated weight
compared with a hand computation written here from the formulas (BasicSR's SRGAN / ESRGAN /
Real-ESRGAN code, pix2pix's paper), not with the model's helpers.

What the numbers pin down: which label each relativistic term uses, the R1 scale
(``r1_reg_weight / 2 * d_reg_every``, only on iterations divisible by ``d_reg_every``), that the
adversarial warm-up counts G steps (not iterations) and that the first ``net_d_init_iters``
iterations step D alone, which GT each Real-ESRGAN loss compares with (``*_gt_usm``) and which
GT is degraded (and that the sharpened GT is that of the pair pool's output), and pix2pix's
conditional pairs and halved D terms. Stand-ins replace Real-ESRGAN's USM sharpening and random
degradation (both tested on their own elsewhere) so that the GT each step uses is known."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from basicsr_lite.models import build_model
from basicsr_lite.options import validate_options
from basicsr_lite.registry import ARCH_REGISTRY

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
LR_G, LR_D = 0.1, 0.05
GAN_WEIGHT, PIX_WEIGHT, PERCEP_WEIGHT, STYLE_WEIGHT = 0.1, 1.0, 0.5, 200.0


# ---- the tiny networks --------------------------------------------------------------------------
class IterValueG(nn.Module):
    """``a * nearest_upsample(x) + b``."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.a = nn.Parameter(torch.tensor(0.8))
        self.b = nn.Parameter(torch.tensor(0.05))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * F.interpolate(x, scale_factor=self.scale, mode='nearest') + self.b


class IterValueD(nn.Module):
    """One logit per pixel: ``sum_c (w_c x_c + q x_c^2) + b``, ``w_c = 0.5 - 0.3 c``."""

    def __init__(self, num_in_ch: int = 3) -> None:
        super().__init__()
        self.w = nn.Parameter(0.5 - 0.3 * torch.arange(num_in_ch, dtype=torch.float32))
        self.q = nn.Parameter(torch.tensor(0.7))
        self.b = nn.Parameter(torch.tensor(-0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.w.view(1, -1, 1, 1) * x + self.q * x * x).sum(1, keepdim=True) + self.b


@pytest.fixture(autouse=True)
def tiny_archs(monkeypatch) -> None:
    """The tiny networks, registered for this file's tests only (test_archs checks every
    registered network)."""
    ARCH_REGISTRY.keys()  # loads the package's own networks before these are added
    for net in (IterValueG, IterValueD):
        monkeypatch.setitem(ARCH_REGISTRY._items, net.__name__, net)


# ---- the hand computation ------------------------------------------------------------------------
def g_ref(p: dict, lq: torch.Tensor, scale: int = 2) -> torch.Tensor:
    up = lq.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
    return p['a'] * up + p['b']


def d_ref(p: dict, x: torch.Tensor) -> torch.Tensor:
    w = p['w'].view(1, -1, 1, 1)
    return (w * x + p['q'] * x * x).sum(1, keepdim=True) + p['b']


def d_input_grad(p: dict, x: torch.Tensor) -> torch.Tensor:
    """d sum(D(x)) / dx, by hand: ``w_c + 2 q x_c``."""
    return p['w'].view(1, -1, 1, 1) + 2 * p['q'] * x


def bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE with logits against label 1 (real) / 0 (fake): mean of softplus(z) - y z."""
    return (F.softplus(logits) - (1.0 if real else 0.0) * logits).mean()


def vgg_conv1_1(vgg: dict, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d((x - IMAGENET_MEAN) / IMAGENET_STD, vgg['features.0.weight'],
                    vgg['features.0.bias'], padding=1)


def gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def content_ref(p_out: torch.Tensor, pix_gt: torch.Tensor, percep_gt: torch.Tensor,
                vgg: dict | None) -> dict:
    losses = {'l_g_pix': PIX_WEIGHT * (p_out - pix_gt).abs().mean()}
    if vgg is not None:
        fo, fg = vgg_conv1_1(vgg, p_out), vgg_conv1_1(vgg, percep_gt)
        losses['l_g_percep'] = PERCEP_WEIGHT * (fo - fg).abs().mean()
        losses['l_g_style'] = STYLE_WEIGHT * (gram(fo) - gram(fg)).abs().mean()
    return losses


def leaves(net: nn.Module) -> dict:
    return {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}


def sgd(p: dict, total: torch.Tensor, lr: float) -> dict:
    names = list(p)
    grads = torch.autograd.grad(total, [p[k] for k in names])
    return {k: (p[k] - lr * g).detach() for k, g in zip(names, grads)}


def assert_log(model, expected: dict) -> None:
    log = model.get_current_log()
    assert set(log) == set(expected)
    for key, value in expected.items():
        assert log[key] == pytest.approx(float(value.detach()), rel=1e-5, abs=1e-7), key


def assert_params(net: nn.Module, expected: dict) -> None:
    for k, v in net.named_parameters():
        torch.testing.assert_close(v.detach(), expected[k], rtol=1e-5, atol=1e-7, msg=k)


# ---- models --------------------------------------------------------------------------------------
def batch(n: int = 2, scale: int = 2, size: int = 4) -> dict:
    lq = (torch.arange(n * 3 * (size // scale) ** 2, dtype=torch.float32) * 5 % 13) / 12
    gt = (torch.arange(n * 3 * size * size, dtype=torch.float32) * 7 % 11) / 10
    return {'lq': lq.reshape(n, 3, size // scale, size // scale),
            'gt': gt.reshape(n, 3, size, size)}


def gan_train(**extra) -> dict:
    train = {'ema_decay': 0, 'optim_g': {'type': 'SGD', 'lr': LR_G},
             'optim_d': {'type': 'SGD', 'lr': LR_D}, 'scheduler': None, 'total_iter': 8,
             'pixel_opt': {'type': 'L1Loss', 'loss_weight': PIX_WEIGHT},
             'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': GAN_WEIGHT}}
    train.update(extra)
    return train


def perceptual_opt() -> dict:
    return {'type': 'PerceptualLoss', 'layer_weights': {'conv1_1': 1.0},
            'perceptual_weight': PERCEP_WEIGHT, 'style_weight': STYLE_WEIGHT}


def build(opt: dict):
    opt = validate_options(opt, True)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    return build_model(opt, torch.device('cpu'))


@pytest.fixture
def srgan_opt(tiny_opt) -> dict:
    opt = copy.deepcopy(tiny_opt)
    opt['model_type'] = 'SRGANModel'
    opt['network_g'] = {'type': 'IterValueG', 'scale': 2}
    opt['network_d'] = {'type': 'IterValueD', 'num_in_ch': 3}
    opt['train'] = gan_train()
    return opt


def srgan_reference(kind: str, pg: dict, pd: dict, data: dict, vgg: dict | None,
                    trains_g: bool, warmup_factor: float, r1_scale: float | None
                    ) -> tuple[dict, dict | None, dict]:
    """(expected log, G after its step or None, D after its step) of one SRGAN / ESRGAN
    iteration, from BasicSR's formulas."""
    lq, gt = data['lq'], data['gt']
    out = g_ref(pg, lq)
    log, new_g = {}, None
    if trains_g:
        g_losses = content_ref(out, gt, gt, vgg)
        pd_frozen = {k: v.detach() for k, v in pd.items()}
        fake_g = d_ref(pd_frozen, out)
        if kind == 'ESRGANModel':
            real_d = d_ref(pd_frozen, gt).detach()
            gan = (bce(real_d - fake_g.mean(), False) + bce(fake_g - real_d.mean(), True)) / 2
        else:
            gan = bce(fake_g, True)
        g_losses['l_g_gan'] = GAN_WEIGHT * gan * warmup_factor
        new_g = sgd(pg, sum(g_losses.values()), LR_G)
        log.update(g_losses)
    fake = out.detach()
    real_pred, fake_pred = d_ref(pd, gt), d_ref(pd, fake)
    if kind == 'ESRGANModel':
        d_losses = {'l_d_real': 0.5 * bce(real_pred - fake_pred.detach().mean(), True),
                    'l_d_fake': 0.5 * bce(fake_pred - real_pred.detach().mean(), False)}
    else:
        d_losses = {'l_d_real': bce(real_pred, True), 'l_d_fake': bce(fake_pred, False)}
    if r1_scale is not None:
        d_losses['l_d_r1'] = r1_scale * d_input_grad(pd, gt).pow(2).flatten(1).sum(1).mean()
    new_d = sgd(pd, sum(d_losses.values()), LR_D)
    log.update(d_losses)
    log.update(out_d_real=real_pred.mean(), out_d_fake=fake_pred.mean())
    return log, new_g, new_d


@pytest.mark.parametrize('kind', ['SRGANModel', 'ESRGANModel'])
def test_srgan_esrgan_iterations_with_r1_every_second_iteration(srgan_opt, random_vgg, kind):
    """Iteration 1: no R1; iteration 2: R1 scaled by r1_reg_weight / 2 * d_reg_every. Pixel,
    perceptual, style, GAN (relativistic for ESRGAN) and D's terms, and both SGD steps."""
    vgg = random_vgg('conv1_1')
    srgan_opt['model_type'] = kind
    srgan_opt['train'].update(perceptual_opt=perceptual_opt(), r1_reg_weight=0.3, d_reg_every=2)
    model = build(srgan_opt)
    data = batch()
    for it in (1, 2):
        pg, pd = leaves(model.net_g), leaves(model.net_d)
        expected, new_g, new_d = srgan_reference(kind, pg, pd, data, vgg, True, 1.0,
                                                 0.3 / 2 * 2 if it == 2 else None)
        model.feed_data(data)
        model.optimize_parameters(it)
        assert_log(model, expected)
        assert_params(model.net_g, new_g)
        assert_params(model.net_d, new_d)


def test_d_only_warmup_then_adversarial_weight_counts_g_steps(srgan_opt):
    """net_d_init_iters 2: iterations 1-2 step D alone (G's weights untouched, no G loss
    logged); gan_warmup_iter 4 counts G steps: weight 0 at iteration 3 (the first G step), 1/4
    at iteration 4, not 3/4 and 1 as counting iterations would give."""
    srgan_opt['train'].update(net_d_init_iters=2, gan_warmup_iter=4)
    model = build(srgan_opt)
    data = batch()
    for it, factor in ((1, None), (2, None), (3, 0.0), (4, 0.25)):
        pg, pd = leaves(model.net_g), leaves(model.net_d)
        expected, new_g, new_d = srgan_reference('SRGANModel', pg, pd, data, None,
                                                 factor is not None, factor or 0.0, None)
        model.feed_data(data)
        model.optimize_parameters(it)
        assert_log(model, expected)
        assert_params(model.net_d, new_d)
        assert_params(model.net_g, {k: v.detach() for k, v in pg.items()} if new_g is None
                      else new_g)
        if new_g is None:
            assert all(torch.equal(v, pg[k]) for k, v in model.net_g.named_parameters())
    assert model.g_iters == 2


# ---- Real-ESRNet / Real-ESRGAN -------------------------------------------------------------------
def sharpen(x: torch.Tensor) -> torch.Tensor:
    """Stands in for USM sharpening: easy to compute, and far from the GT it is given."""
    return 0.9 - 0.8 * x


class RecordingSynthesis:
    """Stands in for the degradation: records what it degrades, returns its 2x2 average."""

    def __init__(self) -> None:
        self.sources: list[torch.Tensor] = []

    def __call__(self, source, kernel1, kernel2, sinc_kernel, streams) -> torch.Tensor:
        self.sources.append(source.clone())
        return F.avg_pool2d(source, 2)


def synthetic_model(opt: dict):
    """The model with the stand-ins; GT batches of ``gt_size`` (the crop takes all of it)."""
    model = build(opt)
    model.usm_sharpener = sharpen
    model.synthesis = RecordingSynthesis()
    return model


def gt_batch(gt: torch.Tensor) -> dict:
    impulse = torch.zeros(gt.shape[0], 21, 21)
    impulse[:, 10, 10] = 1
    return {'gt': gt, 'kernel1': impulse, 'kernel2': impulse, 'sinc_kernel': impulse,
            'gt_path': ['a'] * gt.shape[0]}


@pytest.fixture
def synthetic_opt(srgan_opt) -> dict:
    opt = copy.deepcopy(srgan_opt)
    opt.update(gt_size=4, queue_size=0)
    train = opt['datasets']['train']
    opt['datasets']['train'] = {
        'name': 'synthetic', 'type': 'RealESRGANDataset', 'dataroot_gt': train['dataroot_gt'],
        'io_backend': {'type': 'disk'}, 'crop_pad_size': 32, 'num_worker_per_gpu': 0,
        'batch_size_per_gpu': 2}
    return opt


@pytest.mark.parametrize('gt_usm', [True, False])
def test_real_esrnet_degrades_and_trains_towards_the_sharpened_gt_when_gt_usm(
        synthetic_opt, gt_usm):
    synthetic_opt['model_type'] = 'RealESRNetModel'
    synthetic_opt['gt_usm'] = gt_usm
    for key in ('network_d', 'optim_d', 'gan_opt'):
        synthetic_opt.pop(key, None)
        synthetic_opt['train'].pop(key, None)
    model = synthetic_model(synthetic_opt)
    gt = batch()['gt']
    target = sharpen(gt) if gt_usm else gt
    pg = leaves(model.net_g)
    out = g_ref(pg, F.avg_pool2d(target, 2))
    l_pix = PIX_WEIGHT * (out - target).abs().mean()
    model.feed_data(gt_batch(gt))
    model.optimize_parameters(1)
    torch.testing.assert_close(model.synthesis.sources[0], target)
    assert_log(model, {'l_pix': l_pix})
    assert_params(model.net_g, sgd(pg, l_pix, LR_G))


def realesrgan_reference(pg: dict, pd: dict, lq: torch.Tensor, gt: torch.Tensor, vgg: dict | None,
                         l1_usm: bool, percep_usm: bool, gan_usm: bool
                         ) -> tuple[dict, dict, dict]:
    """(expected log, G after its step, D after its step) of one Real-ESRGAN iteration on the
    pair (lq, gt), from BasicSR's RealESRGANModel: a plain (not relativistic) GAN loss."""
    usm = sharpen(gt)
    out = g_ref(pg, lq)
    g_losses = content_ref(out, usm if l1_usm else gt, usm if percep_usm else gt, vgg)
    g_losses['l_g_gan'] = GAN_WEIGHT * bce(d_ref({k: v.detach() for k, v in pd.items()}, out),
                                           True)
    real_pred, fake_pred = d_ref(pd, usm if gan_usm else gt), d_ref(pd, out.detach())
    d_losses = {'l_d_real': bce(real_pred, True), 'l_d_fake': bce(fake_pred, False)}
    log = {**g_losses, **d_losses, 'out_d_real': real_pred.mean(),
           'out_d_fake': fake_pred.mean()}
    return log, sgd(pg, sum(g_losses.values()), LR_G), sgd(pd, sum(d_losses.values()), LR_D)


@pytest.mark.parametrize('l1_usm,percep_usm,gan_usm', [(True, False, True),
                                                       (False, True, False)])
def test_real_esrgan_degrades_the_sharpened_gt_and_each_loss_gets_its_gt(
        synthetic_opt, random_vgg, l1_usm, percep_usm, gan_usm):
    """The sharpened GT is degraded whatever the flags; l1 / percep / gan_gt_usm choose the
    sharpened or the plain GT for the pixel loss, the perceptual loss and D's real images."""
    vgg = random_vgg('conv1_1')
    synthetic_opt['model_type'] = 'RealESRGANModel'
    synthetic_opt.update(l1_gt_usm=l1_usm, percep_gt_usm=percep_usm, gan_gt_usm=gan_usm)
    synthetic_opt['train']['perceptual_opt'] = perceptual_opt()
    model = synthetic_model(synthetic_opt)
    gt = batch()['gt']
    pg, pd = leaves(model.net_g), leaves(model.net_d)
    expected, new_g, new_d = realesrgan_reference(pg, pd, F.avg_pool2d(sharpen(gt), 2), gt, vgg,
                                                  l1_usm, percep_usm, gan_usm)
    model.feed_data(gt_batch(gt))
    model.optimize_parameters(1)
    torch.testing.assert_close(model.synthesis.sources[0], sharpen(gt))
    assert_log(model, expected)
    assert_params(model.net_g, new_g)
    assert_params(model.net_d, new_d)


def test_real_esrgan_sharpens_the_gt_that_comes_out_of_the_pair_pool(synthetic_opt):
    """queue_size 2, batch 2: iteration 1 fills the pool and trains on batch A; iteration 2
    degrades batch B but trains on A's pairs (shuffled). As in BasicSR, the sharpened GT of
    the losses is that of the pooled GT (not B's, not the previous iteration's)."""
    synthetic_opt['model_type'] = 'RealESRGANModel'
    synthetic_opt.update(queue_size=2, l1_gt_usm=True, percep_gt_usm=True, gan_gt_usm=True)
    model = synthetic_model(synthetic_opt)
    gt_a = batch()['gt']
    gt_b = gt_a.flip(-2) * 0.5
    for it, fed, shuffled in ((1, gt_a, [0, 1]), (2, gt_b, [1, 0])):
        pg, pd = leaves(model.net_g), leaves(model.net_d)
        model.feed_data(gt_batch(fed))
        torch.testing.assert_close(model.synthesis.sources[-1], sharpen(fed))
        # the pool's shuffle (seeded by manual_seed): which of A's images sits in each row
        order = [next(j for j in range(2) if torch.equal(row, gt_a[j])) for row in model.gt]
        assert order == shuffled
        lq = F.avg_pool2d(sharpen(gt_a), 2)[order]
        torch.testing.assert_close(model.lq, lq)
        expected, new_g, new_d = realesrgan_reference(pg, pd, lq, gt_a[order], None, True, True,
                                                      True)
        model.optimize_parameters(it)
        assert_log(model, expected)
        assert_params(model.net_g, new_g)
        assert_params(model.net_d, new_d)


# ---- pix2pix -------------------------------------------------------------------------------------
def test_pix2pix_iteration_conditional_pairs_halved_d_terms_and_r1(srgan_opt):
    """G works in [-1, 1] (output (G(2 lq - 1) + 1) / 2); D judges (2 lq - 1, 2 img - 1); D's
    terms are halved; R1 (d_reg_every 1) differentiates D through that pair w.r.t. the GT."""
    srgan_opt['model_type'] = 'Pix2pixModel'
    srgan_opt['scale'] = 1
    srgan_opt['network_g'] = {'type': 'IterValueG', 'scale': 1}
    srgan_opt['network_d'] = {'type': 'IterValueD', 'num_in_ch': 6}
    srgan_opt['train'].update(r1_reg_weight=0.4, d_reg_every=1)
    model = build(srgan_opt)
    data = {'lq': batch()['gt'], 'gt': batch()['gt'].flip(-1) * 0.9}
    lq, gt = data['lq'], data['gt']
    pg, pd = leaves(model.net_g), leaves(model.net_d)
    out = (g_ref(pg, 2 * lq - 1, scale=1) + 1) / 2
    pd_frozen = {k: v.detach() for k, v in pd.items()}
    g_losses = {'l_g_pix': PIX_WEIGHT * (out - gt).abs().mean(),
                'l_g_gan': GAN_WEIGHT * bce(d_ref(pd_frozen, torch.cat([2 * lq - 1, 2 * out - 1],
                                                                       1)), True)}
    real_pair = torch.cat([2 * lq - 1, 2 * gt - 1], 1)
    real_pred = d_ref(pd, real_pair)
    fake_pred = d_ref(pd, torch.cat([2 * lq - 1, 2 * out.detach() - 1], 1))
    grad_gt = 2 * d_input_grad(pd, real_pair)[:, 3:]  # chain rule through 2 gt - 1
    d_losses = {'l_d_real': 0.5 * bce(real_pred, True), 'l_d_fake': 0.5 * bce(fake_pred, False),
                'l_d_r1': 0.4 / 2 * 1 * grad_gt.pow(2).flatten(1).sum(1).mean()}
    model.feed_data(data)
    model.optimize_parameters(1)
    assert_log(model, {**g_losses, **d_losses, 'out_d_real': real_pred.mean(),
                       'out_d_fake': fake_pred.mean()})
    assert_params(model.net_g, sgd(pg, sum(g_losses.values()), LR_G))
    assert_params(model.net_d, sgd(pd, sum(d_losses.values()), LR_D))
