"""Any checkpoint as a start (issue 28): the wrappers and prefixes found in the wild load, and
each detectable architecture is found again, with its constructor arguments, from its weights
alone (non-default values: build -> state dict -> detect -> the same options)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from basicsr_lite.archs import build_network
from basicsr_lite.archs.detection import DETECTORS, detect, detect_network
from basicsr_lite.errors import CheckpointError, UserError
from basicsr_lite.registry import ARCH_REGISTRY
from basicsr_lite.runtime.weights import extract_state_dict, load_weights_into, save_torch

ROUND_TRIPS = {
    'ATD': dict(in_chans=3, embed_dim=12, depths=[2, 1], num_heads=[2, 3], window_size=4,
                category_size=256, num_tokens=6, reducted_dim=3, convffn_kernel_size=3,
                mlp_ratio=1.5, qkv_bias=False, ape=False, patch_norm=True,
                resi_connection='3conv', upsampler='pixelshuffle', upscale=3),
    'EDSR': dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=3, upscale=3),
    'FSRCNN': dict(num_in_ch=3, d=8, s=4, m=2, upscale=3),
    'IMDN': dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_block=3, upscale=3),
    'MSRResNet': dict(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=3, upscale=3),
    'OmniSR': dict(num_in_ch=3, num_out_ch=3, num_feat=16, res_num=2, block_num=1,
                   window_size=4, upsampling=3, bias=False, pe=True),
    'PAN': dict(num_in_ch=3, num_out_ch=3, num_feat=8, unf=6, num_block=2, upscale=4),
    'RCAN': dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_group=2, num_block=3,
                 squeeze_factor=4, upscale=8),
    'RFDN': dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_block=3, upscale=2),
    'RRDBNet': dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=8, num_block=2, num_grow_ch=4),
    'PLKSR': dict(dim=16, n_blocks=3, upscaling_factor=3, ccm_type='ICCM', kernel_size=9,
                  split_ratio=0.5, lk_type='RectSparsePLK', use_ea=False),
    'RealPLKSR': dict(dim=16, n_blocks=2, upscaling_factor=2, kernel_size=7, split_ratio=0.5,
                      use_ea=False, dysample=True, layer_norm=True),
    'SwinIR': dict(in_chans=3, embed_dim=12, depths=[2, 1], num_heads=[2, 3], window_size=4,
                   mlp_ratio=1.5, qkv_bias=False, ape=False, patch_norm=True,
                   resi_connection='3conv', upsampler='pixelshuffle', upscale=3),
    'SFTMD': dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, upscale=4, num_meta=3,
                  sft_hidden=6),
    'SRFormer': dict(in_chans=3, embed_dim=16, depths=[2, 1], num_heads=[2, 4], window_size=4,
                     mlp_ratio=1.5, qkv_bias=False, ape=False, patch_norm=True, img_size=16,
                     resi_connection='3conv', upsampler='pixelshuffle', upscale=3),
    'UNetDiscriminatorSN': dict(num_in_ch=1, num_feat=4),
    'VGGStyleDiscriminator': dict(num_in_ch=3, num_feat=4, input_size=256),
    'SRVGGNetCompact': dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=3, upscale=3,
                            act_type='prelu'),
    'BSRN': dict(num_in_ch=3, num_feat=16, num_block=2, num_out_ch=3, upscale=3,
                 conv='BSConvS', p=0.5),
    'BSRN_S': dict(num_in_ch=3, num_feat=8, num_block=2, num_out_ch=3, upscale=3),
    'LKDN': dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_atten=6, num_block=2, upscale=3,
                 num_in=2, conv='BSConvU_rep', upsampler='pixelshuffle_rep'),
    'RLFN': dict(in_channels=3, out_channels=3, feature_channels=12, upscale=3),
    'RLFN_S': dict(in_channels=3, out_channels=3, feature_channels=48, upscale=2),
    'RLFN_Prune': dict(in_channels=3, out_channels=3, feature_channels=10, mid_channels=6,
                       upscale=3),
    'SAFMN': dict(dim=8, n_blocks=2, ffn_scale=1.5, upscaling_factor=3),
    'SAFMN_NTIRE23': dict(dim=8, n_blocks=2, ffn_scale=1.5, upscaling_factor=2),
    'SAFMNPP': dict(dim=9, n_blocks=2, ffn_scale=2.0, upscaling_factor=3),
    'SAFMN_VIS24': dict(dim=8, n_blocks=2, ffn_scale=1.5, upscaling_factor=3),
    'SAFMN_NTIRE25': dict(dim=16, num_blocks=2, ffn_scale=2.0, upscaling_factor=3),
    'SPAN': dict(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=3, deploy=True,
                 cat_channels=6),
    'HAT': dict(in_chans=3, embed_dim=12, depths=[2, 1], num_heads=[2, 3], window_size=4,
                overlap_ratio=0.5, compress_ratio=4, squeeze_factor=6, mlp_ratio=1.5,
                qkv_bias=False, ape=False, patch_norm=True, resi_connection='identity',
                upsampler='pixelshuffle', upscale=3),
    'DRCT': dict(in_chans=3, embed_dim=12, depths=[6, 6], num_heads=[3, 2], window_size=4,
                 img_size=16, mlp_ratio=1.5, qkv_bias=False, ape=False, patch_norm=False,
                 resi_connection='1conv', upsampler='pixelshuffle', upscale=4, gc=4),
    'DAT': dict(in_chans=3, embed_dim=32, depth=[3, 1], num_heads=[4, 2], split_size=[2, 4],
                expansion_factor=1.5, qkv_bias=False, resi_connection='3conv', img_size=16,
                upsampler='pixelshuffle', upscale=3),
    'RGT': dict(in_chans=1, embed_dim=32, depth=[1, 2], num_heads=[2, 4], split_size=[4, 4],
                mlp_ratio=1.5, qkv_bias=True, resi_connection='1conv', c_ratio=0.25, upscale=4),
    'PatchGANDiscriminatorSN': dict(input_nc=1, ndf=4, n_layers=2),
    'MultiscalePatchGANDiscriminatorSN': dict(input_nc=3, ndf=4, n_layers=1, num_d=2),
}


@pytest.mark.parametrize('name', sorted(ROUND_TRIPS))
def test_detection_round_trip(name):
    options = {'type': name, **ROUND_TRIPS[name]}
    state = build_network(options).state_dict()
    found = detect_network(state)
    if name == 'FSRCNN':  # its scale is the transposed conv's stride: not in the weights
        assert 'upscale' not in found
        found['upscale'] = options['upscale']
    assert found == options


@pytest.mark.parametrize('upsampler, upscale', [('pixelshuffledirect', 4), ('nearest+conv', 4),
                                                ('', 1), ('pixelshuffle', 8)])
def test_swinir_upsamplers_are_detected(upsampler, upscale):
    options = {'type': 'SwinIR', **ROUND_TRIPS['SwinIR'], 'resi_connection': '1conv',
               'ape': True, 'img_size': 16, 'upsampler': upsampler, 'upscale': upscale}
    assert detect_network(build_network(options).state_dict()) == options  # ape: img_size too


@pytest.mark.parametrize('conv', ['BSConvU', 'DepthWiseConv', 'Conv2d', 'BSConvS'])
def test_bsrn_convs_are_told_apart(conv):
    """BSConvU and DepthWiseConv share key names (told apart by c4's depthwise width);
    BSConvS at the default p, which the weights cannot tell from nearby values."""
    options = {'type': 'BSRN', **ROUND_TRIPS['BSRN'], 'conv': conv}
    options.pop('p')
    found = detect_network(build_network(options).state_dict())
    assert found == ({**options, 'p': 0.25} if conv == 'BSConvS' else options)


def test_span_trained_form_is_detected():
    """The trained form (``sk`` / ``conv.*`` beside ``eval_conv``) with the official topology
    (no cat_channels): deploy False."""
    options = {'type': 'SPAN', 'num_in_ch': 3, 'num_out_ch': 3, 'feature_channels': 8,
               'upscale': 4, 'deploy': False}
    assert detect_network(build_network(options).state_dict()) == options


def test_rlfn_and_rlfn_s_are_one_layout_read_by_width():
    """RLFN and RLFN_S build the same keys and shapes: width 48 is RLFN_S, others RLFN."""
    rlfn48 = build_network({'type': 'RLFN', 'feature_channels': 48, 'upscale': 2})
    assert detect_network(rlfn48.state_dict())['type'] == 'RLFN_S'
    s12 = build_network({'type': 'RLFN_S', 'feature_channels': 12, 'upscale': 2})
    assert detect_network(s12.state_dict())['type'] == 'RLFN'


def test_weights_of_two_networks_are_one_clear_error():
    """A file holding the keys of two detected networks names both (no silent first pick)."""
    rlfn = build_network({'type': 'RLFN', **ROUND_TRIPS['RLFN']}).state_dict()
    safmn = build_network({'type': 'SAFMN', **ROUND_TRIPS['SAFMN']}).state_dict()
    with pytest.raises(UserError, match=r'fit several architectures \(RLFN, SAFMN\)'):
        detect_network({**rlfn, **safmn})


def test_every_detector_has_a_round_trip_and_names_a_registered_arch():
    assert set(DETECTORS) == set(ROUND_TRIPS)
    assert set(DETECTORS) <= set(ARCH_REGISTRY.keys())


def test_every_registered_arch_is_detected_or_listed_with_a_reason():
    from basicsr_lite.archs.detection import NOT_DETECTED
    without = {name for name in ARCH_REGISTRY.keys() if name not in DETECTORS
               and getattr(ARCH_REGISTRY.get(name), 'detect_options', None) is None}
    assert without == set(NOT_DETECTED), 'add a detector or a NOT_DETECTED entry'
    assert not set(NOT_DETECTED) & set(DETECTORS)


CASES = Path(__file__).resolve().parent / 'fixtures' / 'arch_cases'


@pytest.mark.parametrize('case', sorted(p.stem for p in CASES.glob('*.yml')))
def test_no_registered_arch_is_taken_for_another(case):
    """Every contract-test case is detected as itself (or the name SAME_NETWORK gives), or
    (no detector) as nothing."""
    from basicsr_lite.archs.detection import SAME_NETWORK
    args = yaml.safe_load((CASES / f'{case}.yml').read_text())['args']
    found = [o['type'] for o in detect(build_network({'type': case, **args}).state_dict())]
    expected = SAME_NETWORK.get(case, case)
    assert found == ([expected] if expected in DETECTORS else []), found


def test_rcan_in_the_authors_layout_is_detected_with_its_mean_shift():
    from basicsr_lite.archs.rcan_arch import to_authors_layout
    options = {'type': 'RCAN', **ROUND_TRIPS['RCAN']}
    state = to_authors_layout(build_network(options).state_dict(), 100.0, (0.25, 0.5, 0.75))
    assert detect_network(state) == {**options, 'img_range': 100.0, 'rgb_mean': [0.25, 0.5, 0.75]}


def test_unknown_weights_are_one_clear_error():
    with pytest.raises(UserError, match=r"no architecture here recognises these weights \(2 "
                                        r"tensors, e.g. foo.weight \(4, 3\)"):
        detect_network({'foo.weight': torch.zeros(4, 3), 'foo.bias': torch.zeros(4)})


@pytest.fixture
def small():
    net = build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8,
                         'num_block': 1, 'upscale': 2})
    return net, {k: v + 1 for k, v in net.state_dict().items()}


WRAPPED = {
    'params_ema': lambda s: {'params_ema': s},
    'params': lambda s: {'params': s, 'iter': 3},
    'state_dict': lambda s: {'state_dict': s, 'epoch': 1},
    'model': lambda s: {'model': s},
    'net': lambda s: {'net': s},
    'netG': lambda s: {'netG': s, 'optimizer': {'lr': 1}},
    'module.': lambda s: {f'module.{k}': v for k, v in s.items()},
    '_orig_mod.': lambda s: {'params': {f'_orig_mod.{k}': v for k, v in s.items()}},
    'nested+both': lambda s: {'state_dict': {'model': {f'module._orig_mod.{k}': v
                                                       for k, v in s.items()}}},
}


@pytest.mark.parametrize('form', sorted(WRAPPED))
def test_wrappers_and_prefixes_load(small, tmp_path, form):
    net, state = small
    path = tmp_path / 'w.pth'
    save_torch(WRAPPED[form](state), path)
    key = 'params_ema' if form == 'params_ema' else 'params'
    load_weights_into(net, str(path), param_key=None if form not in WRAPPED else key)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())


def test_safetensors_file_loads(small, tmp_path):
    pytest.importorskip('safetensors')
    from safetensors.torch import save_file
    net, state = small
    save_file({f'module.{k}': v.contiguous() for k, v in state.items()},
              str(tmp_path / 'w.safetensors'))
    load_weights_into(net, str(tmp_path / 'w.safetensors'))
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())


def test_ambiguous_wrappers_are_one_error_naming_what_was_found(small):
    _, state = small
    with pytest.raises(CheckpointError, match=r"ambiguous: it has several weight wrappers "
                                              r"\(state_dict, model\).*conv_first.weight"):
        extract_state_dict({'state_dict': state, 'model': state}, None, 'x.pth')


def test_a_file_without_weights_names_its_keys():
    with pytest.raises(CheckpointError, match=r"top-level keys optimizer \(dict\), iter \(int\)"):
        extract_state_dict({'optimizer': {'lr': 1}, 'iter': 3}, 'params', 'x.pth')


def test_a_scale_the_weights_do_not_show_comes_from_the_options():
    from basicsr_lite.archs.detection import with_scale
    fsrcnn = detect_network(build_network({'type': 'FSRCNN', **ROUND_TRIPS['FSRCNN']}).state_dict())
    with pytest.raises(UserError, match="FSRCNN's weights do not show its scale"):
        with_scale(fsrcnn, None, 'w.pth')
    assert with_scale(fsrcnn, 3, 'w.pth')['upscale'] == 3
    pan = {'type': 'PAN', **ROUND_TRIPS['PAN']}
    assert with_scale(pan, None, 'w.pth') == pan  # x4 has its own layers: no ambiguity
    pan2 = {**pan, 'upscale': 2}
    assert with_scale(detect_network(build_network({**pan, 'upscale': 3}).state_dict()), 3,
                      'w.pth') == {**pan2, 'upscale': 3}


SHARED = Path(__file__).resolve().parent.parent.parent / 'shared' / 'weights'
RELEASED = {  # file: (scale given, the authors' configuration)
    'Compact/realesr-animevideov3.pth': (4, dict(type='SRVGGNetCompact', num_in_ch=3,
                                                 num_out_ch=3, num_feat=64, num_conv=16,
                                                 upscale=4, act_type='prelu')),
    'FSRCNN/fsrcnn_x3.pth': (3, dict(type='FSRCNN', num_in_ch=1, d=56, s=12, m=4, upscale=3)),
    'IMDN/IMDN_x3.pth': (3, dict(type='IMDN', num_in_ch=3, num_out_ch=3, num_feat=64,
                                 num_block=6, upscale=3)),
    'PAN/PANx3_DF2K.pth': (3, dict(type='PAN', num_in_ch=3, num_out_ch=3, num_feat=40, unf=24,
                                   num_block=16, upscale=3)),
    'RFDN/RFDN_AIM_x4.pth': (4, dict(type='RFDN', num_in_ch=3, num_out_ch=3, num_feat=50,
                                     num_block=4, upscale=4)),
}


@pytest.mark.parametrize('name', sorted(RELEASED))
def test_released_files_are_detected_and_load(name):
    if not (SHARED / name).is_file():
        pytest.skip(f'{SHARED / name} is absent (../shared holds the released weights)')
    from basicsr_lite.archs.detection import options_from_weights
    scale, expected = RELEASED[name]
    options = options_from_weights(str(SHARED / name), None, scale)
    assert options == expected
    load_weights_into(build_network(options), str(SHARED / name), param_key=None)


ROOT = Path(__file__).resolve().parent.parent
DETECTED_DIRS = ('BSRN', 'LKDN', 'RLFN', 'SAFMN', 'SPAN')  # ../shared/weights/<dir>
RELEASED_OPTION_FILES = sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / 'options' / 'test').glob('*/*.yml')
    if str(yaml.safe_load(p.read_text()).get('path', {}).get('pretrain_network_g') or '')
    .startswith(tuple(f'../shared/weights/{d}/' for d in DETECTED_DIRS)))


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def test_every_released_file_has_a_test_option_file():
    if not SHARED.is_dir():
        pytest.skip(f'{SHARED} is absent (../shared holds the released weights)')
    named = {yaml.safe_load((ROOT / f).read_text())['path']['pretrain_network_g']
             for f in RELEASED_OPTION_FILES}
    files = {f'../shared/weights/{p.relative_to(SHARED)}' for d in DETECTED_DIRS
             for p in (SHARED / d).glob('*.pth')}
    assert files and files <= named, sorted(files - named)


@pytest.mark.parametrize('option_file', RELEASED_OPTION_FILES)
def test_released_file_is_detected_as_its_option_file_says(option_file):
    """The detected network is the option file's (argument for argument, defaults filled in;
    an alias's name counts as its class) and the file loads into it strictly."""
    from basicsr_lite.archs.constraints import constructor_args
    from basicsr_lite.archs.detection import options_from_weights
    opt = yaml.safe_load((ROOT / option_file).read_text())
    path = ROOT / opt['path']['pretrain_network_g']
    if not path.is_file():
        pytest.skip(f'{path} is absent (../shared holds the released weights)')
    key = opt['path'].get('param_key_g')
    found = options_from_weights(str(path), key, opt.get('scale'))
    stated = opt['network_g']
    cls = ARCH_REGISTRY.get(stated['type'])
    assert ARCH_REGISTRY.get(found['type']) is cls, (found['type'], stated['type'])
    ours = {k: _plain(v) for k, v in constructor_args(cls, found).items()}
    theirs = {k: _plain(v) for k, v in constructor_args(cls, stated).items()}
    assert ours == theirs
    load_weights_into(build_network(found), str(path), param_key=key)
