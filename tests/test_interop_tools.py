"""The interop tools on real files (issue 28): ``logger.check_interop`` on a tiny run's
checkpoints, ``basicsr-check-interop`` on its experiment folder and on bare files (architecture
detected from the weights, RCAN exported into the layout spandrel recognises).

spandrel comes through tests/spandrel_support.py (a torchvision stand-in where torchvision is
missing: see its docstring)."""
from __future__ import annotations

from pathlib import Path

import pytest

from basicsr_lite.archs import build_network
from basicsr_lite.runtime.weights import load_torch, save_torch
from basicsr_lite.tools import check_interop
from tests.runs import train_in_process
from tests.spandrel_support import spandrel  # noqa: F401  (fixture)

COMPACT = {'type': 'SRVGGNetCompact', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8,
           'num_conv': 2, 'upscale': 2}


def tiny_run(tmp_path, tiny_opt, **logger):
    tiny_opt['network_g'] = dict(COMPACT)
    tiny_opt['train']['total_iter'] = 3
    tiny_opt['logger'].update(logger)
    assert train_in_process(tmp_path, tiny_opt) == 0
    return Path(tiny_opt['path']['experiments_root'])


def test_check_interop_logs_one_line_per_checkpoint(spandrel, tmp_path, tiny_opt):
    root = tiny_run(tmp_path, tiny_opt, check_interop=True)
    log = next(root.glob('train_*.log')).read_text()
    lines = [line for line in log.splitlines() if 'interop check' in line]
    assert len(lines) == 1, lines
    assert 'interop check passes for SRVGGNetCompact: spandrel Compact x2' in lines[0]
    assert 'net_g_3.pth' in lines[0]


def test_the_tool_on_an_experiment_folder(spandrel, tmp_path, tiny_opt, capsys):
    root = tiny_run(tmp_path, tiny_opt)
    assert 'interop check' not in next(root.glob('train_*.log')).read_text()  # off by default
    assert check_interop.main([str(root)]) == 0
    out = capsys.readouterr().out
    assert 'net_g_latest.pth' in out and 'interop check passes for SRVGGNetCompact' in out
    assert "'num_conv': 2" in out and 'fp16: spandrel True / our table True' in out


def test_the_tool_detects_a_bare_file_and_exports_rcan(spandrel, tmp_path, capsys):
    options = {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_group': 1,
               'num_block': 2, 'upscale': 2}
    net = build_network(options)
    save_torch({'params': net.state_dict()}, tmp_path / 'rcan.pth')
    out_file = tmp_path / 'rcan_spandrel.pth'
    assert check_interop.main([str(tmp_path / 'rcan.pth'), '--export', str(out_file)]) == 0
    out = capsys.readouterr().out
    assert 'interop check passes for RCAN' in out and "'n_resblocks': 2" in out
    exported = load_torch(out_file)['params']
    assert 'head.0.weight' in exported and 'sub_mean.weight' in exported
    loaded = spandrel.ModelLoader().load_from_state_dict(exported)  # what chaiNNer does
    assert loaded.architecture.id == 'RCAN'
    assert check_interop.main([str(out_file)]) == 0  # the export is detected and loads here


def test_the_tool_fails_for_an_arch_spandrel_lacks(tmp_path, capsys):
    net = build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8,
                         'num_block': 1, 'upscale': 2})
    save_torch({'params': net.state_dict()}, tmp_path / 'edsr.pth')
    assert check_interop.main([str(tmp_path / 'edsr.pth')]) == 1
    assert 'spandrel 0.4.2 has no EDSR' in capsys.readouterr().out


def test_a_self_describing_safetensors_file_needs_no_option_file(spandrel, tmp_path, capsys):
    """safetensors metadata ``network_g`` (JSON options) names the network; it wins over
    detection (here: RRDBNet's grow channels 32, which detection would find too)."""
    pytest.importorskip('safetensors')
    import json
    from safetensors.torch import save_file
    options = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 4, 'num_feat': 8,
               'num_block': 1, 'num_grow_ch': 32}
    state = {k: v.contiguous() for k, v in build_network(options).state_dict().items()}
    save_file(state, str(tmp_path / 'net.safetensors'),
              metadata={'network_g': json.dumps(options)})
    assert check_interop.main([str(tmp_path / 'net.safetensors')]) == 0
    out = capsys.readouterr().out
    assert 'interop check passes for RRDBNet: spandrel ESRGAN x4' in out


def test_the_hook_says_once_when_spandrel_lacks_the_arch(tmp_path, tiny_opt):
    tiny_opt['train']['total_iter'] = 6  # two checkpoints, MSRResNet
    tiny_opt['logger'].update(check_interop=True)
    assert train_in_process(tmp_path, tiny_opt) == 0
    log = next(Path(tiny_opt['path']['experiments_root']).glob('train_*.log')).read_text()
    lines = [line for line in log.splitlines() if 'logger.check_interop:' in line]
    assert len(lines) == 1 and 'spandrel 0.4.2 has no MSRResNet' in lines[0], lines
