"""PatchGANDiscriminatorSN / MultiscalePatchGANDiscriminatorSN: traiNNer-redux's key layout,
output shapes, spectral norm on every conv, the GAN losses on multiscale (list) outputs, and
tiny ESRGAN training runs with each discriminator."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from basicsr_lite.archs import build_network
from basicsr_lite.archs.capabilities import capability
from basicsr_lite.losses.gan_loss import GANLoss, r1_penalty, relativistic_pair
from basicsr_lite.models import build_model
from basicsr_lite.options import validate_options
from tests.runs import load
from tests.runs import train_in_process as run
from tests.test_gan_models import built_model, changed, gan_opt, snapshot  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
DS = {'PatchGANDiscriminatorSN': {'ndf': 4, 'n_layers': 2},
      'MultiscalePatchGANDiscriminatorSN': {'ndf': 4, 'n_layers': 2, 'num_d': 2}}


def sn_keys(prefix: str, c_in: int, c_out: int) -> list[tuple[str, tuple[int, ...]]]:
    """torch's spectral_norm: bias, weight_orig, and the power-iteration vectors u, v."""
    return [(f'{prefix}.bias', (c_out,)), (f'{prefix}.weight_orig', (c_out, c_in, 4, 4)),
            (f'{prefix}.weight_u', (c_out,)), (f'{prefix}.weight_v', (c_in * 16,))]


def test_keys_follow_traiNNer_redux_layout():
    """Default (ndf 64, n_layers 3): convs at model.0/2/4/6/8, widths 64-128-256-512-1; the
    multiscale one holds num_d such stacks as layers.K.N."""
    widths = [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    single = [k for i, (a, b) in enumerate(widths) for k in sn_keys(f'model.{2 * i}', a, b)]
    net = build_network({'type': 'PatchGANDiscriminatorSN'})
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == single
    assert sum(p.numel() for p in net.parameters()) == 2_764_737
    multi = build_network({'type': 'MultiscalePatchGANDiscriminatorSN', 'num_d': 2})
    assert [(k, tuple(v.shape)) for k, v in multi.state_dict().items()] == \
        [(f'layers.{d}.' + k[len('model.'):], s) for d in range(2) for k, s in single]
    wide = build_network({'type': 'PatchGANDiscriminatorSN', 'ndf': 128, 'n_layers': 4})
    assert [tuple(m.weight_orig.shape[:2]) for m in wide.modules()
            if isinstance(m, nn.Conv2d)][-3:] == [(512, 512), (512, 512), (1, 512)]


def test_output_shapes_and_minimum_sizes():
    x = torch.rand(2, 3, 64, 48)
    assert build_network({'type': 'PatchGANDiscriminatorSN'})(x).shape == (2, 1, 6, 4)
    outs = build_network({'type': 'MultiscalePatchGANDiscriminatorSN', 'n_layers': 2})(
        torch.rand(2, 3, 96, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 1, 22, 14), (2, 1, 10, 6), (2, 1, 4, 2)]
    assert capability({'type': 'PatchGANDiscriminatorSN'}).min_size == 24
    cap = capability({'type': 'MultiscalePatchGANDiscriminatorSN'})
    assert cap.min_size == 93 and cap.scales == ()
    net = build_network({'type': 'MultiscalePatchGANDiscriminatorSN', 'ndf': 2})
    assert net(torch.rand(1, 3, 93, 93))[-1].shape == (1, 1, 1, 1)
    with pytest.raises(RuntimeError):
        net(torch.rand(1, 3, 92, 92))


@pytest.mark.slow  # the default discriminators at their minimum input: 10-20 s on 2 cores
@pytest.mark.parametrize('name', list(DS))
def test_spectral_norm_on_every_conv(name):
    """Every conv carries the power-iteration state (u, v in the state dict), and after some
    training-mode passes every conv's weight has a largest singular value of about 1."""
    torch.manual_seed(0)
    net = build_network({'type': name, **DS[name]})
    convs = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 * DS[name].get('num_d', 1)
    state = net.state_dict()
    for prefix, conv in convs:
        assert {f'{prefix}.weight_u', f'{prefix}.weight_v', f'{prefix}.weight_orig'} <= \
            set(state)
        assert 'weight' not in dict(conv.named_parameters())
    v_before = {n: m.weight_v.clone() for n, m in convs}
    for _ in range(300):  # one power iteration per training-mode forward
        net(torch.rand(1, 3, 24, 24))
    for prefix, conv in convs:
        assert not torch.equal(conv.weight_v, v_before[prefix])  # the power iteration ran
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05), prefix


def test_gan_losses_average_over_scales():
    torch.manual_seed(0)
    preds = [torch.randn(2, 1, 6, 6), torch.randn(2, 1, 2, 2)]
    for gan_type in ('vanilla', 'lsgan', 'wgan', 'wgan_softplus', 'hinge'):
        gan = GANLoss(gan_type, loss_weight=0.5)
        for real, disc in ((True, True), (False, True), (True, False)):
            expected = (gan(preds[0], real, disc) + gan(preds[1], real, disc)) / 2
            torch.testing.assert_close(gan(preds, real, disc), expected)
    gan = GANLoss('vanilla')
    others = [torch.randn(2, 1, 6, 6), torch.randn(2, 1, 2, 2)]
    expected = (relativistic_pair(gan, preds[0], others[0], True, True)
                + relativistic_pair(gan, preds[1], others[1], True, True)) / 2
    torch.testing.assert_close(relativistic_pair(gan, preds, others, True, True), expected)
    img = torch.rand(1, 3, 32, 32, requires_grad=True)
    net = build_network({'type': 'MultiscalePatchGANDiscriminatorSN', **DS[
        'MultiscalePatchGANDiscriminatorSN']}).eval()
    outs = net(img)
    grad, = torch.autograd.grad(outs[0].sum() + outs[1].sum(), img)
    torch.testing.assert_close(r1_penalty(net(img), img), grad.pow(2).sum())


@pytest.fixture
def patch_gan_opt(gan_opt) -> dict:  # noqa: F811 (gan_opt: the fixture imported above)
    opt = copy.deepcopy(gan_opt)
    opt['datasets']['train']['gt_size'] = 32  # the multiscale D's coarsest scale sees 16x16
    return opt


@pytest.mark.parametrize('name', list(DS))
def test_esrgan_iterations_train_each_discriminator(patch_gan_opt, name):
    """ESRGAN (relativistic) with each D: D's weights change every iteration, G's from the
    first G step, and every logged value is finite."""
    patch_gan_opt['network_d'] = {'type': name, **DS[name]}
    patch_gan_opt['train'].update(r1_reg_weight=1.0, d_reg_every=1)
    model = built_model(patch_gan_opt)
    torch.manual_seed(1)
    batch = {'lq': torch.rand(2, 3, 16, 16), 'gt': torch.rand(2, 3, 32, 32)}
    for it in (1, 2, 3):
        g, d = snapshot(model.net_g), snapshot(model.net_d)
        model.feed_data(batch)
        model.optimize_parameters(it)
        assert changed(d, model.net_d) and changed(g, model.net_g)
        logged = model.log_dict
        assert {'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake'} <= set(logged)
        assert all(torch.isfinite(torch.as_tensor(v)) for v in logged.values()), logged
    assert 'l_d_r1' in logged


@pytest.mark.parametrize('name', list(DS))
def test_tiny_esrgan_run_saves_the_discriminator(patch_gan_opt, tmp_path, name):
    patch_gan_opt['network_d'] = {'type': name, **DS[name]}
    patch_gan_opt['train']['total_iter'] = 3
    assert run(tmp_path, patch_gan_opt) == 0
    exp = Path(patch_gan_opt['path']['experiments_root'])
    log = next(exp.glob('train_*.log')).read_text()
    assert 'l_d_real: ' in log and 'l_g_gan: ' in log and ': nan' not in log
    saved = load(exp / 'models' / 'net_d_3.pth')['params']
    assert list(saved) == list(build_network({'type': name, **DS[name]}).state_dict())
    assert all(torch.isfinite(v).all() for v in saved.values())


@pytest.mark.slow  # ~15 s: VGG19 to conv5_4 and three 64-wide PatchGANs
def test_shipped_gan_recipe_takes_a_step(random_vgg):
    """options/train/RLFN/train_RLFN_PatchGANSN_x4.yml, with its networks and losses as shipped
    (G from scratch, random VGG19, one 96x96 patch): one ESRGAN iteration trains both."""
    random_vgg('conv5_4')
    path = ROOT / 'options/train/RLFN/train_RLFN_PatchGANSN_x4.yml'
    raw = yaml.safe_load(path.read_text())
    raw['path']['pretrain_network_g'] = None
    raw['num_gpu'] = 0
    opt = validate_options(raw, True, check_paths=False)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    torch.manual_seed(0)
    model = build_model(opt, torch.device('cpu'))
    g, d = snapshot(model.net_g), snapshot(model.net_d)
    model.feed_data({'lq': torch.rand(1, 3, 24, 24), 'gt': torch.rand(1, 3, 96, 96)})
    model.optimize_parameters(1)
    assert changed(g, model.net_g) and changed(d, model.net_d)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in model.log_dict.values())
