"""OmniSR: the authors' state-dict layout key for key, the paper's parameter counts, equality
with spandrel's implementation (an independent copy of the authors' code), the [-1, 1] mapping of
the released weights, and, when the official files are placed in ../shared/weights/OmniSR/,
strict loading and the published Set5 numbers."""
from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from basicsr_lite.archs import build_network
from basicsr_lite.archs.capabilities import capability
from basicsr_lite.archs.constraints import network_needs
from basicsr_lite.archs.omnisr_blocks import (ChannelAttention, LayerNorm2d, WindowMerge,
                                              WindowPartition)
from basicsr_lite.runtime.weights import load_weights_into
from tests.test_model_zoo import run_test_py
from tests.spandrel_support import spandrel_or_skip

ROOT = Path(__file__).resolve().parent.parent
OMNISR_WEIGHTS = ROOT.parent / 'shared' / 'weights' / 'OmniSR'
TINY = dict(num_feat=16, res_num=1, block_num=1, window_size=4, pe=True, bias=True)

# One OSA block of the tiny config (16 features, 4x4 windows), keys under
# 'residual_layer.0.residual_layer.0.layer.', written from the authors' ops/OSA.py: 0 MBConv
# (MBConvResidual.fn: 1x1, GELU, 3x3 depthwise, GELU, SqueezeExcitation.gate (Reduce, Linear,
# SiLU, Linear, ...), 1x1); 2 / 8 PreNormResidual(nn.LayerNorm, Attention) for block / grid
# attention; 4, 6, 10, 12 Conv_PreNormResidual(LayerNorm2d, Gated_Conv_FeedForward);
# 5 / 11 Conv_PreNormResidual(LayerNorm2d, Channel_Attention / _grid); 1, 3, 7, 9 Rearrange.
_FFN = {'norm.weight': (16,), 'norm.bias': (16,), 'fn.project_in.weight': (32, 16, 1, 1),
        'fn.dwconv.weight': (32, 1, 3, 3), 'fn.project_out.weight': (16, 16, 1, 1)}
_SPATIAL = {'norm.weight': (16,), 'norm.bias': (16,), 'fn.to_qkv.weight': (48, 16),
            'fn.to_out.0.weight': (16, 16), 'fn.rel_pos_bias.weight': (49, 4)}
_CHANNEL = {'norm.weight': (16,), 'norm.bias': (16,), 'fn.temperature': (4, 1, 1),
            'fn.qkv.weight': (48, 16, 1, 1), 'fn.qkv_dwconv.weight': (48, 1, 3, 3),
            'fn.project_out.weight': (16, 16, 1, 1)}
_MBCONV = {'fn.0.weight': (16, 16, 1, 1), 'fn.0.bias': (16,), 'fn.2.weight': (16, 1, 3, 3),
           'fn.2.bias': (16,), 'fn.4.gate.1.weight': (4, 16), 'fn.4.gate.3.weight': (16, 4),
           'fn.5.weight': (16, 16, 1, 1), 'fn.5.bias': (16,)}
_BLOCK = [(0, _MBCONV), (2, _SPATIAL), (4, _FFN), (5, _CHANNEL), (6, _FFN), (8, _SPATIAL),
          (10, _FFN), (11, _CHANNEL), (12, _FFN)]
_ESA = [(f'{name}.{part}', shape) for name, w in (('conv1', (16, 16, 1, 1)),
                                                  ('conv_f', (16, 16, 1, 1)),
                                                  ('conv2', (16, 16, 3, 3)),
                                                  ('conv3', (16, 16, 3, 3)),
                                                  ('conv4', (16, 16, 1, 1)))
        for part, shape in (('weight', w), ('bias', (16,)))]
AUTHORS_TINY_X2_LAYOUT = (
    [(f'residual_layer.0.residual_layer.0.layer.{i}.{k}', s) for i, part in _BLOCK
     for k, s in part.items()]
    + [('residual_layer.0.residual_layer.1.weight', (16, 16, 1, 1)),
       ('residual_layer.0.residual_layer.1.bias', (16,))]
    + [(f'residual_layer.0.esa.{k}', s) for k, s in _ESA]
    + [('input.weight', (16, 3, 3, 3)), ('input.bias', (16,)), ('output.weight', (16, 16, 3, 3)),
       ('output.bias', (16,)), ('up.0.weight', (12, 16, 3, 3)), ('up.0.bias', (12,))])

# result.tex of the authors' repository (the paper's Table): PSNR / SSIM, Y channel, shave =
# scale, and the parameter counts (K) the paper gives.
PUBLISHED_SET5 = {('DIV2K', 2): (38.22, 0.9613), ('DF2K', 2): (38.29, 0.9617),
                  ('DIV2K', 3): (34.70, 0.9294), ('DF2K', 3): (34.77, 0.9304),
                  ('DIV2K', 4): (32.49, 0.8988), ('DF2K', 4): (32.57, 0.8993)}
PAPER_PARAMS_K = {2: 772, 3: 780, 4: 792}
# The official files (the .pth inside OmniSR_X<s>_<data>.zip of the authors' README, renamed):
# size and sha256 from ../shared/weights/SOURCES_r3.md (OpenModelDB's fingerprints).
OFFICIAL = {
    ('DIV2K', 2): (3413009, '70fa7a51d37fabeae3620b1ba436842651b47cc786da444f261e0b02f7bb689c'),
    ('DF2K', 2): (3413009, '06168a49d84a5b85223ab95c18e1c4a71b0489a36d99acbaf85f69964807c1f8'),
    ('DIV2K', 3): (3447633, 'e039cdf71cddd65283f840514fe84fd0879d30e94758a857094d688c6838b344'),
    ('DF2K', 3): (3447633, '006fab75accf8d6b0830937e86cf7b3c05054427b96f5013ce99e9c55c19b99d'),
    ('DIV2K', 4): (3496145, 'c299937787e2edc59c102f42bb21eef28c9e5c53c9ce3bff3ca3130caac94bf1'),
    ('DF2K', 4): (3496145, 'e2f4ad0e765e6f8823cd0e292e42da1503cb70d97c2cb36ebee9a3c0233d06af'),
}


def omnisr(**kwargs) -> nn.Module:
    return build_network({'type': 'OmniSR', **kwargs})


def test_state_dict_layout_is_the_authors_key_for_key():
    got = [(k, tuple(v.shape)) for k, v in omnisr(upsampling=2, **TINY).state_dict().items()]
    assert got == AUTHORS_TINY_X2_LAYOUT


def thop_count(net: nn.Module) -> int:
    """Parameters as thop counts them (the paper's numbers come from thop.profile in the
    authors' trainer): only modules it has a counter for, so not the relative-position
    embeddings, LayerNorm2d or the channel attention's temperature."""
    return sum(p.numel() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear,
                                                                  nn.LayerNorm))
               for p in m.parameters(recurse=False))


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_parameter_counts_are_the_papers(scale):
    """The default arguments are the published model: 772K / 780K / 792K (paper, thop's count);
    all parameters: 784,604 / 793,259 / 805,376 (the same as spandrel's OmniSR)."""
    net = omnisr(upsampling=scale)
    assert round(thop_count(net) / 1000) == PAPER_PARAMS_K[scale]
    total = sum(p.numel() for p in net.parameters())
    assert total == {2: 784_604, 3: 793_259, 4: 805_376}[scale]
    # what thop leaves out: 2 x 5 x (15^2 x 4) position biases, 6 x 5 LayerNorm2d, 2 x 5 x 4
    assert total - thop_count(net) == 9000 + 30 * 128 + 40


@pytest.fixture(scope='module')
def spandrel_omnisr():
    """spandrel's OmniSR class (tests/spandrel_support.py says why torchvision is stood in for
    during the import)."""
    pytest.importorskip('einops')  # spandrel's OmniSR uses it
    with pytest.MonkeyPatch.context() as patch:
        spandrel = spandrel_or_skip(patch)
        from spandrel.architectures.OmniSR import OmniSR
    return spandrel, OmniSR


@pytest.mark.parametrize('scale,size', [pytest.param(2, (16, 16), marks=pytest.mark.slow),
                                        (3, (19, 26)),  # padded to the window
                                        pytest.param(4, (13, 15), marks=pytest.mark.slow)])
def test_outputs_and_gradients_equal_spandrels(spandrel_omnisr, scale, size):
    """Same state dict, same input (sizes that need the internal padding too): the same output
    and input gradient as spandrel's OmniSR (its LayerNorm2d has the authors' hand-written
    backward), with ``signed_range=False`` (spandrel feeds [0, 1] images straight in)."""
    _, Reference = spandrel_omnisr
    torch.manual_seed(0)
    ours = omnisr(upsampling=scale, signed_range=False, **TINY)
    theirs = Reference(up_scale=scale, **TINY)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.rand(2, 3, *size)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
    assert out_ours.shape == (2, 3, size[0] * scale, size[1] * scale)
    torch.testing.assert_close(out_ours, out_theirs, rtol=1e-5, atol=1e-5)
    (out_ours.square().mean()).backward()
    (out_theirs.square().mean()).backward()
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, rtol=1e-4, atol=1e-7)


def test_signed_range_is_the_authors_data_mapping(spandrel_omnisr):
    """Default: [0, 1] in and out, the network seeing (x - 0.5) * 2 as in the authors' loaders
    and tester ((y + 1) / 2 back)."""
    _, Reference = spandrel_omnisr
    torch.manual_seed(0)
    ours = omnisr(upsampling=2, **TINY).eval()
    theirs = Reference(up_scale=2, **TINY).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(1, 3, 13, 20)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), (theirs((x - 0.5) * 2) + 1) / 2,
                                   rtol=1e-5, atol=1e-5)


def test_spandrel_detects_our_files_with_the_same_arguments(spandrel_omnisr):
    """A state dict saved here is recognised by spandrel as OmniSR, with our arguments."""
    spandrel, _ = spandrel_omnisr
    args = dict(num_feat=32, res_num=2, block_num=2, window_size=4, pe=True, bias=True)
    net = omnisr(upsampling=3, **args)
    model = spandrel.ModelLoader().load_from_state_dict(net.state_dict())
    assert model.architecture.id == 'OmniSR' and model.scale == 3
    detected = model.model.hyperparameters
    assert {k: detected[k] for k in args} == args and detected['up_scale'] == 3


def test_layernorm2d_matches_layer_norm_over_channels():
    torch.manual_seed(0)
    norm = LayerNorm2d(8)
    nn.init.normal_(norm.weight), nn.init.normal_(norm.bias)
    x = torch.randn(2, 8, 5, 7)
    expected = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (8,), norm.weight, norm.bias,
                                        eps=1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), expected)


def test_window_partitions_follow_the_authors_rearrange_patterns():
    """Block: 'b d (x w1) (y w2) -> b x y w1 w2 d' (adjacent pixels); grid: 'b d (w1 x) (w2 y)
    -> b x y w1 w2 d' (pixels H/ws, W/ws apart, spanning the image: it does not tile exactly).
    The merges invert them."""
    x = torch.randn(2, 3, 8, 12)  # 4x4 windows: 2 x 3 of them
    block, grid = WindowPartition(4, grid=False)(x), WindowPartition(4, grid=True)(x)
    assert block.shape == grid.shape == (2, 2, 3, 4, 4, 3)
    for b, i, j, u, v, d in itertools.product((0, 1), (0, 1), (0, 2), (0, 3), (1, 2), (0, 2)):
        assert block[b, i, j, u, v, d] == x[b, d, i * 4 + u, j * 4 + v]
        assert grid[b, i, j, u, v, d] == x[b, d, u * 2 + i, v * 3 + j]
    assert torch.equal(WindowMerge(grid=False)(block), x)
    assert torch.equal(WindowMerge(grid=True)(grid), x)
    assert not capability({'type': 'OmniSR'}).tiles_exactly


def test_channel_attention_groups_follow_the_authors_patterns():
    """Channel_Attention: 'b (head d) (h ph) (w pw) -> b (h w) head d (ph pw)' (one window a
    group); Channel_Attention_grid: '... -> b (ph pw) head d (h w)' (one offset in every window
    a group)."""
    x = torch.randn(1, 8, 8, 12)  # 4 heads of 2 channels, 4x4 windows: 2 x 3 of them
    local, spread = ChannelAttention(8, 4, 4, grid=False), ChannelAttention(8, 4, 4, grid=True)
    gl, gs = local._group(x), spread._group(x)
    assert gl.shape == (1, 6, 4, 2, 16) and gs.shape == (1, 16, 4, 2, 6)
    for head, d, h, ph, w, pw in itertools.product((0, 3), (1,), (0, 1), (0, 3), (1, 2), (2,)):
        value = x[0, head * 2 + d, h * 4 + ph, w * 4 + pw]
        assert gl[0, h * 3 + w, head, d, ph * 4 + pw] == value
        assert gs[0, ph * 4 + pw, head, d, h * 3 + w] == value
    assert torch.equal(local._ungroup(gl, x.shape), x)
    assert torch.equal(spread._ungroup(gs, x.shape), x)


def test_needs_scale_key_and_minimum_size():
    options = {'type': 'OmniSR', 'upsampling': 3}
    needs = network_needs(options)
    assert (needs.scale, needs.scale_key) == (3, 'upsampling')
    assert capability(options).min_size == 9  # pads to 16: ESA's stride-2 conv + 7x7 pool
    net = omnisr(upsampling=2, **{**TINY, 'window_size': 8}).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 9, 9)).shape == (1, 3, 18, 18)
        with pytest.raises(RuntimeError):
            net(torch.rand(1, 3, 8, 8))


def test_authors_option_keys_build_and_wrong_blocks_are_refused():
    authors = dict(upsampling=4, res_num=5, block_num=1, bias=True, block_script_name='OSA',
                   block_class_name='OSA_Block', window_size=8, pe=True, ffn_bias=True)
    assert sum(p.numel() for p in omnisr(num_feat=64, **authors).parameters()) == 805_376
    with pytest.raises(ValueError, match='OSA_Block'):
        omnisr(block_class_name='OSA_Block_v2')
    with pytest.raises(ValueError, match='multiple of 4'):
        omnisr(num_feat=18)


def test_thop_buffers_in_a_file_load_strictly(tmp_path):
    """thop.profile leaves total_ops / total_params buffers on the modules it has no counter
    for; such a file (as spandrel expects OmniSR's to be) loads strictly."""
    torch.manual_seed(0)
    source, target = omnisr(upsampling=2, **TINY), omnisr(upsampling=2, **TINY)
    state = dict(source.state_dict())
    state.update({'total_ops': torch.zeros(1, dtype=torch.float64),
                  'residual_layer.0.esa.total_params': torch.zeros(1, dtype=torch.float64)})
    torch.save(state, tmp_path / 'thop.pth')
    load_weights_into(target, str(tmp_path / 'thop.pth'), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(),
                                                 target.state_dict().values()))


def official_file(data: str, scale: int) -> Path:
    """The official file, or a skip naming what to place where."""
    path = OMNISR_WEIGHTS / f'OmniSR_X{scale}_{data}.pth'
    size, sha = OFFICIAL[(data, scale)]
    if not path.is_file():
        pytest.skip(f'place the authors\' OmniSR_X{scale}_{data} weights at {path} ({size} bytes, '
                    f'sha256 {sha}; Google Drive / Baidu links in the Omni-SR README)')
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha, f'{path} is not the release'
    return path


@pytest.mark.parametrize('data,scale', sorted(OFFICIAL))
def test_official_weights_load_strictly(data, scale):
    load_weights_into(omnisr(upsampling=scale), str(official_file(data, scale)), strict=True)


@pytest.mark.slow
@pytest.mark.reproduction
@pytest.mark.parametrize('data,scale', sorted(OFFICIAL))
def test_official_weights_reproduce_published_set5(data, scale, tmp_path, monkeypatch):
    """Set5 Y-PSNR / SSIM of the released weights against result.tex (0.01 dB / 0.0005).
    The authors measured with tiles of 64 LR pixels (overlap 24, outputs averaged) and MATLAB's
    metrics; test.py runs whole images, so a difference of a few 0.01 dB would be theirs.
    Set5 only: on one shared core the full x2 model takes about a minute for Set5 alone."""
    path = official_file(data, scale)
    monkeypatch.chdir(ROOT)  # the option files' paths are relative to the repository root
    raw = yaml.safe_load((ROOT / f'options/test/OmniSR/test_OmniSR_x{scale}.yml').read_text())
    raw['path']['pretrain_network_g'] = str(path)  # the DF2K file or the DIV2K one
    option = tmp_path / 'opt' / f'test_OmniSR_x{scale}.yml'
    option.parent.mkdir()
    option.write_text(yaml.safe_dump(raw))
    results = run_test_py(option, tmp_path, {'Set5'})
    psnr, ssim = PUBLISHED_SET5[(data, scale)]
    assert results['Set5']['mean']['psnr'] == pytest.approx(psnr, abs=0.01)
    assert results['Set5']['mean']['ssim'] == pytest.approx(ssim, abs=0.0005)
