import inspect
from pathlib import Path

import pytest
import torch

from basicsr_lite.archs import build_network
from basicsr_lite.registry import ARCH_REGISTRY

# Tiny constructor arguments per arch, for the registry-wide contract test.
TINY = {
    'EDSR': dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, upscale=2),
    'MSRResNet': dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, upscale=2),
    'RRDBNet': dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=8, num_block=1, num_grow_ch=4),
    'RCAN': dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_group=1, num_block=1, upscale=2),
    'SRVGGNetCompact': dict(num_feat=8, num_conv=2, upscale=2),
    'IMDN': dict(num_feat=16, num_block=2, upscale=2),
    'RFDN': dict(num_feat=16, num_block=2, upscale=2),
    'PAN': dict(num_feat=8, unf=8, num_block=1, upscale=2),
    'FSRCNN': dict(num_in_ch=3, d=8, s=4, m=1, upscale=2),
    'SPAN': dict(feature_channels=8, upscale=2),
    'SwinIR': dict(img_size=16, window_size=4, embed_dim=12, depths=[2], num_heads=[2],
                   mlp_ratio=2, upsampler='pixelshuffledirect', upscale=2),
}
# Discriminators and translation generators: (tiny arguments, input shape, output shape).
TINY_OTHER = {
    'UNetGenerator': (dict(num_downs=5, num_feat=4), (2, 3, 32, 32), (2, 3, 32, 32)),
    'ResNetGenerator': (dict(num_feat=4, n_blocks=1), (2, 3, 16, 16), (2, 3, 16, 16)),
    'VGGStyleDiscriminator': (dict(num_feat=4), (2, 3, 128, 128), (2, 1)),
    'UNetDiscriminatorSN': (dict(num_feat=4), (2, 3, 16, 16), (2, 1, 16, 16)),
    'NLayerDiscriminator': (dict(num_in_ch=3, num_feat=4, n_layers=2), (2, 3, 32, 32),
                            (2, 1, 6, 6)),
}
# Networks that take a second input: (tiny arguments, that input, the output's scale).
TINY_CONDITIONED = {
    'SFTMD': (dict(num_feat=8, num_block=1, upscale=2, num_meta=2, sft_hidden=4),
              torch.rand(2, 2), 2),
    'ArbSR': (dict(num_feat=8, num_block=2, adapt_every=1), 2.5, 2.5),
}
SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / 'shared' / 'weights'
# (arch, constructor arguments, official file, exact parameter count of that release)
OFFICIAL = [
    ('IMDN', dict(upscale=4), 'IMDN/IMDN_x4.pth', 715_176),
    ('IMDN', dict(upscale=3), 'IMDN/IMDN_x3.pth', 703_059),
    ('IMDN', dict(upscale=2), 'IMDN/IMDN_x2.pth', 694_404),
    ('PAN', dict(upscale=4), 'PAN/PANx4_DF2K.pth', 272_419),
    ('PAN', dict(upscale=3), 'PAN/PANx3_DF2K.pth', 261_403),
    ('PAN', dict(upscale=2), 'PAN/PANx2_DF2K.pth', 261_403),
    ('RFDN', dict(upscale=4), 'RFDN/RFDN_AIM_x4.pth', 433_448),
    ('FSRCNN', dict(upscale=4), 'FSRCNN/fsrcnn_x4.pth', 12_809),
    ('FSRCNN', dict(upscale=3), 'FSRCNN/fsrcnn_x3.pth', 12_809),
    ('FSRCNN', dict(upscale=2), 'FSRCNN/fsrcnn_x2.pth', 12_809),
]


def conv(cin, cout, k=3):
    return cin * cout * k * k + cout


@pytest.mark.parametrize('name', ARCH_REGISTRY.keys())
def test_every_arch_contract(name):
    assert name in {**TINY, **TINY_OTHER, **TINY_CONDITIONED}, f'add tiny arguments for {name}'
    torch.manual_seed(0)
    inputs = []
    if name in TINY_CONDITIONED:
        kwargs, second, scale = TINY_CONDITIONED[name]
        net = build_network({'type': name, **kwargs})
        inputs = [torch.rand(2, 3, 16, 16, requires_grad=True), second]
        expected = (2, 3, round(16 * scale), round(16 * scale))
    elif name in TINY:
        net = build_network({'type': name, **TINY[name]})
        x = torch.rand(2, 3, 16, 16, requires_grad=True)  # RFDN's attention pools 7x7 windows
        scale = TINY[name].get('upscale', TINY[name].get('scale'))
        expected = (2, 3, 16 * scale, 16 * scale)
    else:
        kwargs, in_shape, expected = TINY_OTHER[name]
        net = build_network({'type': name, **kwargs})
        x = torch.rand(*in_shape, requires_grad=True)
    out = net(*(inputs or [x]))
    assert out.shape == expected
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


@pytest.mark.regression  # exact counts; the released weights confirm them (next test)
@pytest.mark.parametrize('arch,kwargs,path,count', OFFICIAL)
def test_official_parameter_counts(arch, kwargs, path, count):
    net = build_network({'type': arch, **kwargs})
    assert sum(p.numel() for p in net.parameters()) == count


@pytest.mark.reproduction  # the authors' released weight files
@pytest.mark.skipif(not SHARED_WEIGHTS.is_dir(), reason='../shared/weights is absent')
@pytest.mark.parametrize('arch,kwargs,path,count', OFFICIAL)
def test_official_weights_load_strictly(arch, kwargs, path, count):
    from basicsr_lite.runtime.weights import extract_state_dict, load_torch
    net = build_network({'type': arch, **kwargs})
    state = extract_state_dict(load_torch(SHARED_WEIGHTS / path), 'params', path)
    net.load_state_dict(state, strict=True)
    assert sum(v.numel() for v in state.values()) == count


@pytest.mark.regression  # no BasicSR weights offline to confirm them
def test_basicsr_default_counts():
    def count(opt):
        return sum(p.numel() for p in build_network(opt).parameters())

    assert count({'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3}) == 16_697_987
    assert count({'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3}) == 12_614_915
    assert count({'type': 'SRVGGNetCompact'}) == 621_424  # realesr-animevideov3 size
    assert count({'type': 'SRVGGNetCompact', 'num_conv': 32}) == 1_213_296  # general-x4v3


def test_rrdbnet_pixel_unshuffle_for_small_scales():
    for scale, first_in in ((4, 3), (2, 12), (1, 48)):
        net = build_network({'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': scale,
                             'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4})
        assert net.conv_first.weight.shape[1] == first_in
        assert net(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8 * scale, 8 * scale)


def test_key_names_of_basicsr_archs():
    rrdb = build_network({'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_block': 2})
    assert {'conv_first.weight', 'body.1.rdb3.conv5.bias', 'conv_body.weight', 'conv_up1.weight',
            'conv_up2.weight', 'conv_hr.weight', 'conv_last.weight'} <= set(rrdb.state_dict())
    rcan = build_network({'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_group': 1,
                          'num_block': 1})
    assert {'body.0.residual_group.0.rcab.0.weight', 'body.0.residual_group.0.rcab.3.attention.1'
            '.weight', 'body.0.conv.weight', 'conv_after_body.weight', 'upsample.2.weight'} <= \
        set(rcan.state_dict())
    srvgg = build_network({'type': 'SRVGGNetCompact', 'num_conv': 1})
    assert list(srvgg.state_dict()) == ['body.0.weight', 'body.0.bias', 'body.1.weight',
                                        'body.2.weight', 'body.2.bias', 'body.3.weight',
                                        'body.4.weight', 'body.4.bias']


SWINIR_LIGHT = dict(type='SwinIR', img_size=64, window_size=8, embed_dim=60, depths=[6] * 4,
                    num_heads=[6] * 4, mlp_ratio=2, upsampler='pixelshuffledirect')


@pytest.mark.reproduction
def test_swinir_lightweight_counts_match_paper():
    # The paper counts 897K (x4) / 878K (x2) parameters without the relative position bias
    # tables: 24 blocks x (2 * 8 - 1)^2 x 6 heads = 32,400 entries.
    for upscale, paper_k in ((4, 897), (2, 878)):
        assert round(swinir_light_counts(upscale)[0] / 1000) == paper_k


@pytest.mark.regression  # the exact counts behind the paper's rounded ones
def test_swinir_lightweight_exact_counts():
    assert swinir_light_counts(4) == (897_228, 32_400)
    assert swinir_light_counts(2) == (877_752, 32_400)


def swinir_light_counts(upscale: int) -> tuple[int, int]:
    """(parameters without the bias tables, bias table entries) of SwinIR-light."""
    net = build_network({**SWINIR_LIGHT, 'upscale': upscale})
    tables = sum(p.numel() for n, p in net.named_parameters()
                 if n.endswith('relative_position_bias_table'))
    return sum(p.numel() for p in net.parameters()) - tables, tables


def test_swinir_keys_buffers_and_any_input_size():
    net = build_network({**SWINIR_LIGHT, 'upscale': 2}).eval()
    keys = set(net.state_dict())
    assert {'conv_first.weight', 'patch_embed.norm.weight',
            'layers.0.residual_group.blocks.0.attn.relative_position_index',
            'layers.0.residual_group.blocks.1.attn_mask', 'layers.3.conv.weight', 'norm.bias',
            'conv_after_body.weight', 'upsample.0.weight'} <= keys
    assert 'layers.0.residual_group.blocks.0.attn_mask' not in keys  # unshifted block
    with torch.no_grad():
        assert net(torch.rand(1, 3, 13, 21)).shape == (1, 3, 26, 42)  # padded to 8, cropped
    classical = build_network({'type': 'SwinIR', 'img_size': 16, 'window_size': 8,
                               'embed_dim': 12, 'depths': [2], 'num_heads': [2],
                               'upsampler': 'pixelshuffle', 'upscale': 4})
    assert 'conv_before_upsample.0.weight' in classical.state_dict()
    real = build_network({'type': 'SwinIR', 'img_size': 16, 'window_size': 8, 'embed_dim': 12,
                          'depths': [2], 'num_heads': [2], 'upsampler': 'nearest+conv',
                          'upscale': 4})
    assert {'conv_up1.weight', 'conv_up2.weight', 'conv_hr.weight'} <= set(real.state_dict())
    with pytest.raises(ValueError, match="upsampler 'nearest\\+conv' supports upscale 4 only"):
        build_network({'type': 'SwinIR', 'upsampler': 'nearest+conv', 'upscale': 2})
