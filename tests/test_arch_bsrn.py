"""BSRN, BSRN-S (RFDNFINALB5) and LKDN: the authors' key layout, the released parameter counts,
strict loading of every released file, and the published / independently measured numbers.

Expected keys and shapes below are written from the authors' code (xiaom233/BSRN
``BSRN_arch.py``, ``rfdnfinalB5_arch.py``; stella-von/LKDN ``lkdn_arch.py``, ``lkdn_blocks.py``),
in their registration order.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from basicsr_lite.archs import build_network
from basicsr_lite.archs.capabilities import capability
from basicsr_lite.archs.lkdn_arch import Upsampler_rep
from basicsr_lite.metrics.psnr_ssim_metric import calculate_psnr
from basicsr_lite.registry import ARCH_REGISTRY
from basicsr_lite.utils.img_util import img2tensor, imread, tensor2img
from test_model_zoo import ROOT, SHARED, needs_shared, run_test_py


def _bsconv(name: str, cin: int, cout: int, linear: bool = False) -> list:
    pw = [(f'{name}.pw.weight', (cout, cin)), (f'{name}.pw.bias', (cout,))] if linear \
        else [(f'{name}.pw.weight', (cout, cin, 1, 1))]
    return pw + [(f'{name}.dw.weight', (cout, 1, 3, 3)), (f'{name}.dw.bias', (cout,))]


def _conv(name: str, cin: int, cout: int, k: int = 1) -> list:
    return [(f'{name}.weight', (cout, cin, k, k)), (f'{name}.bias', (cout,))]


def _linear(name: str, cin: int, cout: int) -> list:
    return [(f'{name}.weight', (cout, cin)), (f'{name}.bias', (cout,))]


def _tail(c: int, nb: int, scale: int, up: str, linear: bool = False) -> list:
    c1 = _linear('c1', c * nb, c) if linear else _conv('c1', c * nb, c)
    return c1 + _bsconv('c2', c, c, linear) + _conv(up, c, 3 * scale**2, 3)


def bsrn_layout(c: int, nb: int, scale: int) -> list:
    dc, f = c // 2, c // 4
    keys = _bsconv('fea_conv', 12, c)
    for i in range(1, nb + 1):
        b = f'B{i}'
        for j in (1, 2, 3):
            keys += _conv(f'{b}.c{j}_d', c, dc) + _bsconv(f'{b}.c{j}_r', c, c)
        keys += _bsconv(f'{b}.c4', c, dc) + _conv(f'{b}.c5', 2 * c, c)
        keys += _conv(f'{b}.esa.conv1', c, f) + _conv(f'{b}.esa.conv_f', f, f)
        for name in ('conv_max', 'conv2', 'conv3', 'conv3_'):
            keys += _bsconv(f'{b}.esa.{name}', f, f)
        keys += _conv(f'{b}.esa.conv4', f, c)
        keys += _conv(f'{b}.cca.conv_du.0', c, c // 16) + _conv(f'{b}.cca.conv_du.2', c // 16, c)
    return keys + _tail(c, nb, scale, 'upsampler.upsampleOneStep.0')


def bsrn_s_layout(c: int, nb: int, scale: int) -> list:
    dc, f = c // 2, c // 4
    keys = _bsconv('fea_conv', 12, c, linear=True)
    for i in range(1, nb + 1):
        b = f'B{i}'
        keys += [(f'{b}.cw', (1, c))]  # a module's own parameters come before its children's
        for j in (1, 2, 3):
            keys += _linear(f'{b}.c{j}_d', c, dc) + _bsconv(f'{b}.c{j}_r', c, c, linear=True)
        keys += _bsconv(f'{b}.c4', c, dc, linear=True) + _linear(f'{b}.c5', 2 * c, c)
        keys += _linear(f'{b}.esa.conv1', c, f) + _linear(f'{b}.esa.conv_f', f, f)
        keys += _bsconv(f'{b}.esa.conv_max', f, f, linear=True) + _conv(f'{b}.esa.conv2', f, f, 3)
        keys += _bsconv(f'{b}.esa.conv3', f, f, linear=True)
        keys += _bsconv(f'{b}.esa.conv3_', f, f, linear=True) + _linear(f'{b}.esa.conv4', f, c)
        keys += _linear(f'{b}.conv_out', c, c)
    return keys + _tail(c, nb, scale, 'upsampler.upsampleOneStep.0', linear=True)


def lkdn_layout(c: int, a: int, nb: int, scale: int) -> list:
    dc = c // 2
    keys = _bsconv('fea_conv', 12, c)
    for i in range(1, nb + 1):
        b = f'B{i}'
        for j in (1, 2, 3):
            keys += _conv(f'{b}.c{j}_d', c, dc) + _bsconv(f'{b}.c{j}_r', c, c)
        keys += _bsconv(f'{b}.c4', c, dc) + _conv(f'{b}.c5', 2 * c, a)
        keys += _conv(f'{b}.atten.pointwise', a, a)
        keys += [(f'{b}.atten.depthwise.weight', (a, 1, 5, 5)), (f'{b}.atten.depthwise.bias', (a,)),
                 (f'{b}.atten.depthwise_dilated.weight', (a, 1, 5, 5)),
                 (f'{b}.atten.depthwise_dilated.bias', (a,))]
        keys += _conv(f'{b}.c6', a, c)
        keys += [(f'{b}.pixel_norm.weight', (c,)), (f'{b}.pixel_norm.bias', (c,))]
    return keys + _tail(c, nb, scale, 'upsampler.0')


def _layout(net: torch.nn.Module) -> list:
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


@pytest.mark.parametrize('opt, expected', [
    ({'type': 'BSRN', 'num_feat': 32, 'num_block': 2, 'upscale': 3}, bsrn_layout(32, 2, 3)),
    ({'type': 'BSRN_S', 'num_feat': 16, 'num_block': 2, 'upscale': 2}, bsrn_s_layout(16, 2, 2)),
    ({'type': 'LKDN', 'num_feat': 16, 'num_atten': 12, 'num_block': 2, 'upscale': 2},
     lkdn_layout(16, 12, 2, 2)),
], ids=['BSRN', 'BSRN_S', 'LKDN'])
def test_state_dict_matches_the_authors_layout(opt, expected):
    assert _layout(build_network(opt)) == expected


# Tensor elements of the released files (../shared/weights/SOURCES_r3.md); the defaults build them.
RELEASED = {
    'BSRN/net_g_BSRN_x4.pth': ({'type': 'BSRN', 'upscale': 4}, 'params', 352400),
    'BSRN/net_g_BSRN_x3.pth': ({'type': 'BSRN', 'upscale': 3}, 'params', 340283),
    'BSRN/net_g_BSRN_x2.pth': ({'type': 'BSRN', 'upscale': 2}, 'params', 331628),
    'BSRN/net_g_BSRN-S.pth': ({'type': 'RFDNFINALB5'}, 'params', 156288),
    'BSRN/NTIRE2022_team18_bsrn.pth': ({'type': 'BSRN_S'}, 'params', 156288),
    'LKDN/LKDN_x4.pth': ({'type': 'LKDN'}, 'params_ema', 321992),
}


@pytest.mark.parametrize('name', RELEASED)
def test_parameter_count_equals_the_released_file(name):
    opt, _, count = RELEASED[name]
    assert sum(p.numel() for p in build_network(opt).parameters()) == count


@needs_shared
@pytest.mark.parametrize('name', RELEASED)
def test_released_file_loads_strictly(name):
    opt, key, count = RELEASED[name]
    state = torch.load(SHARED / 'weights' / name, map_location='cpu', weights_only=True)[key]
    net = build_network(opt)
    net.load_state_dict(state, strict=True)
    assert sum(v.numel() for v in state.values()) == count
    with torch.no_grad():
        out = net(torch.rand(1, 3, 16, 20))
    assert out.shape == (1, 3, 16 * opt.get('upscale', 4), 20 * opt.get('upscale', 4))


def test_rfdnfinalb5_is_the_authors_name_of_bsrn_s():
    assert ARCH_REGISTRY.get('RFDNFINALB5') is ARCH_REGISTRY.get('BSRN_S')


@pytest.mark.parametrize('conv', ['BSConvU', 'BSConvS', 'DepthWiseConv', 'Conv2d'])
def test_bsrn_conv_choices_run_down_to_their_min_size(conv):
    opt = {'type': 'BSRN', 'num_feat': 16, 'num_block': 1, 'upscale': 2, 'conv': conv}
    net, side = build_network(opt), capability(opt).min_size
    assert side == (51 if conv == 'Conv2d' else 15)
    assert net(torch.rand(1, 3, side, side)).shape == (1, 3, 2 * side, 2 * side)
    with pytest.raises(RuntimeError):
        net(torch.rand(1, 3, side - 1, side - 1))


@pytest.mark.parametrize('conv, upsampler', [('BSConvU_rep', 'pixelshuffle_rep'),
                                             ('BSConvU_idt', 'pixelshuffledirect')])
def test_lkdn_training_variants_build_and_run(conv, upsampler):
    net = build_network({'type': 'LKDN', 'num_feat': 8, 'num_atten': 8, 'num_block': 1,
                         'upscale': 3, 'conv': conv, 'upsampler': upsampler})
    assert net(torch.rand(1, 3, 9, 7)).shape == (1, 3, 27, 21)


def test_upsampler_rep_pads_its_expansion_with_the_bias():
    """The authors pad the 1x1 expansion with zeros, then overwrite the border with its bias."""
    torch.manual_seed(0)
    up, x = Upsampler_rep(4, 3, 2), torch.randn(1, 4, 6, 5)
    v1 = F.pad(F.conv2d(x, up.conv1x1.weight, up.conv1x1.bias), (1, 1, 1, 1))
    bias = up.conv1x1.bias.view(1, -1, 1, 1)
    v1[:, :, :1, :] = v1[:, :, -1:, :] = bias
    v1[:, :, :, :1] = v1[:, :, :, -1:] = bias
    ref = up.conv1(x) + up.conv3(x) + F.conv2d(v1, up.conv3x3.weight, up.conv3x3.bias)
    torch.testing.assert_close(up(x), F.pixel_shuffle(ref, 2))


def test_unsupported_choices_are_named():
    with pytest.raises(ValueError, match="upsampler 'pa'"):
        build_network({'type': 'BSRN', 'upsampler': 'pa'})
    with pytest.raises(ValueError, match="conv 'BSConvS'"):
        build_network({'type': 'BSRN_S', 'conv': 'BSConvS'})


def _check(option: str, expected: dict, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the option files' paths are relative to the repository root
    results = run_test_py(ROOT / option, tmp_path, set(expected))
    for name, (psnr, ssim) in expected.items():
        assert results[name]['mean']['psnr'] == pytest.approx(psnr, abs=0.01), name
        assert results[name]['mean']['ssim'] == pytest.approx(ssim, abs=0.0005), name


@pytest.mark.slow
@pytest.mark.reproduction
@needs_shared
@pytest.mark.parametrize('option, expected', [
    ('options/test/BSRN/test_BSRN_x4.yml', {'Set5': (32.35, 0.8966), 'Set14': (28.73, 0.7847)}),
    ('options/test/LKDN/test_LKDN_x4.yml', {'Set5': (32.39, 0.8979), 'Set14': (28.79, 0.7859)}),
], ids=['BSRN_x4', 'LKDN_x4'])
def test_reproduces_the_paper(option, expected, tmp_path, monkeypatch):
    """Published Y-PSNR/SSIM (BSRN paper, x4; LKDN paper / README.md:69, x4)."""
    _check(option, expected, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.reproduction
@needs_shared
@pytest.mark.parametrize('option, expected', [
    ('options/test/BSRN/test_BSRN_x3.yml', {'Set5': (34.4502, 0.9276)}),
    ('options/test/BSRN/test_BSRN_x2.yml', {'Set5': (38.0830, 0.9608)}),
    ('options/test/BSRN/test_BSRN-S_x4.yml', {'Set5': (32.1570, 0.8949)}),
    ('options/test/BSRN/test_BSRN-S_NTIRE2022_team18_x4.yml', {'Set5': (32.0099, 0.8927)}),
], ids=['BSRN_x3', 'BSRN_x2', 'BSRN-S', 'NTIRE2022_team18'])
def test_reproduces_the_authors_code(option, expected, tmp_path, monkeypatch):
    """Nothing published offline for these: Set5 as measured with the authors' own code
    (../shared/weights/SOURCES_r3.md, "Set5 check here"), an independent implementation."""
    _check(option, expected, tmp_path, monkeypatch)


# Y-PSNR of Set5 'butterfly' (the smallest image) measured here with the released weights,
# whose Set5 means match the published / authors'-code numbers (tests above): a fast check
# that any change to the forward pass shows up without the slow reproduction runs.
BUTTERFLY = {
    'BSRN/net_g_BSRN_x4.pth': 29.0129, 'BSRN/net_g_BSRN_x3.pth': 31.0845,
    'BSRN/net_g_BSRN_x2.pth': 35.5624, 'BSRN/net_g_BSRN-S.pth': 28.6122,
    'BSRN/NTIRE2022_team18_bsrn.pth': 28.3326, 'LKDN/LKDN_x4.pth': 28.9841,
}


def butterfly_psnr(name: str) -> float:
    opt, key, _ = RELEASED[name]
    scale = opt.get('upscale', 4)
    net = build_network(opt).eval()
    net.load_state_dict(torch.load(SHARED / 'weights' / name, map_location='cpu',
                                   weights_only=True)[key])
    data = SHARED / 'data/Set5'
    lq = img2tensor(imread(data / f'LR_bicubic/X{scale}/butterflyx{scale}.png', float32=True))
    gt = imread(data / 'HR/butterfly.png')
    with torch.no_grad():
        sr = tensor2img(net(lq[None]))
    gt = gt[:sr.shape[0], :sr.shape[1]]
    return calculate_psnr(sr, gt, crop_border=scale, test_y_channel=True)


@pytest.mark.regression
@needs_shared
@pytest.mark.parametrize('name', [pytest.param(n, marks=() if n.endswith('_x4.pth')
                                               else pytest.mark.slow) for n in RELEASED])
def test_released_weights_on_one_image(name):
    assert butterfly_psnr(name) == pytest.approx(BUTTERFLY[name], abs=1e-3)
