"""DRCT: the authors' key layout (ming053l/DRCT drct/archs/DRCT_arch.py), the parameter counts of
DRCT and DRCT-L, bit-equal outputs against spandrel's implementation on the same random state
dict, spandrel's loader recognising our files, gradient checkpointing, detection, and the
released files reproducing the published Set5 PSNR (skipped while ../shared/weights/DRCT lacks
them)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import yaml

from basicsr_lite.archs import build_network
from basicsr_lite.archs.capabilities import capability
from basicsr_lite.archs.detection import detect_network
from basicsr_lite.options import validate_options
from basicsr_lite.runtime.activation_memory import saved_activation_bytes
from tests.spandrel_support import spandrel_or_skip
from tests.test_arch_hat import count, layout, layout_count, meta_build, perturbed, \
    released_or_skip
from tests.test_model_zoo import ROOT, SHARED, run_test_py

WEIGHTS = SHARED / 'weights' / 'DRCT'

# The authors' option files (options/train, options/test; the HAT-only keys they carry left out).
DRCT_ARGS = dict(img_size=64, window_size=16, depths=[6] * 6, embed_dim=180, num_heads=[6] * 6,
                 mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv')
VARIANTS = {'DRCT': DRCT_ARGS,
            'DRCT-L': {**DRCT_ARGS, 'depths': [6] * 12, 'num_heads': [6] * 12}}
# Counted here; DRCT x4 14,139,579 is also the authors' own count (parameter_size.ipynb, fvcore);
# the README (x4 table) gives DRCT 14.13M and DRCT-L 27.58M.
COUNTS = {'DRCT': {2: 13_991_867, 3: 14_176_507, 4: 14_139_579},
          'DRCT-L': {2: 27_433_007, 3: 27_617_647, 4: 27_580_719}}
README_M = {'DRCT': 14.13, 'DRCT-L': 27.58}

TINY = dict(img_size=16, window_size=4, embed_dim=12, depths=[6, 6], num_heads=[3, 2],
            mlp_ratio=2.0, gc=4)
ONE_GROUP = {**TINY, 'depths': [6], 'num_heads': [3]}  # blocks of 3, 2, 1, 3, 2 heads


def authors_layout(c: int, groups: int, heads: list[int], ws: int, mlp: float, gc: int,
                   img: int, scale: int) -> list[tuple[str, tuple]]:
    """Keys and shapes of the authors' DRCT in their registration order (written from
    DRCT_arch.py): conv_first, patch_embed.norm, per RDG swin1..5 (the shift mask of the
    shifted blocks 2 and 4 first, then norm1, attn table / index / qkv / proj, norm2, mlp) each
    followed by its adjust conv, then norm, conv_after_body, conv_before_upsample, upsample,
    conv_last. Block k is c + (k-1) gc wide with ``heads - width % heads`` heads (block 1:
    ``heads``) and MLP ratio ``mlp`` (blocks 1-3) or 1 (blocks 4-5)."""
    def pair(name: str, o: int, *i: int) -> list[tuple[str, tuple]]:
        return [(f'{name}.weight', (o, *i)), (f'{name}.bias', (o,))]

    keys = pair('conv_first', c, 3, 3, 3) + pair('patch_embed.norm', c)
    n = ws * ws
    for g in range(groups):
        for k in range(1, 6):
            w, b = c + (k - 1) * gc, f'layers.{g}.swin{k}'
            h = heads[g] if k == 1 else heads[g] - w % heads[g]
            hidden = int(w * (mlp if k <= 3 else 1))
            if k % 2 == 0 and img > ws:
                keys.append((f'{b}.attn_mask', ((img // ws)**2, n, n)))
            keys += pair(f'{b}.norm1', w)
            keys += [(f'{b}.attn.relative_position_bias_table', ((2 * ws - 1)**2, h)),
                     (f'{b}.attn.relative_position_index', (n, n))]
            keys += pair(f'{b}.attn.qkv', 3 * w, w) + pair(f'{b}.attn.proj', w, w)
            keys += pair(f'{b}.norm2', w) + pair(f'{b}.mlp.fc1', hidden, w)
            keys += pair(f'{b}.mlp.fc2', w, hidden)
            keys += pair(f'layers.{g}.adjust{k}', gc if k < 5 else c, w, 1, 1)
    keys += pair('norm', c) + pair('conv_after_body', c, c, 3, 3)
    keys += pair('conv_before_upsample.0', 64, c, 3, 3)
    ups = [(0, 9)] if scale == 3 else [(2 * n, 4) for n in range(scale.bit_length() - 1)]
    for i, factor in ups:
        keys += pair(f'upsample.{i}', factor * 64, 64, 3, 3)
    return keys + pair('conv_last', 3, 64, 3, 3)


@pytest.mark.parametrize('scale', [3, 4])
def test_keys_and_shapes_are_the_authors_in_their_order(scale):
    net = build_network({'type': 'DRCT', **TINY, 'upscale': scale})
    assert layout(net) == authors_layout(12, 2, [3, 2], 4, 2.0, 4, 16, scale)


def test_authors_layout_of_the_published_variants_has_the_published_counts():
    """x4: DRCT 14,139,579 (the authors' notebook: 14139579; README 14.13M), DRCT-L 27,580,719
    (README 27.58M). The networks themselves are counted in the slow test below."""
    for variant, a in VARIANTS.items():
        keys = authors_layout(a['embed_dim'], len(a['depths']), a['num_heads'],
                              a['window_size'], a['mlp_ratio'], 32, a['img_size'], 4)
        assert layout_count([(k, s) for k, s in keys if 'attn_mask' not in k]) == \
            COUNTS[variant][4], variant


@pytest.mark.slow  # 6 full-size builds (meta device)
@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_counts_of_every_published_variant(variant):
    found = {s: count(meta_build({'type': 'DRCT', **VARIANTS[variant], 'upscale': s}))
             for s in (2, 3, 4)}
    assert found == COUNTS[variant]
    assert int(found[4] / 1e4) / 100 == README_M[variant]  # the README truncates


def test_inputs_of_any_size_are_padded_to_the_window_and_cropped():
    torch.manual_seed(0)
    net = build_network({'type': 'DRCT', **ONE_GROUP, 'upscale': 2}).eval()
    x = torch.rand(1, 3, 10, 13)
    with torch.no_grad():
        out = net(x)
        padded = net(F.pad(x, (0, 3, 0, 2), mode='reflect'))
    assert out.shape == (1, 3, 20, 26)
    assert torch.equal(out, padded[..., :20, :26])  # the authors' test(): pad, run, crop


def test_the_hat_keys_of_the_authors_option_files_are_accepted_and_build_nothing():
    hat_keys = dict(compress_ratio=24, squeeze_factor=24, conv_scale=0.5, overlap_ratio=0.25)
    plain = build_network({'type': 'DRCT', **TINY})
    assert layout(build_network({'type': 'DRCT', **TINY, **hat_keys})) == layout(plain)



# The network_g keys of the authors' option files (options/train and options/test, every one).
AUTHORS_KEYS = {'type', 'upscale', 'in_chans', 'img_size', 'window_size', 'compress_ratio',
                'squeeze_factor', 'conv_scale', 'overlap_ratio', 'img_range', 'depths',
                'embed_dim', 'num_heads', 'mlp_ratio', 'upsampler', 'resi_connection'}


def test_the_authors_option_files_validate_here():
    """Their network_g keys and model_type (DRCTModel: SRModel here, the arch pads itself)."""
    raw = yaml.safe_load((ROOT / 'options/test/DRCT/test_DRCT_SRx4.yml').read_text())
    assert set(raw['network_g']) == AUTHORS_KEYS
    opt = validate_options({**raw, 'model_type': 'DRCTModel'}, is_train=False,
                           check_paths=False)
    assert opt['model_type'] == 'DRCTModel'


# ---- against spandrel's implementation (the loader chaiNNer / ComfyUI use) ---------------------

@pytest.fixture
def spandrel_drct(monkeypatch):
    spandrel = spandrel_or_skip(monkeypatch)
    from spandrel.architectures.DRCT import DRCT
    return spandrel, DRCT


@pytest.mark.parametrize('scale', [2, 3])
def test_output_equals_spandrels_bit_for_bit(spandrel_drct, scale):
    """spandrel's DRCT does not pad (it asks for multiples of 16): it gets the padded input."""
    _, SpandrelDRCT = spandrel_drct
    ours = build_network({'type': 'DRCT', **ONE_GROUP, 'upscale': scale}).eval()
    theirs = SpandrelDRCT(**ONE_GROUP, upscale=scale, upsampler='pixelshuffle').eval()
    assert layout(ours) == layout(theirs)
    for key, value in theirs.state_dict().items():
        if not value.is_floating_point() or 'attn_mask' in key:
            assert torch.equal(ours.state_dict()[key], value), key
    state = perturbed(ours)
    ours.load_state_dict(state)
    theirs.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 13, 10)
    with torch.no_grad():
        expected = theirs(F.pad(x, (0, 2, 0, 3), mode='reflect'))[..., :13 * scale, :10 * scale]
        assert torch.equal(ours(x), expected)


def test_spandrel_loads_our_state_dict_with_our_hyper_parameters(spandrel_drct):
    spandrel, _ = spandrel_drct
    args = {**TINY, 'upscale': 4}
    model = spandrel.ModelLoader().load_from_state_dict(
        build_network({'type': 'DRCT', **args}).state_dict())
    assert model.architecture.id == 'DRCT' and model.scale == 4
    found = model.model.hyperparameters
    assert {k: found[k] for k in args if k != 'depths'} == \
        {k: v for k, v in args.items() if k != 'depths'}
    assert len(found['depths']) == len(args['depths'])
    assert model.supports_half == capability({'type': 'DRCT', **args}).fp16


# ---- gradient checkpointing -----------------------------------------------------------------------

@pytest.mark.slow  # the first non-reentrant checkpoint of a process imports torch._dynamo (~2 s)
def test_checkpointing_gives_the_same_gradients_and_keeps_less():
    """Train mode, drop path 0.5 (the random masks are replayed in the recomputation)."""
    args = {'type': 'DRCT', **ONE_GROUP, 'upscale': 2, 'drop_path_rate': 0.5}
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
    options = {'type': 'DRCT', **VARIANTS[variant], 'upscale': scale}
    found = detect_network(meta_build(options).state_dict())
    assert found['type'] == 'DRCT'
    assert layout(meta_build(found)) == layout(meta_build(options))
    for key in ('depths', 'num_heads', 'embed_dim', 'window_size', 'img_size', 'upscale'):
        assert found[key] == options[key], key


# ---- the released files -----------------------------------------------------------------------

# Published Set5 / Set14 x4 Y-PSNR: the authors' README table (ming053l/DRCT, "Benchmark results
# on SRx4 without x2 pretraining"). The README gives no SSIM and the paper's tables could not be
# read offline, so SSIM is not checked. DRCT-L's file: the name asked for here, or the authors'
# test option file's (DRCT-L_SRx4_ImageNet-pretrain.pth).
RELEASED = {
    'DRCT_SRx4.pth': ('test_DRCT_SRx4.yml', ('DRCT_SRx4.pth',), 33.11, 29.35),
    'DRCT-L_SRx4.pth': ('test_DRCT-L_SRx4.yml',
                        ('DRCT-L_SRx4.pth', 'DRCT-L_SRx4_ImageNet-pretrain.pth'), 33.37, 29.54),
}


def released_file(name: str):
    option_file, names, set5, _ = RELEASED[name]
    for candidate in names:
        if (WEIGHTS / candidate).is_file():
            return option_file, WEIGHTS / candidate, set5
    return option_file, released_or_skip(WEIGHTS, names[0], (set5, 'SSIM unpublished')), set5


@pytest.mark.parametrize('name', sorted(RELEASED))
def test_released_files_load_strictly_into_the_detected_network(name):
    from basicsr_lite.archs.detection import options_from_weights
    from basicsr_lite.runtime.weights import load_weights_into
    option_file, path, _ = released_file(name)
    stated = yaml.safe_load((ROOT / 'options/test/DRCT' / option_file).read_text())['network_g']
    found = options_from_weights(str(path), 'params_ema')
    for key in ('depths', 'embed_dim', 'img_size', 'window_size', 'upscale'):
        assert found[key] == stated[key], key
    load_weights_into(build_network(stated), str(path), param_key='params_ema')


@pytest.mark.slow
@pytest.mark.reproduction
@pytest.mark.parametrize('name', sorted(RELEASED))
def test_released_file_reproduces_published_set5(name, tmp_path, monkeypatch):
    """Set5 x4 through test.py (MATLAB LR images, padding inside the network as the authors'
    test() pads) against the README's PSNR, 0.01 dB."""
    option_file, path, set5 = released_file(name)
    monkeypatch.chdir(ROOT)
    raw = yaml.safe_load((ROOT / 'options/test/DRCT' / option_file).read_text())
    raw['path']['pretrain_network_g'] = str(path)
    source = tmp_path / 'source' / option_file
    source.parent.mkdir()
    source.write_text(yaml.safe_dump(raw))
    results = run_test_py(source, tmp_path, {'Set5'})
    assert results['Set5']['mean']['psnr'] == pytest.approx(set5, abs=0.01)
