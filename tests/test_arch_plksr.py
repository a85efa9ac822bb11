"""PLKSR, RealPLKSR and DySample (basicsr_lite/archs/plksr_arch.py, realplksr_arch.py,
dysample.py).

No released PLKSR / RealPLKSR weights are obtainable offline, so exactness is shown by:
key names and shapes, key for key, against layouts written here from the authors' code
(dslisleedh/PLKSR ``plksr/archs/plksr_arch.py``; neosr / traiNNer-redux ``realplksr_arch.py``);
parameter counts of the paper's models; bit-equal outputs against spandrel's own implementation
loaded with the same state dict; spandrel's loader recognising our state dicts; and DySample's
initial sampling points reproducing bilinear upsampling exactly.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from basicsr_lite.archs import build_network
from basicsr_lite.archs.capabilities import capability
from basicsr_lite.archs.dysample import DySample, initial_positions
from basicsr_lite.archs.plksr_arch import PLKSR
from basicsr_lite.archs.realplksr_arch import RealPLKSR
from basicsr_lite.runtime.tiling import tiled_inference
from tests.spandrel_support import spandrel_or_skip

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT.parent / 'shared' / 'weights'

# The paper prints latency and memory, not parameter counts, for its own models. These are the
# counts of the authors' configurations (their option files: PLKSR dim 64, 28 blocks, kernel 17,
# DCCM, EA; PLKSR-tiny 12 blocks, kernel 13, no EA), as traiNNer-redux's published benchmark table
# (docs, "PyTorch Inference Benchmarks by Architecture", Params column) lists them, and as
# spandrel builds them (test below).
PLKSR_X4 = 7_386_096
PLKSR_TINY_X4 = 2_370_544
REALPLKSR_X4 = 7_389_680           # pixel shuffle, GroupNorm or layer norm (same count)
REALPLKSR_DYSAMPLE_X4 = 7_402_243
TINY = dict(n_blocks=12, kernel_size=13, use_ea=False)


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def layout(net: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


def conv(key: str, c_in: int, c_out: int, kh: int, kw: int | None = None,
         bias: bool = True) -> list[tuple[str, tuple[int, ...]]]:
    rows = [(f'{key}.weight', (c_out, c_in, kh, kw or kh))]
    return rows + [(f'{key}.bias', (c_out,))] if bias else rows


def authors_plksr_layout(dim: int, n_blocks: int, scale: int, ccm_type: str, kernel_size: int,
                         split_ratio: float, use_ea: bool) -> list:
    """The authors' PLKSR (lk_type 'PLK'): feats = [conv3x3, PLKBlock * n, conv3x3]; each block
    channe_mixer (conv, GELU, conv), lk.conv on int(dim * split_ratio) channels, attn.f.0 when
    use_ea, refine 1x1."""
    k1, k2 = {'CCM': (3, 1), 'ICCM': (1, 3), 'DCCM': (3, 3)}[ccm_type]
    pdim = int(dim * split_ratio)
    rows = conv('feats.0', 3, dim, 3)
    for i in range(1, n_blocks + 1):
        b = f'feats.{i}'
        rows += conv(f'{b}.channe_mixer.0', dim, 2 * dim, k1)
        rows += conv(f'{b}.channe_mixer.2', 2 * dim, dim, k2)
        rows += conv(f'{b}.lk.conv', pdim, pdim, kernel_size)
        rows += conv(f'{b}.attn.f.0', dim, dim, 3) if use_ea else []
        rows += conv(f'{b}.refine', dim, dim, 1)
    return rows + conv(f'feats.{n_blocks + 1}', dim, 3 * scale**2, 3)


def authors_realplksr_layout(dim: int, n_blocks: int, scale: int, kernel_size: int,
                             split_ratio: float, use_ea: bool, dysample: bool,
                             layer_norm: bool) -> list:
    """RealPLKSR (neosr + layer norm / DySample): feats = [conv3x3, block * n, Dropout2d,
    conv3x3]; each block [layer_norm.weight/bias], channel_mixer, lk.conv, [attn.f.0], refine,
    [norm (GroupNorm) weight/bias]; to_img = DySample (end_conv, offset, scope, init_pos)."""
    pdim = int(dim * split_ratio)
    rows = conv('feats.0', 3, dim, 3)
    for i in range(1, n_blocks + 1):
        b = f'feats.{i}'
        rows += [(f'{b}.layer_norm.weight', (dim,)), (f'{b}.layer_norm.bias', (dim,))] \
            if layer_norm else []
        rows += conv(f'{b}.channel_mixer.0', dim, 2 * dim, 3)
        rows += conv(f'{b}.channel_mixer.2', 2 * dim, dim, 3)
        rows += conv(f'{b}.lk.conv', pdim, pdim, kernel_size)
        rows += conv(f'{b}.attn.f.0', dim, dim, 3) if use_ea else []
        rows += conv(f'{b}.refine', dim, dim, 1)
        rows += [] if layer_norm else [(f'{b}.norm.weight', (dim,)), (f'{b}.norm.bias', (dim,))]
    rows += conv(f'feats.{n_blocks + 2}', dim, 3 * scale**2, 3)  # n + 1 is the dropout
    if dysample:
        groups = 4 if scale % 2 == 0 else 3
        channels, points = 3 * scale**2, 2 * groups * scale**2
        rows += [('to_img.init_pos', (1, points, 1, 1))]  # a module's own tensors come first
        rows += conv('to_img.end_conv', channels, 3, 1) if scale != 1 else []
        rows += conv('to_img.offset', channels, points, 1)
        rows += conv('to_img.scope', channels, points, 1, bias=False)
    return rows


# ---- layout and parameter counts ----------------------------------------------------------------

@pytest.mark.parametrize('kwargs', [{}, TINY, {'upscaling_factor': 2},
                                    {'upscaling_factor': 3, 'ccm_type': 'CCM'},
                                    {'ccm_type': 'ICCM', 'dim': 48, 'split_ratio': 0.5}],
                         ids=['x4', 'tiny-x4', 'x2', 'x3-CCM', 'ICCM'])
def test_plksr_keys_and_shapes_match_the_authors_layout(kwargs):
    args = dict(dim=64, n_blocks=28, upscaling_factor=4, ccm_type='DCCM', kernel_size=17,
                split_ratio=0.25, use_ea=True) | kwargs
    expected = authors_plksr_layout(args['dim'], args['n_blocks'], args['upscaling_factor'],
                                    args['ccm_type'], args['kernel_size'], args['split_ratio'],
                                    args['use_ea'])
    assert layout(PLKSR(**kwargs)) == expected


def test_plksr_ablation_large_kernels_have_the_authors_keys():
    sparse = PLKSR(dim=16, n_blocks=1, lk_type='SparsePLK', use_max_kernel=True)
    # sparse_kernels 5 x 4 with dilations 1..4: footprints 5, 9, 13, 17; the max kernel is 17.
    assert [(k, s) for k, s in layout(sparse) if '.lk.' in k] == [
        *conv('feats.1.lk.convs.0', 4, 4, 5), *conv('feats.1.lk.convs.1', 4, 4, 5),
        *conv('feats.1.lk.convs.2', 4, 4, 5), *conv('feats.1.lk.convs.3', 4, 4, 5),
        *conv('feats.1.lk.convs.4', 4, 4, 17)]
    rect = PLKSR(dim=16, n_blocks=1, lk_type='RectSparsePLK', kernel_size=15)
    assert [(k, s) for k, s in layout(rect) if '.lk.' in k] == [
        *conv('feats.1.lk.mn_conv', 4, 4, 15, 5), *conv('feats.1.lk.nm_conv', 4, 4, 5, 15),
        *conv('feats.1.lk.nn_conv', 4, 4, 5, 5)]
    with pytest.raises(ValueError, match='LK type'):
        PLKSR(n_blocks=1, lk_type='Large')


@pytest.mark.parametrize('kwargs', [{}, {'dysample': True}, {'layer_norm': True},
                                    {'dysample': True, 'layer_norm': True, 'upscaling_factor': 3},
                                    {'dysample': True, 'upscaling_factor': 1, 'use_ea': False}],
                         ids=['x4', 'dysample-x4', 'layernorm-x4', 'dysample-x3', 'dysample-x1'])
def test_realplksr_keys_and_shapes_match_the_authors_layout(kwargs):
    args = dict(dim=64, n_blocks=28, upscaling_factor=4, kernel_size=17, split_ratio=0.25,
                use_ea=True, dysample=False, layer_norm=False) | kwargs
    expected = authors_realplksr_layout(args['dim'], args['n_blocks'], args['upscaling_factor'],
                                        args['kernel_size'], args['split_ratio'], args['use_ea'],
                                        args['dysample'], args['layer_norm'])
    assert layout(RealPLKSR(**kwargs)) == expected


def test_parameter_counts_of_the_paper_models():
    assert count(PLKSR()) == PLKSR_X4
    assert count(PLKSR(**TINY)) == PLKSR_TINY_X4
    assert count(RealPLKSR()) == REALPLKSR_X4
    assert count(RealPLKSR(layer_norm=True)) == REALPLKSR_X4
    assert count(RealPLKSR(dysample=True)) == REALPLKSR_DYSAMPLE_X4


def test_use_pa_is_the_older_name_of_use_ea():
    """The authors' DF2K option files write ``use_pa: false`` for PLKSR-tiny."""
    net = build_network({'type': 'PLKSR', 'n_blocks': 12, 'kernel_size': 13, 'use_pa': False})
    assert count(net) == PLKSR_TINY_X4 and not any('attn' in k for k in net.state_dict())


def test_shipped_tiny_option_file_builds_the_tiny_model():
    import yaml
    raw = yaml.safe_load((ROOT / 'options/train/PLKSR/train_PLKSR_tiny_x4.yml').read_text())
    assert count(build_network(raw['network_g'])) == PLKSR_TINY_X4


# ---- behaviour ---------------------------------------------------------------------------------

@pytest.mark.parametrize('net', [
    PLKSR(dim=16, n_blocks=2, kernel_size=7, upscaling_factor=3),
    PLKSR(dim=16, n_blocks=1, lk_type='RectSparsePLK', kernel_size=9, with_idt=True),
    PLKSR(dim=16, n_blocks=1, kernel_size=7, with_idt=True, ccm_type='ICCM'),
    RealPLKSR(dim=16, n_blocks=2, kernel_size=7, upscaling_factor=2, dysample=True)],
    ids=['PLK', 'RectSparse', 'PLK-idt', 'Real-dysample'])
def test_in_place_inference_path_equals_the_training_path(net):
    """The partial conv writes into its input in pure inference (the authors' eval path) and
    splits / concatenates otherwise; both must give the same output."""
    torch.manual_seed(0)
    for p in net.parameters():  # a non-trivial large kernel (its init is tiny)
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.rand(1, 3, 12, 10)
    net.eval()
    with torch.no_grad():
        in_place = net(x)
    with torch.enable_grad():
        split = net(x)
    assert torch.equal(in_place, split)


def test_plksr_output_is_the_repeated_input_when_the_tail_is_zero():
    """``feats(x) + repeat(x)`` then pixel shuffle: with a zero tail conv the output is the
    nearest-neighbour upscale of the input (the global residual the network learns over)."""
    net = PLKSR(dim=8, n_blocks=1, kernel_size=5, upscaling_factor=3).eval()
    torch.nn.init.zeros_(net.feats[-1].weight)
    torch.nn.init.zeros_(net.feats[-1].bias)
    x = torch.rand(2, 3, 5, 7)
    with torch.no_grad():
        assert torch.equal(net(x), F.interpolate(x, scale_factor=3, mode='nearest'))


# ---- DySample -----------------------------------------------------------------------------------

def test_dysample_initial_positions_are_the_sub_pixel_centres():
    """Scale 2, one group: output pixel (row a, col b) of each 2 x 2 block sits at
    ((b - 0.5) / 2, (a - 0.5) / 2) input pixels from its input pixel's centre."""
    x = [-0.25, 0.25, -0.25, 0.25]   # x varies along the columns
    y = [-0.25, -0.25, 0.25, 0.25]   # y along the rows
    assert initial_positions(2, 1).flatten().tolist() == x + y
    assert initial_positions(2, 2).flatten().tolist() == x + x + y + y
    third = torch.tensor([-1.0, 0.0, 1.0]) / 3  # float32, as the buffer
    assert torch.equal(initial_positions(3, 1).flatten(),
                       torch.cat([third.repeat(3), third.repeat_interleave(3)]))
    assert initial_positions(1, 3).flatten().tolist() == [0.0] * 6


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_dysample_at_its_initial_positions_is_bilinear_upsampling(scale):
    """Zero offsets sample exactly the output pixel centres: DySample then equals bilinear
    interpolation (align_corners False; edges clamped like grid_sample's border mode)."""
    groups = 4 if scale % 2 == 0 else 3
    up = DySample(12 * groups, 3, scale, groups=groups, end_convolution=False).eval()
    torch.nn.init.zeros_(up.offset.weight)
    torch.nn.init.zeros_(up.offset.bias)
    x = torch.rand(2, 12 * groups, 7, 9)
    with torch.no_grad():
        got = up(x)
    expected = F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False)
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)


def test_dysample_rejects_channels_that_do_not_split_into_groups():
    with pytest.raises(ValueError, match='multiple of groups'):
        DySample(6, 3, 2, groups=4)


# ---- against spandrel's implementation (the loader chaiNNer / ComfyUI use) ---------------------

@pytest.fixture
def spandrel_plksr(monkeypatch):
    """spandrel's PLKSR package (tests/spandrel_support.py says why torchvision is stood in
    for during the import)."""
    spandrel = spandrel_or_skip(monkeypatch)
    from spandrel.architectures import PLKSR as package
    return spandrel, package

def perturbed_state(net: torch.nn.Module, seed: int = 0) -> dict:
    """The net's state with every parameter moved off its init (buffers, i.e. init_pos, kept)."""
    generator = torch.Generator().manual_seed(seed)
    params = dict(net.named_parameters())
    return {k: v + 0.02 * torch.randn(v.shape, generator=generator) if k in params else v
            for k, v in net.state_dict().items()}


PLKSR_CASES = [dict(dim=32, n_blocks=3, kernel_size=9, ccm_type='DCCM', upscaling_factor=4),
               dict(dim=32, n_blocks=2, kernel_size=7, ccm_type='CCM', upscaling_factor=2,
                    use_ea=False),
               dict(dim=32, n_blocks=2, kernel_size=11, ccm_type='ICCM', upscaling_factor=3,
                    lk_type='SparsePLK', use_max_kernel=True, with_idt=True),
               dict(dim=32, n_blocks=2, kernel_size=9, ccm_type='DCCM', upscaling_factor=1,
                    lk_type='RectSparsePLK')]
REAL_CASES = [dict(dim=32, n_blocks=3, kernel_size=9, upscaling_factor=4),
              dict(dim=32, n_blocks=2, kernel_size=9, upscaling_factor=4, dysample=True),
              dict(dim=32, n_blocks=2, kernel_size=7, upscaling_factor=2, dysample=True,
                   layer_norm=True),
              dict(dim=32, n_blocks=2, kernel_size=7, upscaling_factor=3, dysample=True,
                   use_ea=False),
              dict(dim=32, n_blocks=2, kernel_size=7, upscaling_factor=1, dysample=True)]


@pytest.mark.parametrize('kwargs', PLKSR_CASES, ids=['DCCM-x4', 'CCM-noEA-x2', 'Sparse-x3',
                                                     'Rect-x1'])
def test_plksr_output_equals_spandrels(spandrel_plksr, kwargs):
    _, package = spandrel_plksr
    ours, theirs = PLKSR(**kwargs), package.PLKSR(**kwargs)
    assert count(ours) == count(theirs)
    state = perturbed_state(ours)
    ours.load_state_dict(state)
    theirs.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 13, 11)
    for train in (True, False):
        ours.train(train), theirs.train(train)
        with torch.no_grad():
            assert torch.equal(ours(x.clone()), theirs(x.clone())), f'training={train}'


@pytest.mark.parametrize('kwargs', REAL_CASES, ids=['GroupNorm-x4', 'dysample-x4',
                                                    'dysample-layernorm-x2', 'dysample-x3',
                                                    'dysample-x1'])
def test_realplksr_output_equals_spandrels(spandrel_plksr, kwargs):
    _, package = spandrel_plksr
    ours, theirs = RealPLKSR(**kwargs), package.RealPLKSR(**kwargs)
    assert count(ours) == count(theirs)
    if kwargs.get('dysample'):
        assert torch.equal(ours.to_img.init_pos, theirs.to_img.init_pos)
    state = perturbed_state(ours)
    ours.load_state_dict(state)
    theirs.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 13, 11)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        assert torch.equal(ours(x.clone()), theirs(x.clone()))


@pytest.mark.slow  # builds the full-size networks twice
def test_spandrel_counts_of_the_paper_models(spandrel_plksr):
    _, package = spandrel_plksr
    assert count(package.PLKSR(ccm_type='DCCM')) == PLKSR_X4
    assert count(package.PLKSR(ccm_type='DCCM', **TINY)) == PLKSR_TINY_X4
    assert count(package.RealPLKSR(dysample=True)) == REALPLKSR_DYSAMPLE_X4


@pytest.mark.parametrize('cls,kwargs,tags,half', [
    (PLKSR, dict(dim=32, n_blocks=3, kernel_size=9, upscaling_factor=3), ['DCCM'], True),
    (PLKSR, dict(dim=32, n_blocks=2, kernel_size=13, ccm_type='ICCM', use_ea=False),
     ['ICCM'], True),
    (RealPLKSR, dict(dim=32, n_blocks=2, kernel_size=9, upscaling_factor=2), ['Real'], False),
    (RealPLKSR, dict(dim=32, n_blocks=2, kernel_size=9, dysample=True, layer_norm=True),
     ['Real', 'DySample', 'LayerNorm'], True)])
def test_spandrel_loads_our_state_dicts(spandrel_plksr, cls, kwargs, tags, half):
    """A file saved by this package opens in spandrel (chaiNNer, ComfyUI) with the same
    hyper-parameters, and its fp16 verdict is the one in our capability table."""
    spandrel, _ = spandrel_plksr
    ours = cls(**kwargs)
    model = spandrel.ModelLoader().load_from_state_dict(ours.state_dict())
    assert model.architecture.id == 'PLKSR'
    assert model.scale == kwargs.get('upscaling_factor', 4)
    assert set(tags) <= set(model.tags) and f"{kwargs['dim']}dim" in model.tags
    assert model.supports_half == half
    assert capability({'type': cls.__name__, **kwargs}).fp16 == half
    assert layout(model.model) == layout(ours)


# ---- tiling claims ------------------------------------------------------------------------------

def tiled_vs_whole(net: torch.nn.Module, scale: int) -> float:
    torch.manual_seed(0)
    net.eval()
    lq = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        whole = net(lq)
    tiled = tiled_inference(net, lq, scale, tile=16, overlap=12, clamp=False)
    return (tiled - whole).abs().max().item()


@pytest.mark.slow
def test_realplksr_tiles_exactly_only_with_layer_norm_and_pixel_shuffle():
    small = dict(dim=8, n_blocks=2, kernel_size=5, upscaling_factor=2)
    for extra, exact in [({'layer_norm': True}, True), ({}, False),
                         ({'layer_norm': True, 'dysample': True}, False)]:
        torch.manual_seed(0)
        net = RealPLKSR(**small, **extra)
        for p in net.parameters():
            p.data.add_(0.1 * torch.randn_like(p))
        if extra.get('dysample'):  # offsets of ~25 LR pixels: beyond the tiles' overlap
            net.to_img.offset.bias.data.fill_(100.0)
        assert capability({'type': 'RealPLKSR', **small, **extra}).tiles_exactly == exact
        gap = tiled_vs_whole(net, 2)
        assert (gap < 1e-5) == exact, (extra, gap)


# ---- released files -----------------------------------------------------------------------------

def test_every_released_file_loads_strictly(spandrel_plksr):
    """Each file in ../shared/weights/PLKSR: hyper-parameters read by spandrel's detection,
    then a strict load into our class."""
    folder = WEIGHTS / 'PLKSR'
    files = sorted(folder.glob('*.pth')) + sorted(folder.glob('*.safetensors'))
    if not files:
        pytest.skip('no released PLKSR / RealPLKSR weights in ../shared/weights (none obtainable '
                    'offline); the layout and spandrel-equality tests stand in for them')
    spandrel, _ = spandrel_plksr
    for path in files:
        model = spandrel.ModelLoader().load_from_file(path)
        cls = RealPLKSR if type(model.model).__name__ == 'RealPLKSR' else PLKSR
        ours = cls(**model.model.hyperparameters)
        ours.load_state_dict(model.model.state_dict(), strict=True)
