"""GAN building blocks: GANLoss (every type), relativistic form, R1, weight warm-up, the VGG
feature extractor and PerceptualLoss (random VGG weights: no ImageNet file offline), and the
discriminators (parameter counts from independent formulas, key names, shapes)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from basicsr_lite.archs import build_network
from basicsr_lite.archs.vgg_arch import VGGFeatureExtractor, hub_weight_path, layer_names
from basicsr_lite.errors import UserError
from basicsr_lite.losses.gan_loss import GANLoss, adversarial_weight, r1_penalty, relativistic_pair
from basicsr_lite.losses.perceptual_loss import PerceptualLoss, gram_matrix

PRED = torch.tensor([[-2.0, -0.5], [0.25, 3.0]])


@pytest.mark.parametrize('gan_type,real,fake,gen', [
    ('vanilla', torch.log1p(torch.exp(-PRED)).mean(), torch.log1p(torch.exp(PRED)).mean(),
     torch.log1p(torch.exp(-PRED)).mean()),
    ('lsgan', ((PRED - 0.9) ** 2).mean(), ((PRED - 0.1) ** 2).mean(), ((PRED - 0.9) ** 2).mean()),
    ('wgan', -PRED.mean(), PRED.mean(), -PRED.mean()),
    ('wgan_softplus', torch.log1p(torch.exp(-PRED)).mean(), torch.log1p(torch.exp(PRED)).mean(),
     torch.log1p(torch.exp(-PRED)).mean()),
    ('hinge', torch.clamp(1 - PRED, min=0).mean(), torch.clamp(1 + PRED, min=0).mean(),
     -PRED.mean()),
])
def test_gan_loss_types_equal_their_formulas(gan_type, real, fake, gen):
    labels = {'real_label_val': 0.9, 'fake_label_val': 0.1} if gan_type == 'lsgan' else {}
    loss = GANLoss(gan_type, loss_weight=0.5, **labels)
    if gan_type == 'vanilla':  # BCE with logits, labels 1 / 0
        real = F.binary_cross_entropy(torch.sigmoid(PRED), torch.ones_like(PRED))
        fake = F.binary_cross_entropy(torch.sigmoid(PRED), torch.zeros_like(PRED))
        gen = real
    torch.testing.assert_close(loss(PRED, True, is_disc=True), real)
    torch.testing.assert_close(loss(PRED, False, is_disc=True), fake)
    torch.testing.assert_close(loss(PRED, True, is_disc=False), 0.5 * gen)  # G: weighted


def test_gan_type_typo_is_rejected():
    with pytest.raises(ValueError, match="gan_type 'vanila' is not one of"):
        GANLoss('vanila')


def test_relativistic_average_equals_the_formula():
    real, fake = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([-1.0, 0.5, 0.0])
    gan = GANLoss('vanilla')
    expected = F.binary_cross_entropy_with_logits(real - fake.mean(), torch.ones(3))
    torch.testing.assert_close(relativistic_pair(gan, real, fake, True, is_disc=True), expected)
    expected = F.binary_cross_entropy_with_logits(fake - real.mean(), torch.zeros(3))
    torch.testing.assert_close(relativistic_pair(gan, fake, real, False, is_disc=True), expected)


def test_r1_equals_the_gradient_norm_of_an_analytic_discriminator():
    """D(x) = sum(w * x^2): dD/dx = 2 w x, so R1 = mean over the batch of sum(4 w^2 x^2)."""
    w = torch.rand(1, 3, 4, 4)
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    pred = (w * x**2).flatten(1).sum(1)
    expected = (4 * w**2 * x.detach()**2).flatten(1).sum(1).mean()
    torch.testing.assert_close(r1_penalty(pred, x), expected)
    assert r1_penalty((w * x**2).sum(), x).requires_grad  # usable as a loss


def test_adversarial_weight_warmup():
    assert [adversarial_weight(i, 4) for i in (0, 1, 2, 4, 9)] == [0, 0.25, 0.5, 1, 1]
    assert adversarial_weight(1, 4, 'cosine') == pytest.approx(0.5 * (1 - math.cos(math.pi / 4)))
    assert adversarial_weight(5, 0) == 1.0


def test_vgg_layout_is_torchvisions():
    """torchvision's features indices: vgg19 conv5_4 is features.34, vgg16 conv5_3 features.28;
    37 / 31 modules in all."""
    assert len(layer_names('vgg19')) == 37 and len(layer_names('vgg16')) == 31
    assert layer_names('vgg19').index('conv5_4') == 34
    assert layer_names('vgg16').index('conv5_3') == 28
    vgg = VGGFeatureExtractor(['conv5_4'], pretrained=None)
    assert 'features.34.weight' in vgg.state_dict() and len(vgg.features) == 35
    assert not any(p.requires_grad for p in vgg.parameters())


def random_vgg_file(torch_home: Path, vgg_type: str = 'vgg19') -> dict:
    """A random state dict in torchvision's layout where the torch hub cache keeps the real one."""
    torch.manual_seed(3)
    vgg = VGGFeatureExtractor([layer_names(vgg_type)[-2]], vgg_type, pretrained=None)
    state = {f'features.{k}': v for k, v in vgg.features.state_dict().items()}
    state['classifier.0.weight'] = torch.zeros(4, 4)  # the full file has a classifier too
    path = hub_weight_path(vgg_type)
    assert str(path).startswith(str(torch_home))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    return tmp_path / 'torch'


def test_perceptual_loss_equals_a_hand_computation(torch_home, caplog):
    state = random_vgg_file(torch_home)
    loss = PerceptualLoss({'conv1_2': 0.5, 'relu2_1': 2.0}, perceptual_weight=1.5,
                          style_weight=3.0)
    x, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)

    def features(img):
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        h = F.relu(F.conv2d((img - mean) / std, state['features.0.weight'],
                            state['features.0.bias'], padding=1))
        conv1_2 = F.conv2d(h, state['features.2.weight'], state['features.2.bias'], padding=1)
        pooled = F.max_pool2d(F.relu(conv1_2), 2)
        relu2_1 = F.relu(F.conv2d(pooled, state['features.5.weight'], state['features.5.bias'],
                                  padding=1))
        return conv1_2, relu2_1

    (a1, a2), (b1, b2) = features(x), features(gt)
    percep = 1.5 * (0.5 * (a1 - b1).abs().mean() + 2.0 * (a2 - b2).abs().mean())

    def gram(f):
        n, c, h, w = f.shape
        return torch.einsum('nci,ndi->ncd', f.reshape(n, c, -1), f.reshape(n, c, -1)) / (c * h * w)

    style = 3.0 * (0.5 * (gram(a1) - gram(b1)).abs().mean() +
                   2.0 * (gram(a2) - gram(b2)).abs().mean())
    got_percep, got_style = loss(x, gt)
    torch.testing.assert_close(got_percep, percep, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_style, style, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(gram_matrix(a1), gram(a1))
    assert PerceptualLoss({'conv1_2': 1.0}, style_weight=0)(x, gt)[1] is None


def test_missing_vgg_weights_say_where_to_put_them(torch_home):
    with pytest.raises(UserError) as err:
        PerceptualLoss({'conv5_4': 1.0})
    message = str(err.value)
    assert str(hub_weight_path('vgg19')) in message and 'vgg19-dcbb9e9d.pth' in message
    assert 'dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44' in message
    with pytest.raises(UserError,
                       match='ImageNet weights file /nonexistent/vgg.pth does not exist'):
        PerceptualLoss({'conv5_4': 1.0}, vgg_weights='/nonexistent/vgg.pth')
    assert os.environ['TORCH_HOME'] == str(torch_home)


def conv(c_in, c_out, k, bias=True):
    return c_in * c_out * k * k + (c_out if bias else 0)


def test_vgg_style_discriminator_counts_and_keys():
    nf, c = 64, 3
    widths = [nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf]
    count = conv(c, nf, 3) + conv(nf, nf, 4, False) + 2 * nf  # conv0_0, conv0_1, bn0_1
    for a, b in zip(widths, widths[1:]):
        count += conv(a, b, 3, False) + conv(b, b, 4, False) + 4 * b  # two convs, two BNs
    count += (8 * nf * 16 * 100 + 100) + (100 + 1)
    net = build_network({'type': 'VGGStyleDiscriminator', 'num_in_ch': c, 'num_feat': nf})
    assert sum(p.numel() for p in net.parameters()) == count == 14_499_401
    net256 = build_network({'type': 'VGGStyleDiscriminator', 'input_size': 256})
    extra = conv(8 * nf, 8 * nf, 3, False) + conv(8 * nf, 8 * nf, 4, False) + 4 * 8 * nf
    assert sum(p.numel() for p in net256.parameters()) == count + extra
    assert {'conv5_1.weight', 'bn5_1.running_var', 'linear2.bias'} <= set(net256.state_dict())
    assert net(torch.rand(2, 3, 128, 128)).shape == (2, 1)
    with pytest.raises(ValueError, match=r'needs 128x128 inputs \(gt_size\); got \(96, 96\)'):
        net(torch.rand(1, 3, 96, 96))


def test_unet_discriminator_sn_counts_and_keys():
    nf = 16
    count = (conv(3, nf, 3) + conv(nf, 2 * nf, 4, False) + conv(2 * nf, 4 * nf, 4, False)
             + conv(4 * nf, 8 * nf, 4, False) + conv(8 * nf, 4 * nf, 3, False)
             + conv(4 * nf, 2 * nf, 3, False) + conv(2 * nf, nf, 3, False)
             + 2 * conv(nf, nf, 3, False) + conv(nf, 1, 3))
    net = build_network({'type': 'UNetDiscriminatorSN', 'num_feat': nf})
    assert sum(p.numel() for p in net.parameters()) == count
    assert {'conv1.weight_orig', 'conv1.weight_u', 'conv1.weight_v', 'conv9.bias'} <= \
        set(net.state_dict())  # torch.nn.utils.spectral_norm's keys, as Real-ESRGAN's files
    assert net(torch.rand(1, 3, 32, 24)).shape == (1, 1, 32, 24)
    full = build_network({'type': 'UNetDiscriminatorSN'})
    assert sum(p.numel() for p in full.parameters()) == 4_376_897


@pytest.mark.parametrize('norm', ['batch', 'instance', 'none'])
def test_patchgan_counts_keys_and_receptive_grid(norm):
    nf, c = 64, 6
    bias = norm == 'instance'
    bn = 2 if norm == 'batch' else 0
    count = (conv(c, nf, 4) + conv(nf, 2 * nf, 4, bias) + bn * 2 * nf
             + conv(2 * nf, 4 * nf, 4, bias) + bn * 4 * nf + conv(4 * nf, 8 * nf, 4, bias)
             + bn * 8 * nf + conv(8 * nf, 1, 4))
    net = build_network({'type': 'NLayerDiscriminator', 'num_in_ch': c, 'norm': norm})
    assert sum(p.numel() for p in net.parameters()) == count
    assert {'model.0.weight', 'model.2.weight', 'model.11.weight'} <= set(net.state_dict())
    assert net(torch.rand(1, 6, 256, 256)).shape == (1, 1, 30, 30)  # pix2pix's 30x30 patches
