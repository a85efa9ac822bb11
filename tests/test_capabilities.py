"""The framework acts on the capability table (basicsr_lite/archs/capabilities.py): fp16 with an
fp16-unsafe network and unbuildable scales are option errors; validation, test and tiled
inference pad inputs to the network's size multiple."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from basicsr_lite.archs import build_network
from basicsr_lite.archs import capabilities as caps
from basicsr_lite.errors import OptionError
from basicsr_lite.models import build_model
from basicsr_lite.options import validate_options
from basicsr_lite.runtime.tiling import padded_forward, tiled_inference

SWINIR = {'type': 'SwinIR', 'img_size': 16, 'window_size': 4, 'embed_dim': 12, 'depths': [2],
          'num_heads': [2], 'mlp_ratio': 2, 'upsampler': 'pixelshuffledirect', 'upscale': 2}


def test_fp16_with_an_fp16_unsafe_network_is_an_option_error_suggesting_bf16(tiny_opt):
    tiny_opt['network_g'] = SWINIR
    tiny_opt['train']['amp'] = 'fp16'
    with pytest.raises(OptionError, match=r'train.amp: fp16 is unsafe for SwinIR .*use amp: bf16'):
        validate_options(tiny_opt, True)
    tiny_opt['train']['amp'] = 'bf16'
    validate_options(tiny_opt, True)


def test_fp16_with_an_fp16_safe_network_is_accepted(tiny_opt):
    tiny_opt['train']['amp'] = 'fp16'
    assert validate_options(tiny_opt, True)['train']['amp'] == 'fp16'


def test_a_scale_the_network_cannot_build_is_an_option_error(tiny_opt):
    tiny_opt['network_g']['upscale'] = 8
    with pytest.raises(OptionError, match=r'network_g.upscale: MSRResNet builds scales 2, 3, '
                                          r'4; got 8'):
        validate_options(tiny_opt, True)


def test_scales_that_depend_on_constructor_arguments():
    assert caps.capability(SWINIR).scales is caps.ANY_SCALE
    assert caps.capability({**SWINIR, 'upsampler': 'pixelshuffle'}).scales == caps.SCALES_2N_3
    assert caps.capability({**SWINIR, 'upsampler': 'nearest+conv'}).scales == (4,)


def test_an_archs_needs_raise_the_size_multiple():
    assert caps.capability({'type': 'UNetGenerator', 'num_downs': 5}).size_multiple == 32
    assert caps.capability({'type': 'UNetGenerator', 'num_downs': 6}).size_multiple == 64


def test_padded_forward_pads_to_the_multiple_and_crops_back():
    torch.manual_seed(0)
    net = build_network({'type': 'UNetGenerator', 'num_downs': 5, 'num_feat': 4}).eval()
    x = torch.rand(1, 3, 40, 44)
    with pytest.raises(ValueError, match="divisible by 32"):
        net(x)
    with torch.no_grad():
        out = padded_forward(net, 32, 1)(x)
        expected = net(F.pad(x, (0, 20, 0, 24), mode='reflect'))[..., :40, :44]
    assert torch.equal(out, expected)
    # smaller than the padding needs: replicate instead of reflect
    assert padded_forward(net, 32, 1)(torch.rand(1, 3, 8, 8)).shape[-2:] == (8, 8)
    assert padded_forward(net, 1, 1) is net


def test_tiles_are_padded_too():
    torch.manual_seed(0)
    net = build_network({'type': 'UNetGenerator', 'num_downs': 5, 'num_feat': 4}).eval()
    lq = torch.rand(1, 3, 40, 40)
    out = tiled_inference(padded_forward(net, 32, 1), lq, 1, tile=24, overlap=4, clamp=False)
    assert out.shape == (1, 3, 40, 40) and torch.isfinite(out).all()


def test_validation_pads_the_input_to_the_table_multiple(tiny_opt, monkeypatch):
    """With MSRResNet's row saying 'multiples of 8', SRModel.test gives the network a 16 x 16
    input for a 13 x 11 image and returns the crop of that output."""
    row = caps.CAPABILITIES['MSRResNet']
    monkeypatch.setitem(caps.CAPABILITIES, 'MSRResNet', dataclasses.replace(row, size_multiple=8))
    opt = validate_options(copy.deepcopy(tiny_opt), True)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    model = build_model(opt, torch.device('cpu'))
    seen = []
    net = model.inference_network()
    net.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    lq = torch.rand(1, 3, 13, 11)
    model.feed_data({'lq': lq})
    model.test()
    assert seen == [(1, 3, 16, 16)]
    with torch.no_grad():
        expected = net.eval()(F.pad(lq, (0, 5, 0, 3), mode='reflect'))[..., :26, :22]
    assert torch.equal(model.output, expected)



def test_measured_channels_last_verdicts_name_registered_archs():
    from basicsr_lite.registry import ARCH_REGISTRY
    assert set(caps.CHANNELS_LAST_ON_CUDA) <= set(ARCH_REGISTRY.keys())
    assert set(caps.CHANNELS_LAST_ON_CUDA.values()) <= {'helps', 'hurts', 'neutral'}
    assert caps.capability({'type': 'MSRResNet'}).channels_last == 'helps'


def test_the_capability_table_is_current(tmp_path, capsys):
    """docs/reference/architectures.md holds the table the capabilities make (regenerate it with
    python tools/capability_table.py); the check fails on a stale copy, the tool rewrites it."""
    from tests.conftest import load_tool
    tool = load_tool('capability_table')
    assert tool.main(['--check']) == 0, capsys.readouterr().out
    stale = tmp_path / 'page.md'
    stale.write_text(tool.PAGE.read_text().replace('| EDSR | 2, 3, 4, 8 |', '| EDSR | 2, 3 |'))
    assert tool.main(['--check', str(stale)]) == 1
    assert 'regenerate it with python tools/capability_table.py' in capsys.readouterr().out
