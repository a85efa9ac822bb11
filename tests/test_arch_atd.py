"""ATD (CVPR 2024): the authors' state-dict layout key for key, the published parameter counts,
equality with spandrel's implementation (a copy of the authors' code), detection, gradient
checkpointing, the padding, and, when the official files are placed in ../shared/weights/ATD/,
strict loading and the published Set5 numbers."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from basicsr_lite.archs import build_network
from basicsr_lite.archs.atd_blocks import category_order, inverse_permutation, symmetric_pad
from basicsr_lite.archs.capabilities import ANY_SCALE, SCALES_2N_3, capability
from basicsr_lite.archs.constraints import network_needs
from basicsr_lite.archs.detection import detect_network
from basicsr_lite.runtime.activation_memory import saved_activation_bytes
from basicsr_lite.runtime.weights import load_weights_into
from tests.spandrel_support import spandrel_or_skip
from tests.test_model_zoo import run_test_py

ROOT = Path(__file__).resolve().parent.parent
ATD_WEIGHTS = ROOT.parent / 'shared' / 'weights' / 'ATD'
TINY = dict(embed_dim=8, depths=[2], num_heads=[2], window_size=4, category_size=16,
            num_tokens=4, reducted_dim=2, convffn_kernel_size=3, mlp_ratio=2)

# One residual group of two layers (the first refines the dictionary, the last does not),
# keys and shapes written from the authors' basicsr/archs/atd_arch.py: ATD registers the
# relative_position_index_SA buffer, then conv_first, patch_embed (LayerNorm), layers (ATDB:
# residual_group = BasicBlock (its td parameter, then the layers), conv), norm, conv_after_body
# and the pixel-shuffle tail; ATDTransformerLayer: sigma (not in the last layer), norm1, norm2,
# norm3 (InstanceNorm1d over the tokens, not in the last layer), wqkv, attn_win (bias table,
# proj), attn_atd (scale, wq, wk, wv), attn_aca (logit_scale, proj), convffn (fc1, dwconv, fc2).
def _layer(i: int, last: bool) -> list[tuple[str, tuple[int, ...]]]:
    p = f'layers.0.residual_group.layers.{i}.'
    refine = [] if last else [(p + 'sigma', (4, 1))]
    norms = [(p + f'{n}.{t}', (8,)) for n in ('norm1', 'norm2') for t in ('weight', 'bias')]
    norm3 = [] if last else [(p + 'norm3.weight', (4,)), (p + 'norm3.bias', (4,))]
    return refine + norms + norm3 + [
        (p + 'wqkv.weight', (24, 8)), (p + 'wqkv.bias', (24,)),
        (p + 'attn_win.relative_position_bias_table', (49, 2)),
        (p + 'attn_win.proj.weight', (8, 8)), (p + 'attn_win.proj.bias', (8,)),
        (p + 'attn_atd.scale', (4,)),
        (p + 'attn_atd.wq.weight', (2, 8)), (p + 'attn_atd.wq.bias', (2,)),
        (p + 'attn_atd.wk.weight', (2, 8)), (p + 'attn_atd.wk.bias', (2,)),
        (p + 'attn_atd.wv.weight', (8, 8)), (p + 'attn_atd.wv.bias', (8,)),
        (p + 'attn_aca.logit_scale', (1, 1)),
        (p + 'attn_aca.proj.weight', (8, 8)), (p + 'attn_aca.proj.bias', (8,)),
        (p + 'convffn.fc1.weight', (16, 8)), (p + 'convffn.fc1.bias', (16,)),
        (p + 'convffn.dwconv.depthwise_conv.0.weight', (16, 1, 3, 3)),
        (p + 'convffn.dwconv.depthwise_conv.0.bias', (16,)),
        (p + 'convffn.fc2.weight', (8, 16)), (p + 'convffn.fc2.bias', (8,))]


AUTHORS_TINY_X2_LAYOUT = (
    [('relative_position_index_SA', (16, 16)), ('conv_first.weight', (8, 3, 3, 3)),
     ('conv_first.bias', (8,)), ('patch_embed.norm.weight', (8,)), ('patch_embed.norm.bias', (8,)),
     ('layers.0.residual_group.td', (4, 8))]
    + _layer(0, last=False) + _layer(1, last=True)
    + [('layers.0.conv.weight', (8, 8, 3, 3)), ('layers.0.conv.bias', (8,)),
       ('norm.weight', (8,)), ('norm.bias', (8,)), ('conv_after_body.weight', (8, 8, 3, 3)),
       ('conv_after_body.bias', (8,)), ('conv_before_upsample.0.weight', (64, 8, 3, 3)),
       ('conv_before_upsample.0.bias', (64,)), ('upsample.0.weight', (256, 64, 3, 3)),
       ('upsample.0.bias', (256,)), ('conv_last.weight', (3, 64, 3, 3)), ('conv_last.bias', (3,))])

# The published variants: the authors' option files (options/train|test/00*_ATD_*.yml and
# 10*_ATD_light_*.yml, the same arguments in their inference.py).
ATD_ARGS = dict(embed_dim=210, depths=[6] * 6, num_heads=[6] * 6, window_size=16,
                category_size=256, num_tokens=128, reducted_dim=20, convffn_kernel_size=5,
                mlp_ratio=2, upsampler='pixelshuffle')
LIGHT_ARGS = dict(embed_dim=48, depths=[6] * 4, num_heads=[4] * 4, window_size=16,
                  category_size=128, num_tokens=64, reducted_dim=8, convffn_kernel_size=7,
                  mlp_ratio=1, upsampler='pixelshuffledirect')
VARIANTS = {'ATD': ATD_ARGS, 'ATD-light': LIGHT_ARGS}
# Every parameter, counted here and with spandrel's ATD (the same numbers).
PARAMS = {('ATD', 2): 20_113_217, ('ATD', 3): 20_297_857, ('ATD', 4): 20_260_929,
          ('ATD-light', 2): 753_204, ('ATD-light', 3): 759_699, ('ATD-light', 4): 768_792}

# The released files (the authors' README, "pretrained models" on Google Drive; the names their
# options/test files and inference.py load, params_ema inside), and the paper's Set5 Y-PSNR /
# SSIM (Tables 2 and 3 of the CVPR paper; shave = scale).
OFFICIAL = {('ATD', 2): '001_ATD_SRx2_finetune', ('ATD', 3): '002_ATD_SRx3_finetune',
            ('ATD', 4): '003_ATD_SRx4_finetune', ('ATD-light', 2): '101_ATD_light_SRx2_scratch',
            ('ATD-light', 3): '102_ATD_light_SRx3_finetune',
            ('ATD-light', 4): '103_ATD_light_SRx4_finetune'}
PUBLISHED_SET5 = {('ATD', 2): (38.61, 0.9629), ('ATD', 3): (35.11, 0.9330),
                  ('ATD', 4): (33.10, 0.9058), ('ATD-light', 2): (38.28, 0.9616),
                  ('ATD-light', 3): (34.70, 0.9300), ('ATD-light', 4): (32.63, 0.8998)}
# OpenModelDB's fingerprint of 003_ATD_SRx4_finetune.pth (the only one known here).
SHA256 = {('ATD', 4): '092bf6aa82f0ecb9f681a7da6a8e65e2c1280ae5b44f1608f60742d88547b833'}


def atd(**kwargs) -> nn.Module:
    return build_network({'type': 'ATD', **kwargs})


def test_state_dict_layout_is_the_authors_key_for_key():
    net = atd(upscale=2, upsampler='pixelshuffle', **TINY)
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == AUTHORS_TINY_X2_LAYOUT


def _variant_cases() -> list:
    """The x4 models and ATD-light run by default; the full ATD at x2 / x3 (0.4 s to build
    each on the CPU) in the slow run."""
    return [pytest.param(v, s, marks=pytest.mark.slow if (v, s) in {('ATD', 2), ('ATD', 3)}
                         else (), id=f'{v}-x{s}') for v, s in sorted(PARAMS)]


@pytest.mark.parametrize('variant,scale', _variant_cases())
def test_published_variants_parameter_counts_and_detection(variant, scale):
    """The paper: ATD 20.26M and ATD-light 769K parameters (x4); x2 / x3 differ only in the
    upsampler (ATD-light x2: 753K). Their state dicts are detected as the variant's arguments
    (so they build the same keys: build is deterministic; tests/test_detection.py rebuilds)."""
    net = atd(upscale=scale, **VARIANTS[variant])
    total = sum(p.numel() for p in net.parameters())
    assert total == PARAMS[(variant, scale)]
    if scale == 4:
        assert round(total / 1e4) / 100 == 20.26 if variant == 'ATD' else round(total / 1e3) == 769
    found = detect_network(net.state_dict())
    assert found == {'type': 'ATD', **VARIANTS[variant], 'upscale': scale, 'in_chans': 3,
                     'qkv_bias': True, 'ape': False, 'patch_norm': True,
                     'resi_connection': '1conv'}


@pytest.fixture(scope='module')
def spandrel_atd():
    with pytest.MonkeyPatch.context() as patch:
        spandrel = spandrel_or_skip(patch)
        from spandrel.architectures.ATD import ATD
    return spandrel, ATD


def _perturbed(net: nn.Module, seed: int = 1) -> dict:
    """The state dict with every float entry moved off its initial value (the norms, scales
    and the dictionary are not left at ones / zeros / constants)."""
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.1 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
            for k, v in net.state_dict().items()}


# Sizes that need the padding; 24 tokens per category do not divide the token counts (the
# last category is filled up with the mirrored tail); '' / nearest+conv / 3conv too.
SPANDREL_CASES = [
    pytest.param(dict(upsampler='pixelshuffle', upscale=2, category_size=24), (13, 21), id='ps-x2'),
    pytest.param(dict(upsampler='pixelshuffledirect', upscale=3, category_size=24,
                      resi_connection='3conv', qkv_bias=False), (16, 9), id='psd-x3'),
    pytest.param(dict(upsampler='nearest+conv', upscale=4), (8, 12), id='nc-x4',
                 marks=pytest.mark.slow),
    pytest.param(dict(upsampler='', upscale=1, depths=[2, 3], num_heads=[2, 4]), (11, 16),
                 id='restoration', marks=pytest.mark.slow),
]


@pytest.fixture
def cuda_sort_order(monkeypatch):
    """torch.sort keeping equal keys in order, as it does on CUDA (spandrel and the authors call
    it with stable=False, which the CPU takes literally; ours sorts unique keys: see
    atd_blocks.category_order)."""
    real = torch.sort

    def stable_sort(*args, **kwargs):
        kwargs['stable'] = True
        return real(*args, **kwargs)
    monkeypatch.setattr(torch, 'sort', stable_sort)


@pytest.mark.parametrize('args,size', SPANDREL_CASES)
def test_outputs_equal_spandrels_bit_for_bit(spandrel_atd, cuda_sort_order, args, size):
    """The same random state dict in our ATD and spandrel's: the same keys in the same order
    (strict load), the same output to the bit in eval mode, and the same input gradient, with
    spandrel's category sort in CUDA's order (on an H200 the two are bit-equal as they are)."""
    _, Reference = spandrel_atd
    torch.manual_seed(0)
    config = {**TINY, **args}
    ours = atd(**config).eval()
    theirs = Reference(**config).eval()
    state = _perturbed(ours)
    ours.load_state_dict(state)
    theirs.load_state_dict(state, strict=True)
    assert list(theirs.state_dict()) == list(ours.state_dict())
    x = torch.rand(2, 3, *size)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
    scale = config['upscale']
    assert out_ours.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert torch.equal(out_ours, out_theirs)
    out_ours.square().mean().backward()
    out_theirs.square().mean().backward()
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, rtol=1e-5, atol=1e-8)


def test_spandrel_detects_our_files_with_the_same_arguments(spandrel_atd):
    """A state dict saved here is recognised by spandrel as ATD, with our arguments (spandrel
    also takes category_size as 128 for 48-channel one-step-upsampler nets, else 256)."""
    spandrel, _ = spandrel_atd
    args = dict(embed_dim=12, depths=[2, 3], num_heads=[2, 3], window_size=8, num_tokens=6,
                reducted_dim=3, convffn_kernel_size=5, mlp_ratio=1.5, category_size=256,
                upsampler='pixelshuffle', upscale=3)
    model = spandrel.ModelLoader().load_from_state_dict(atd(**args).state_dict())
    assert model.architecture.id == 'ATD' and model.scale == 3
    detected = model.model.hyperparameters
    assert {k: detected[k] for k in args} == args


@pytest.mark.slow  # the first non-reentrant checkpoint in a process imports torch._dynamo (~2.5 s)
def test_checkpointing_keeps_the_gradients_and_saves_memory():
    """use_checkpoint (the authors' name) recomputes each layer in backward: the same gradients
    in train mode (ATD has no dropout / drop path), fewer activation bytes held."""
    config = {**TINY, 'depths': [2, 2], 'num_heads': [2, 2], 'upsampler': 'pixelshuffledirect',
              'upscale': 2}
    torch.manual_seed(0)
    plain = atd(**config).train()
    checkpointed = atd(**config, use_checkpoint=True).train()
    checkpointed.load_state_dict(_perturbed(plain))
    plain.load_state_dict(checkpointed.state_dict())
    x = torch.rand(2, 3, 16, 16)
    for net in (plain, checkpointed):
        net(x).square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-6, msg=name)
    assert saved_activation_bytes(checkpointed, x) < saved_activation_bytes(plain, x)
    assert capability({'type': 'ATD'}).checkpointing


def test_padding_is_the_authors_mirror_and_any_size_runs():
    """The authors pad with cat([x, flip(x)]) cropped (the edge row repeated, unlike
    F.pad's reflect); inputs smaller than half a window (where their code fails) run too."""
    x = torch.rand(1, 2, 11, 6)
    authors = torch.cat([x, x.flip(2)], 2)[:, :, :16]
    authors = torch.cat([authors, authors.flip(3)], 3)[:, :, :, :8]
    assert torch.equal(symmetric_pad(x, 8)[..., :16, :8], authors)
    assert symmetric_pad(x, 8).shape[-2:] == (16, 8)
    tiny = torch.rand(1, 1, 2, 3)
    assert torch.equal(symmetric_pad(tiny, 8)[0, 0, :, 0], tiny[0, 0, [0, 1, 1, 0, 0, 1, 1, 0], 0])
    net = atd(upscale=2, upsampler='pixelshuffledirect', **{**TINY, 'window_size': 8}).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 3, 5)).shape == (1, 3, 6, 10)
    cap = capability({'type': 'ATD'})
    assert (cap.size_multiple, cap.min_size) == (1, 1)


def test_category_order_is_a_stable_sort():
    """Equal categories keep their token order (torch's CUDA sort; the CPU's unstable sort does
    not), wherever they are in the sequence."""
    torch.manual_seed(0)
    category = torch.randint(0, 5, (2, 300))
    order = category_order(category)
    assert torch.equal(order, torch.sort(category, dim=-1, stable=True)[1])
    for row, perm in zip(category, order):
        assert torch.equal(row[perm], row.sort()[0])
        for c in range(5):
            positions = perm[row[perm] == c]
            assert torch.equal(positions, positions.sort()[0])


def test_inverse_permutation_undoes_the_category_sort():
    torch.manual_seed(0)
    order = torch.stack([torch.randperm(37) for _ in range(3)])
    inverse = inverse_permutation(order)
    for row, inv in zip(order, inverse):  # the authors' index_reverse, row by row
        expected = torch.zeros_like(row)
        expected[row] = torch.arange(37)
        assert torch.equal(inv, expected)


def test_output_depends_on_far_pixels_so_it_does_not_tile():
    """A change in one corner moves the output in the opposite corner, beyond any window: the
    dictionary refinement and the category attention span the image (tiles_exactly False)."""
    torch.manual_seed(0)
    net = atd(upscale=2, upsampler='pixelshuffledirect', **TINY).eval()
    x = torch.rand(1, 3, 32, 32)
    y = x.clone()
    y[..., :4, :4] = 1 - y[..., :4, :4]
    with torch.no_grad():
        far = (net(x) - net(y))[..., 48:, 48:]
    assert far.abs().max() > 1e-6
    assert not capability({'type': 'ATD'}).tiles_exactly


@pytest.mark.parametrize('upsampler,scales', [('pixelshuffle', SCALES_2N_3),
                                              ('pixelshuffledirect', ANY_SCALE),
                                              ('nearest+conv', (4,)), ('', (1,))])
def test_scales_and_needs_follow_the_upsampler(upsampler, scales):
    options = {'type': 'ATD', 'upsampler': upsampler, 'upscale': 4}
    assert capability(options).scales == scales
    needs = network_needs(options)
    assert needs.scale == (4 if upsampler else 1) and needs.in_key == 'in_chans'


def test_wrong_arguments_are_refused():
    with pytest.raises(ValueError, match='upsampler'):
        atd(upsampler='pixelshuffel')
    with pytest.raises(ValueError, match='upscale 4'):
        atd(upsampler='nearest+conv', upscale=2)
    with pytest.raises(ValueError, match='differ in length'):
        atd(depths=[2, 2], num_heads=[2])


def official_file(variant: str, scale: int) -> Path:
    """The released file, or a skip naming what to place where and what it is checked against."""
    name = OFFICIAL[(variant, scale)]
    path = ATD_WEIGHTS / f'{name}.pth'
    if not path.is_file():
        psnr, ssim = PUBLISHED_SET5[(variant, scale)]
        pytest.skip(f"place the authors' {name}.pth (Google Drive 'pretrained models' link in "
                    f'the Adaptive-Token-Dictionary README) at {path}; Set5 is checked against '
                    f'the published {psnr} dB / {ssim}')
    if (variant, scale) in SHA256:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256[(variant, scale)], \
            f'{path} is not the release'
    return path


@pytest.mark.parametrize('variant,scale', sorted(OFFICIAL))
def test_official_weights_load_strictly(variant, scale):
    path = official_file(variant, scale)
    load_weights_into(atd(upscale=scale, **VARIANTS[variant]), str(path), strict=True)


@pytest.mark.slow
@pytest.mark.reproduction
@pytest.mark.parametrize('variant,scale', sorted(OFFICIAL))
def test_official_weights_reproduce_published_set5(variant, scale, tmp_path, monkeypatch):
    """Set5 Y-PSNR / SSIM of the released weights (whole images, as the authors' test.py)
    against the paper's Tables (0.01 dB / 0.0005). ATD-light takes seconds on one core; the
    20M-parameter ATD about a minute or more (Set5 only)."""
    official_file(variant, scale)
    monkeypatch.chdir(ROOT)  # the option files' paths are relative to the repository root
    stem = OFFICIAL[(variant, scale)].split('_', 1)[1]
    results = run_test_py(ROOT / f'options/test/ATD/test_{stem}.yml', tmp_path, {'Set5'})
    psnr, ssim = PUBLISHED_SET5[(variant, scale)]
    assert results['Set5']['mean']['psnr'] == pytest.approx(psnr, abs=0.01)
    assert results['Set5']['mean']['ssim'] == pytest.approx(ssim, abs=0.0005)


def test_option_files_are_the_authors_arguments():
    """Every shipped ATD option file builds one of the two published variants."""
    files = sorted((ROOT / 'options').rglob('ATD/*.yml'))
    assert len(files) == 13
    for path in files:
        net = yaml.safe_load(path.read_text())['network_g']
        variant = 'ATD-light' if net['embed_dim'] == 48 else 'ATD'
        assert {k: net[k] for k in VARIANTS[variant]} == VARIANTS[variant], path.name
