"""HAT: the authors' key layout (XPixelGroup/HAT hat/archs/hat_arch.py), the parameter counts of
the published variants, bit-equal outputs against spandrel's implementation on the same random
state dict, spandrel's loader recognising our files, gradient checkpointing, detection, and the
released files reproducing the published Set5 numbers (skipped while ../shared/weights/HAT
lacks them)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from basicsr_lite.archs import build_network
from basicsr_lite.archs.capabilities import capability
from basicsr_lite.archs.detection import detect_network
from basicsr_lite.options import validate_options
from basicsr_lite.archs.hat_blocks import overlap_position_index
from basicsr_lite.runtime.activation_memory import saved_activation_bytes
from tests.spandrel_support import spandrel_or_skip
from tests.test_model_zoo import ROOT, SHARED, run_test_py

WEIGHTS = SHARED / 'weights' / 'HAT'

# The authors' option files (options/train, options/test): window 16, overlap 0.5, mlp_ratio 2.
HAT_ARGS = dict(img_size=64, window_size=16, compress_ratio=3, squeeze_factor=30,
                conv_scale=0.01, overlap_ratio=0.5, depths=[6] * 6, embed_dim=180,
                num_heads=[6] * 6, mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv')
VARIANTS = {
    'HAT': HAT_ARGS,
    'HAT-S': {**HAT_ARGS, 'embed_dim': 144, 'compress_ratio': 24, 'squeeze_factor': 24},
    'HAT-L': {**HAT_ARGS, 'depths': [6] * 12, 'num_heads': [6] * 12},
}
# Counted here (meta device). Papers: HAT 20.8M, HAT-S 9.6M, HAT-L 40.8M at x4 (HAT paper,
# CVPR 2023 / arXiv 2205.04437 v3, model-size tables); DRCT's README (ming053l/DRCT, x4 table)
# gives HAT 20.77M and HAT-L 40.84M.
COUNTS = {'HAT': {2: 20_624_795, 3: 20_809_435, 4: 20_772_507},
          'HAT-S': {2: 9_473_471, 3: 9_658_111, 4: 9_621_183},
          'HAT-L': {2: 40_698_863, 3: 40_883_503, 4: 40_846_575}}
PAPER_M = {'HAT': 20.8, 'HAT-S': 9.6, 'HAT-L': 40.8}

TINY = dict(img_size=16, window_size=4, embed_dim=12, depths=[2, 1], num_heads=[2, 3],
            compress_ratio=2, squeeze_factor=4, mlp_ratio=2.0, overlap_ratio=0.5)


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def meta_build(options: dict) -> torch.nn.Module:
    with torch.device('meta'):
        return build_network(options)


def layout(net: torch.nn.Module) -> list[tuple[str, tuple]]:
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


def perturbed(net: torch.nn.Module, seed: int = 0) -> dict:
    """The net's state with every parameter replaced by noise (index and mask buffers kept)."""
    generator = torch.Generator().manual_seed(seed)
    params = dict(net.named_parameters())
    return {k: 0.1 * torch.randn(v.shape, generator=generator) if k in params else v
            for k, v in net.state_dict().items()}


def authors_layout(c: int, depths: list[int], heads: list[int], ws: int, compress: int,
                   squeeze: int, mlp: float, scale: int) -> list[tuple[str, tuple]]:
    """Keys and shapes of the authors' HAT in their registration order (written from
    hat_arch.py): the two index buffers, conv_first, patch_embed.norm, per RHAG the HABs
    (norm1, attn table / qkv / proj, conv_block.cab 0 / 2 / 3.attention.1 / .3, norm2, mlp),
    the OCAB (its own table first, then norm1, qkv, proj, norm2, mlp) and the group conv, then
    norm, conv_after_body, conv_before_upsample, upsample, conv_last."""
    ows, hidden = ws + ws // 2, int(c * mlp)

    def lin(name: str, o: int, i: int) -> list[tuple[str, tuple]]:
        return [(f'{name}.weight', (o, i)), (f'{name}.bias', (o,))]

    def conv(name: str, o: int, i: int, k: int) -> list[tuple[str, tuple]]:
        return [(f'{name}.weight', (o, i, k, k)), (f'{name}.bias', (o,))]

    def norm(name: str) -> list[tuple[str, tuple]]:
        return [(f'{name}.weight', (c,)), (f'{name}.bias', (c,))]

    keys = [('relative_position_index_SA', (ws * ws, ws * ws)),
            ('relative_position_index_OCA', (ws * ws, ows * ows))]
    keys += conv('conv_first', c, 3, 3) + norm('patch_embed.norm')
    for i, (depth, h) in enumerate(zip(depths, heads)):
        group = f'layers.{i}.residual_group'
        for j in range(depth):
            b = f'{group}.blocks.{j}'
            keys += norm(f'{b}.norm1') + [(f'{b}.attn.relative_position_bias_table',
                                           ((2 * ws - 1)**2, h))]
            keys += lin(f'{b}.attn.qkv', 3 * c, c) + lin(f'{b}.attn.proj', c, c)
            keys += conv(f'{b}.conv_block.cab.0', c // compress, c, 3)
            keys += conv(f'{b}.conv_block.cab.2', c, c // compress, 3)
            keys += conv(f'{b}.conv_block.cab.3.attention.1', c // squeeze, c, 1)
            keys += conv(f'{b}.conv_block.cab.3.attention.3', c, c // squeeze, 1)
            keys += norm(f'{b}.norm2') + lin(f'{b}.mlp.fc1', hidden, c)
            keys += lin(f'{b}.mlp.fc2', c, hidden)
        o = f'{group}.overlap_attn'
        keys += [(f'{o}.relative_position_bias_table', ((ws + ows - 1)**2, h))]
        keys += norm(f'{o}.norm1') + lin(f'{o}.qkv', 3 * c, c) + lin(f'{o}.proj', c, c)
        keys += norm(f'{o}.norm2') + lin(f'{o}.mlp.fc1', hidden, c) + lin(f'{o}.mlp.fc2', c, hidden)
        keys += conv(f'layers.{i}.conv', c, c, 3)
    keys += norm('norm') + conv('conv_after_body', c, c, 3)
    keys += conv('conv_before_upsample.0', 64, c, 3)
    ups = [(0, 9)] if scale == 3 else [(2 * n, 4) for n in range(scale.bit_length() - 1)]
    for n, factor in ups:
        keys += conv(f'upsample.{n}', factor * 64, 64, 3)
    return keys + conv('conv_last', 3, 64, 3)


@pytest.mark.parametrize('scale', [3, 4])
def test_keys_and_shapes_are_the_authors_in_their_order(scale):
    net = build_network({'type': 'HAT', **TINY, 'upscale': scale})
    assert layout(net) == authors_layout(12, [2, 1], [2, 3], 4, 2, 4, 2.0, scale)


def test_overlap_index_is_the_authors_formula():
    """Query (y, x) of a 4-window, key (v, u) of its 6-window: (v - y + ws - ows + 1) rows of
    (ws + ows - 1), plus (u - x + ws - ows + 1) (the authors' calculate_rpi_oca)."""
    ws, ows = 4, 6
    index = overlap_position_index(ws, ows)
    for q in range(ws * ws):
        for k in range(ows * ows):
            (y, x), (v, u) = divmod(q, ws), divmod(k, ows)
            expected = (v - y + ws - ows + 1) * (ws + ows - 1) + (u - x + ws - ows + 1)
            assert index[q, k] == expected


def layout_count(keys: list[tuple[str, tuple]]) -> int:
    return sum(math.prod(shape) for key, shape in keys if 'relative_position_index' not in key)


def test_authors_layout_of_the_published_variants_has_the_papers_counts():
    """The layout above (our network's, key for key) at the published sizes, x4: HAT
    20,772,507 (paper 20.8M), HAT-S 9,621,183 (9.6M), HAT-L 40,846,575 (40.8M). The networks
    themselves are counted in the slow test below (building them takes seconds here)."""
    for variant, a in VARIANTS.items():
        keys = authors_layout(a['embed_dim'], a['depths'], a['num_heads'], a['window_size'],
                              a['compress_ratio'], a['squeeze_factor'], a['mlp_ratio'], 4)
        assert layout_count(keys) == COUNTS[variant][4], variant


@pytest.mark.slow  # 9 full-size builds (meta device)
@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_counts_of_every_published_variant(variant):
    """Every variant at x2/x3/x4 (COUNTS, counted here); x4 rounds to the paper's millions."""
    found = {s: count(meta_build({'type': 'HAT', **VARIANTS[variant], 'upscale': s}))
             for s in (2, 3, 4)}
    assert found == COUNTS[variant]
    assert round(found[4] / 1e6, 1) == PAPER_M[variant]


def test_inputs_of_any_size_are_padded_to_the_window_and_cropped():
    torch.manual_seed(0)
    net = build_network({'type': 'HAT', **TINY, 'upscale': 2}).eval()
    x = torch.rand(1, 3, 10, 13)
    with torch.no_grad():
        out = net(x)
        padded = net(torch.nn.functional.pad(x, (0, 3, 0, 2), mode='reflect'))
    assert out.shape == (1, 3, 20, 26)
    assert torch.equal(out, padded[..., :20, :26])  # the authors' test(): pad, run, crop


def test_what_the_authors_code_cannot_run_is_refused():
    with pytest.raises(ValueError, match="upsampler must be 'pixelshuffle'"):
        build_network({'type': 'HAT', **TINY, 'upsampler': 'pixelshuffledirect'})
    with pytest.raises(ValueError, match='img_size'):
        build_network({'type': 'HAT', **TINY, 'img_size': 2})
    with pytest.raises(ValueError, match='even number'):
        build_network({'type': 'HAT', **TINY, 'window_size': 7, 'img_size': 14})



# The network_g keys of the authors' option files (options/train and options/test, every one).
AUTHORS_KEYS = {'type', 'upscale', 'in_chans', 'img_size', 'window_size', 'compress_ratio',
                'squeeze_factor', 'conv_scale', 'overlap_ratio', 'img_range', 'depths',
                'embed_dim', 'num_heads', 'mlp_ratio', 'upsampler', 'resi_connection'}


def test_the_authors_option_files_validate_here():
    """Their network_g keys and model_type (HATModel: SRModel here, the arch pads itself)."""
    raw = yaml.safe_load((ROOT / 'options/test/HAT/test_HAT-S_SRx4.yml').read_text())
    assert set(raw['network_g']) == AUTHORS_KEYS
    opt = validate_options({**raw, 'model_type': 'HATModel'}, is_train=False,
                           check_paths=False)
    assert opt['model_type'] == 'HATModel'


# ---- against spandrel's implementation (the loader chaiNNer / ComfyUI use) ---------------------

@pytest.fixture
def spandrel_hat(monkeypatch):
    spandrel = spandrel_or_skip(monkeypatch)
    from spandrel.architectures.HAT import HAT
    return spandrel, HAT


@pytest.mark.parametrize('scale', [2, 3])
def test_output_equals_spandrels_bit_for_bit(spandrel_hat, scale):
    _, SpandrelHAT = spandrel_hat
    ours = build_network({'type': 'HAT', **TINY, 'upscale': scale}).eval()
    theirs = SpandrelHAT(**TINY, upscale=scale, upsampler='pixelshuffle').eval()
    assert layout(ours) == layout(theirs)
    for key in ('relative_position_index_SA', 'relative_position_index_OCA'):
        assert torch.equal(ours.state_dict()[key], theirs.state_dict()[key])
    state = perturbed(ours)
    ours.load_state_dict(state)
    theirs.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 13, 10)  # not a multiple of the window: both pad
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_spandrel_loads_our_state_dict_with_our_hyper_parameters(spandrel_hat):
    spandrel, _ = spandrel_hat
    args = {**TINY, 'upscale': 4, 'compress_ratio': 3, 'squeeze_factor': 6}
    model = spandrel.ModelLoader().load_from_state_dict(
        build_network({'type': 'HAT', **args}).state_dict())
    assert model.architecture.id == 'HAT' and model.scale == 4
    found = model.model.hyperparameters
    assert {k: found[k] for k in args if k != 'img_size'} == \
        {k: v for k, v in args.items() if k != 'img_size'}
    assert model.supports_half == capability({'type': 'HAT', **args}).fp16


@pytest.mark.slow
def test_spandrel_counts_the_published_variants_as_we_do(spandrel_hat):
    _, SpandrelHAT = spandrel_hat
    for variant, args in VARIANTS.items():
        assert count(SpandrelHAT(**args, upscale=4)) == COUNTS[variant][4], variant


# ---- gradient checkpointing -----------------------------------------------------------------------

@pytest.mark.slow  # the first non-reentrant checkpoint of a process imports torch._dynamo (~2 s)
def test_checkpointing_gives_the_same_gradients_and_keeps_less():
    """Train mode, drop path 0.5 (the random masks are replayed in the recomputation)."""
    args = {'type': 'HAT', **TINY, 'upscale': 2, 'drop_path_rate': 0.5}
    plain, checked = build_network(args), build_network({**args, 'use_checkpoint': True})
    checked.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 16, 16)
    grads = []
    for net in (plain, checked):
        torch.manual_seed(1)
        net.train()(x).square().mean().backward()
        grads.append({k: p.grad for k, p in net.named_parameters()})
    for key, grad in grads[0].items():
        torch.testing.assert_close(grads[1][key], grad, atol=1e-6, rtol=0, msg=key)
    assert saved_activation_bytes(checked, x) < saved_activation_bytes(plain, x)


# ---- detection -------------------------------------------------------------------------------------

@pytest.mark.slow  # full-size state dicts on the meta device (shapes only)
@pytest.mark.parametrize('variant', sorted(VARIANTS))
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_published_variants_are_detected_with_their_arguments(variant, scale):
    options = {'type': 'HAT', **VARIANTS[variant], 'upscale': scale}
    state = meta_build(options).state_dict()
    found = detect_network(state)
    assert found['type'] == 'HAT'
    assert layout(meta_build(found)) == layout(meta_build(options))
    for key in ('depths', 'num_heads', 'embed_dim', 'window_size', 'compress_ratio',
                'squeeze_factor', 'overlap_ratio', 'upscale'):
        assert found[key] == options[key], key


# ---- the released files -----------------------------------------------------------------------

# Published Y-PSNR / SSIM (shave = scale) of the released x4 files: HAT paper (Chen et al.,
# CVPR 2023; HAT-S from the extended arXiv 2205.04437 v3 / 2309.05239), classical SR table;
# the HAT and HAT-L Set5 / Set14 PSNRs are also in DRCT's README table. Transcribed, not
# re-read offline (the paper's tables were not reachable here). Set14 is not run (one CPU core:
# minutes for a 20M-parameter transformer); B100: see the report.
RELEASED = {
    'HAT_SRx4.pth': ('test_HAT_SRx4.yml', (33.04, 0.9056), (29.23, 0.7973)),
    'HAT-S_SRx4.pth': ('test_HAT-S_SRx4.yml', (32.92, 0.9047), (29.15, 0.7958)),
    'HAT-L_SRx4_ImageNet-pretrain.pth': ('test_HAT-L_SRx4_ImageNet-pretrain.yml',
                                         (33.30, 0.9083), (29.47, 0.8015)),
}


def released_or_skip(folder: Path, name: str, published: tuple) -> Path:
    path = folder / name
    if not path.is_file():
        pytest.skip(f'{path} is absent: place the authors\' released {name} there to check Set5 '
                    f'against the published PSNR/SSIM {published}')
    return path


@pytest.mark.parametrize('name', sorted(RELEASED))
def test_released_files_load_strictly_into_the_detected_network(name):
    from basicsr_lite.archs.detection import options_from_weights
    from basicsr_lite.runtime.weights import load_weights_into
    option_file, set5, _ = RELEASED[name]
    path = released_or_skip(WEIGHTS, name, set5)
    stated = yaml.safe_load((ROOT / 'options/test/HAT' / option_file).read_text())['network_g']
    found = options_from_weights(str(path), 'params_ema')
    for key in ('depths', 'embed_dim', 'compress_ratio', 'squeeze_factor', 'upscale'):
        assert found[key] == stated[key], key
    load_weights_into(build_network(stated), str(path), param_key='params_ema')


@pytest.mark.slow
@pytest.mark.reproduction
@pytest.mark.parametrize('name', sorted(RELEASED))
def test_released_file_reproduces_published_set5(name, tmp_path, monkeypatch):
    """Set5 x4 through test.py (MATLAB LR images, padding to the window inside the network as
    the authors' test() pads) against the paper's numbers, 0.01 dB / 0.0005."""
    option_file, set5, _ = RELEASED[name]
    released_or_skip(WEIGHTS, name, set5)
    monkeypatch.chdir(ROOT)
    results = run_test_py(ROOT / 'options/test/HAT' / option_file, tmp_path, {'Set5'})
    assert results['Set5']['mean']['psnr'] == pytest.approx(set5[0], abs=0.01)
    assert results['Set5']['mean']['ssim'] == pytest.approx(set5[1], abs=0.0005)
