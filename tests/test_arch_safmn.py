"""The SAFMN family: key layout of the authors' files, parameter counts, strict loading of the
released weights, agreement with spandrel's SAFMN, and Set5 through test.py."""
from __future__ import annotations


import pytest
import torch

from basicsr_lite.archs import build_network
from basicsr_lite.archs.capabilities import capability
from basicsr_lite.archs.constraints import network_needs
from basicsr_lite.runtime.weights import extract_state_dict, load_torch
from tests.test_model_zoo import ROOT, run_test_py
from tests.spandrel_support import spandrel_or_skip

WEIGHTS = ROOT.parent / 'shared' / 'weights' / 'SAFMN'
needs_weights = pytest.mark.skipif(not WEIGHTS.is_dir(), reason='../shared/weights/SAFMN is absent')


def conv(cin: int, cout: int, k: int, bias: bool = True, groups: int = 1) -> list:
    shapes = [('weight', (cout, cin // groups, k, k))]
    return shapes + [('bias', (cout,))] if bias else shapes


def layout(prefix: str, parts: list) -> list[tuple[str, tuple]]:
    return [(f'{prefix}.{name}', shape) for name, shape in parts]


def keys_and_shapes(net: torch.nn.Module) -> list[tuple[str, tuple]]:
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


# Written from the authors' files (see the arch modules' docstrings), in their registration
# order; tiny sizes: dim 8 (SAFMNPP 9, SAFMN_NTIRE25 16), one block, x2.
def paper_block(i: int, dim: int = 8, hidden: int = 16, bias: bool = True,
                norm: bool = True) -> list:
    p = f'feats.{i}'
    out = []
    if norm:
        out += [(f'{p}.norm1.weight', (dim,)), (f'{p}.norm1.bias', (dim,)),
                (f'{p}.norm2.weight', (dim,)), (f'{p}.norm2.bias', (dim,))]
    for j in range(4):
        out += layout(f'{p}.safm.mfr.{j}', conv(dim // 4, dim // 4, 3, bias, groups=dim // 4))
    out += layout(f'{p}.safm.aggr', conv(dim, dim, 1, bias))
    out += layout(f'{p}.ccm.ccm.0', conv(dim, hidden, 3, bias))
    return out + layout(f'{p}.ccm.ccm.2', conv(hidden, dim, 1, bias))


EXPECTED = {
    'SAFMN': (dict(dim=8, n_blocks=1, ffn_scale=2.0, upscaling_factor=2),
              layout('to_feat', conv(3, 8, 3)) + paper_block(0)
              + layout('to_img.0', conv(8, 12, 3))),
    'SAFMN_NTIRE23': (dict(dim=8, n_blocks=1, ffn_scale=2.0, upscaling_factor=2),
                      [('norm.gamma', (1, 8, 1, 1)), ('norm.beta', (1, 8, 1, 1))]
                      + layout('to_feat', conv(3, 8, 3)) + paper_block(0, bias=False, norm=False)
                      + layout('to_img.0', conv(8, 12, 3))),
    'SAFMNPP': (dict(dim=9, n_blocks=1, ffn_scale=1.5, upscaling_factor=2),
                layout('to_feat', conv(3, 9, 3, False))
                + layout('feats.0.conv1.proj', conv(9, 9, 3, False))
                + layout('feats.0.conv1.dwconv', conv(3, 3, 3, False, groups=3))
                + layout('feats.0.conv1.out', conv(9, 9, 1, False))
                + layout('feats.0.conv2.conv1', conv(9, 13, 3, False))
                + layout('feats.0.conv2.conv2', conv(13, 9, 1, False))
                + layout('to_img.0', conv(9, 12, 3, False))),
    'SAFMN_VIS24': (dict(dim=8, n_blocks=1, ffn_scale=1.5, upscaling_factor=2),
                    layout('to_feat', conv(3, 8, 3, False))
                    + layout('feats.0.conv1.proj', conv(8, 8, 3, False))
                    + layout('feats.0.conv1.dwconv', conv(4, 4, 3, False, groups=4))
                    + layout('feats.0.conv1.out', conv(8, 8, 1, False))
                    + layout('feats.0.conv2.conv.0', conv(8, 12, 3, False))
                    + layout('feats.0.conv2.conv.2', conv(12, 8, 1, False))
                    + layout('to_img.0', conv(8, 12, 3, False))),
    'SAFMN_NTIRE25': (dict(dim=16, num_blocks=1, ffn_scale=1.5, upscaling_factor=2),
                      layout('to_feat', conv(3, 16, 3, False))
                      + layout('feats.0.conv1.conv1', conv(16, 12, 3, False))
                      + layout('feats.0.conv1.conv2', conv(16, 4, 3, False))
                      + layout('feats.0.conv1.conv3', conv(12, 12, 1, False))
                      + layout('feats.0.conv1.dwconv', conv(12, 12, 3, False, groups=12))
                      + layout('feats.0.conv1.out', conv(16, 16, 1, False))
                      + layout('feats.0.conv2.conv1', conv(16, 24, 1, False))
                      + layout('feats.0.conv2.conv2', conv(24, 16, 1, False))
                      + layout('to_img.0', conv(16, 12, 3, False))),
}


@pytest.mark.parametrize('name', EXPECTED)
def test_keys_and_shapes_follow_the_authors_layout(name):
    kwargs, expected = EXPECTED[name]
    net = build_network({'type': name, **kwargs})
    assert keys_and_shapes(net) == expected
    assert net(torch.rand(1, 3, 16, 24)).shape == (1, 3, 32, 48)


@pytest.mark.reproduction
def test_paper_parameter_counts():
    """Paper (Table 1) and the authors' train_DF2K_X{2,3,4}.yml headers: 0.228M / 0.233M / 0.24M
    for dim 36, 8 blocks, ffn_scale 2; the exact counts follow from the layout."""
    counts = {s: sum(p.numel() for p in build_network(
        {'type': 'SAFMN', 'dim': 36, 'upscaling_factor': s}).parameters()) for s in (2, 3, 4)}
    assert counts == {2: 227_820, 3: 232_695, 4: 239_520}
    assert [round(counts[s] / 1000) for s in (2, 3, 4)] == [228, 233, 240]


# file: (option file, constructor arguments, wrapper key the authors load, element count,
#        SOURCES_r3.md "Set5 check here" (Y PSNR / SSIM, authors' code))
RELEASED = {
    'NTIRE2023_team15_SAFMN.pth': (
        'SAFMN_NTIRE23', dict(dim=36, n_blocks=8, ffn_scale=2.0, upscaling_factor=4), 'params',
        237_000, (32.1645, 0.8943)),
    'NTIRE2024_team23_safmnpp.pth': (
        'SAFMNPP', dict(dim=36, n_blocks=6, ffn_scale=1.5, upscaling_factor=4), 'params_ema',
        211_572, (32.0177, 0.8918)),
    'AIS2024_light_safmnpp.pth': (
        'SAFMN_VIS24', dict(dim=32, n_blocks=2, ffn_scale=1.5), 'params', 66_176,
        (30.3986, 0.8577)),
    'NTIRE2025_team19_safmnv3.pth': (
        'SAFMN_NTIRE25', dict(dim=40, num_blocks=6, ffn_scale=1.5, upscaling_factor=4), None,
        144_672, (32.0309, 0.8917)),
}


def test_every_released_file_is_listed():
    if WEIGHTS.is_dir():
        assert {p.name for p in WEIGHTS.glob('*.pth')} == set(RELEASED)


@needs_weights
@pytest.mark.parametrize('file', RELEASED)
def test_released_weights_load_strictly(file):
    name, kwargs, key, count, _ = RELEASED[file]
    net = build_network({'type': name, **kwargs})
    state = extract_state_dict(load_torch(WEIGHTS / file), key, file)
    net.load_state_dict(state, strict=True)
    assert sum(v.numel() for v in state.values()) == count
    assert sum(p.numel() for p in net.parameters()) == count


@pytest.mark.slow
@pytest.mark.reproduction
@needs_weights
@pytest.mark.parametrize('file', RELEASED)
def test_released_weights_reproduce_set5(file, tmp_path, monkeypatch):
    """Against SOURCES_r3.md's "Set5 check here": the authors' own code run on the same Set5
    MATLAB LR images (no Set5 number is published for these challenge entries)."""
    monkeypatch.chdir(ROOT)
    name = RELEASED[file][0]
    results = run_test_py(ROOT / f'options/test/{name}/test_{name}_x4.yml', tmp_path, {'Set5'})
    psnr, ssim = RELEASED[file][4]
    assert results['Set5']['mean']['psnr'] == pytest.approx(psnr, abs=0.01)
    assert results['Set5']['mean']['ssim'] == pytest.approx(ssim, abs=0.0005)


def test_scale_comes_from_upscaling_factor():
    needs = network_needs({'type': 'SAFMNPP', 'dim': 36, 'upscaling_factor': 3})
    assert (needs.scale, needs.scale_key) == (3, 'upscaling_factor')
    assert (needs.in_ch, needs.out_ch, needs.input_multiple) == (3, 3, 1)
    cap = capability({'type': 'SAFMN', 'dim': 36})
    assert (cap.size_multiple, cap.tiles_exactly, cap.fp16) == (1, False, False)
    assert capability({'type': 'SAFMN_NTIRE23', 'dim': 36}).min_size == 16


def test_use_se_is_refused():
    with pytest.raises(ValueError, match='use_se'):
        build_network({'type': 'SAFMNPP', 'dim': 36, 'use_se': True})


def import_spandrel(monkeypatch):
    """spandrel (tests/spandrel_support.py says why torchvision is stood in for)."""
    return spandrel_or_skip(monkeypatch)


@pytest.mark.reproduction
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_paper_safmn_matches_spandrel(scale, monkeypatch):
    """spandrel's SAFMN (the authors' safmn_arch.py, as chaiNNer/ComfyUI load it) is an
    independent implementation: same keys, same output, and it recognises our state dict."""
    spandrel = import_spandrel(monkeypatch)
    from spandrel.architectures.SAFMN import SAFMN as Reference
    torch.manual_seed(scale)
    ref = Reference(dim=16, n_blocks=2, ffn_scale=2.0, upscaling_factor=scale)
    for p in ref.parameters():
        torch.nn.init.normal_(p, std=0.2)  # not the trivial init (LayerNorm 1/0)
    ours = build_network({'type': 'SAFMN', 'dim': 16, 'n_blocks': 2, 'upscaling_factor': scale})
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.rand(1, 3, 21, 30)  # sides that are not multiples of the pooling factors
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)
    found = spandrel.ModelLoader().load_from_state_dict(ours.state_dict())
    assert (found.architecture.id, found.scale) == ('SAFMN', scale)


# Set5 'bird' Y-PSNR of each released file through test.py (this code's per-image log of the
# runs whose Set5 means match the authors' code above): a fast pin of the forward pass.
BIRD_PSNR = {'NTIRE2023_team15_SAFMN.pth': 34.803990, 'NTIRE2024_team23_safmnpp.pth': 34.556319,
             'AIS2024_light_safmnpp.pth': 32.375030, 'NTIRE2025_team19_safmnv3.pth': 34.560574}


@pytest.mark.regression
@needs_weights
@pytest.mark.parametrize('file', RELEASED)
def test_released_weights_on_one_set5_image(file):
    import cv2
    from basicsr_lite.metrics.psnr_ssim_metric import calculate_psnr
    from basicsr_lite.utils.img_util import img2tensor, tensor2img
    name, kwargs, key, _, _ = RELEASED[file]
    net = build_network({'type': name, **kwargs}).eval()
    net.load_state_dict(extract_state_dict(load_torch(WEIGHTS / file), key, file))
    set5 = ROOT.parent / 'shared' / 'data' / 'Set5'
    lq = cv2.imread(str(set5 / 'LR_bicubic' / 'X4' / 'birdx4.png')).astype('float32') / 255
    gt = cv2.imread(str(set5 / 'HR' / 'bird.png'))
    with torch.no_grad():
        sr = tensor2img(net(img2tensor(lq)[None]).clamp(0, 1))
    psnr = calculate_psnr(sr, gt[:sr.shape[0], :sr.shape[1]], 4, test_y_channel=True)
    assert psnr == pytest.approx(BIRD_PSNR[file], abs=1e-4)


def test_fft_loss_of_a_constant_offset():
    """A constant offset c only moves the DC term, by c * H * W; the mean runs over N, C, H and
    W // 2 + 1 frequencies, real and imaginary parts."""
    from basicsr_lite.losses import build_loss
    loss = build_loss({'type': 'FFTLoss', 'loss_weight': 0.05})
    target = torch.rand(2, 3, 8, 6)
    value = loss(target + 0.25, target)
    expected = 0.05 * 0.25 * 8 * 6 / (8 * (6 // 2 + 1) * 2)
    assert float(value) == pytest.approx(expected, rel=1e-5)
    # an L1: an offset down costs as much as one up
    assert float(loss(target - 0.25, target)) == pytest.approx(expected, rel=1e-5)


def test_fft_opt_adds_a_logged_loss(tiny_opt):
    from basicsr_lite.models import build_model
    from basicsr_lite.options import validate_options
    tiny_opt['network_g'] = {'type': 'SAFMN', 'dim': 8, 'n_blocks': 1, 'upscaling_factor': 2}
    tiny_opt['train']['fft_opt'] = {'type': 'FFTLoss', 'loss_weight': 0.05}
    opt = validate_options(tiny_opt, True)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    model = build_model(opt, torch.device('cpu'))
    model.feed_data({'lq': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 16, 16)})
    model.optimize_parameters(1)
    assert set(model.get_current_log()) == {'l_pix', 'l_fft'}
