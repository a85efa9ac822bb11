import inspect

import pytest
import torch

from basicsr_lite.archs import build_network
from basicsr_lite.registry import ARCH_REGISTRY

# Tiny constructor arguments per arch, for the registry-wide contract test.
TINY = {
    'EDSR': dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, upscale=2),
    'MSRResNet': dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, upscale=2),
}


def conv(cin, cout, k=3):
    return cin * cout * k * k + cout


@pytest.mark.parametrize('name', ARCH_REGISTRY.keys())
def test_every_arch_contract(name):
    assert name in TINY, f'add tiny arguments for {name} to TINY'
    torch.manual_seed(0)
    net = build_network({'type': name, **TINY[name]})
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    out = net(x)
    scale = TINY[name]['upscale']
    assert out.shape == (2, 3, 8 * scale, 8 * scale)
    assert torch.isfinite(out).all()
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_edsr_keys_and_counts():
    net = build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3})
    keys = list(net.state_dict())
    assert keys[:4] == ['conv_first.weight', 'conv_first.bias', 'body.0.conv1.weight',
                        'body.0.conv1.bias']
    assert keys[-8:] == ['conv_after_body.weight', 'conv_after_body.bias', 'upsample.0.weight',
                         'upsample.0.bias', 'upsample.2.weight', 'upsample.2.bias',
                         'conv_last.weight', 'conv_last.bias']
    assert 'mean' not in keys
    nf, nb = 64, 16
    expected = (conv(3, nf) + nb * 2 * conv(nf, nf) + conv(nf, nf) + 2 * conv(nf, 4 * nf)
                + conv(nf, 3))
    assert sum(p.numel() for p in net.parameters()) == expected == 1_517_571
    x3 = build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'upscale': 3})
    assert [k for k in x3.state_dict() if k.startswith('upsample')] == ['upsample.0.weight',
                                                                       'upsample.0.bias']


def test_msrresnet_keys_and_counts():
    net = build_network({'type': 'MSRResNet'})
    keys = set(net.state_dict())
    assert {'conv_first.weight', 'body.15.conv2.bias', 'upconv1.weight', 'upconv2.weight',
            'conv_hr.weight', 'conv_last.bias'} <= keys
    expected = conv(3, 64) + 16 * 2 * conv(64, 64) + 2 * conv(64, 256) + conv(64, 64) + conv(64, 3)
    assert sum(p.numel() for p in net.parameters()) == expected == 1_517_571
    x2 = build_network({'type': 'MSRResNet', 'upscale': 2})
    assert 'upconv2.weight' not in x2.state_dict()
    assert x2.upconv1.weight.shape == (256, 64, 3, 3)


def test_invalid_upscale_is_clear():
    with pytest.raises(ValueError, match='upscale must be 2, 3 or 4; got 8'):
        build_network({'type': 'MSRResNet', 'upscale': 8})
    with pytest.raises(ValueError, match='upscale 5 is not supported'):
        build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'upscale': 5})


def test_edsr_mean_shift_is_identity_for_mean_image():
    # With zero weights everywhere, EDSR outputs its rgb_mean: the mean shift is undone at the end.
    net = build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8,
                         'num_block': 1, 'upscale': 2})
    for p in net.parameters():
        torch.nn.init.zeros_(p)
    out = net(torch.rand(1, 3, 4, 4))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.4488, 0.4371, 0.4040]))


def test_archs_have_typed_defaults_for_validation():
    for name in ARCH_REGISTRY.keys():
        for param in inspect.signature(ARCH_REGISTRY.get(name)).parameters.values():
            assert param.kind is param.POSITIONAL_OR_KEYWORD
