"""tools/interpolate.py (ESRGAN's DNI, issue 28): values, forms, and the checks of one
architecture."""
from __future__ import annotations

import pytest
import torch

from basicsr_lite.archs import build_network
from basicsr_lite.errors import UserError
from basicsr_lite.runtime.weights import load_torch, load_weights, save_torch
from basicsr_lite.tools import interpolate

EDSR = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
        'upscale': 2}


def constant(value: float, options: dict = EDSR) -> dict:
    return {k: torch.full_like(v, value) for k, v in build_network(options).state_dict().items()}


def test_basicsr_form_both_groups(tmp_path):
    save_torch({'params': constant(1.0), 'params_ema': constant(2.0)}, tmp_path / 'a.pth')
    save_torch({'params': constant(3.0), 'params_ema': constant(6.0)}, tmp_path / 'b.pth')
    assert interpolate.main([str(tmp_path / 'a.pth'), str(tmp_path / 'b.pth'), '--alpha',
                             '0.25', '-o', str(tmp_path / 'c.pth')]) == 0
    out = load_torch(tmp_path / 'c.pth')
    assert set(out) == {'params', 'params_ema'}
    assert all(torch.all(v == 1.5) for v in out['params'].values())   # 0.75 * 1 + 0.25 * 3
    assert all(torch.all(v == 3.0) for v in out['params_ema'].values())  # 0.75 * 2 + 0.25 * 6
    # the result loads into the network
    build_network(EDSR).load_state_dict(out['params'])


def test_bare_and_wrapped_files_and_safetensors(tmp_path):
    pytest.importorskip('safetensors')
    save_torch(constant(0.0), tmp_path / 'a.pth')                               # bare
    save_torch({'state_dict': {f'module.{k}': v for k, v in constant(10.0).items()}},
               tmp_path / 'b.pth')                                              # wrapped
    save_torch({'params': constant(1.0)}, tmp_path / 'p.pth')
    with pytest.raises(UserError, match='not the same form'):  # BasicSR vs bare
        interpolate.interpolate(str(tmp_path / 'p.pth'), str(tmp_path / 'a.pth'), 0.5)
    assert interpolate.main([str(tmp_path / 'a.pth'), str(tmp_path / 'b.pth'), '--alpha',
                             '0.3', '-o', str(tmp_path / 'c.safetensors')]) == 0
    out = load_weights(tmp_path / 'c.safetensors')
    assert all(torch.allclose(v, torch.full_like(v, 3.0)) for v in out.values())
    assert set(out) == set(constant(0.0))  # bare in, bare out


def test_different_architectures_are_listed(tmp_path, capsys):
    save_torch({'params': constant(1.0)}, tmp_path / 'a.pth')
    save_torch({'params': constant(1.0, {**EDSR, 'num_block': 2, 'upscale': 3})},
               tmp_path / 'b.pth')
    assert interpolate.main([str(tmp_path / 'a.pth'), str(tmp_path / 'b.pth'), '--alpha',
                             '0.5', '-o', str(tmp_path / 'c.pth')]) == 2
    err = capsys.readouterr().err
    assert 'not the same architecture' in err
    assert '[params] only in the second (4): body.1.conv1.bias' in err
    assert 'upsample.0.weight (32, 8, 3, 3) vs (72, 8, 3, 3)' in err


def test_alpha_out_of_range(tmp_path):
    save_torch({'params': constant(1.0)}, tmp_path / 'a.pth')
    with pytest.raises(UserError, match='between 0'):
        interpolate.interpolate(str(tmp_path / 'a.pth'), str(tmp_path / 'a.pth'), 1.5)
