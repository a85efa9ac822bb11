"""ONNX that is checked (issue 28): fp16 / bf16 export checked against PyTorch on the demo images,
fp16 refused for fp16-unsafe networks, --slim, the flags for op types TensorRT / NCNN reject, and
the registry-wide table of docs/reference/architectures.md (tools/onnx_table.py). The default suite keeps the fast
ones; fp32 / bf16 / a flag-free export and the whole-registry table are marked slow."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from basicsr_lite.archs import build_network
from basicsr_lite.runtime.weights import save_torch
from tests.conftest import load_tool

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

ROOT = Path(__file__).resolve().parent.parent
TINY_IMDN = ['num_feat=16', 'num_block=2']


def tiny_weights(tmp_path: Path, arch: str, extra: list[str], scale: int = 2) -> Path:
    import yaml
    torch.manual_seed(0)
    args = {k: yaml.safe_load(v) for k, v in (item.split('=') for item in extra)}
    net = build_network({'type': arch, 'upscale': scale, **args})
    save_torch(net.state_dict(), tmp_path / 'w.pth')
    return tmp_path / 'w.pth'


def export(tmp_path: Path, *more: str, arch: str = 'IMDN', extra: list[str] = TINY_IMDN) -> list:
    weights = tiny_weights(tmp_path, arch, extra)
    return ['--arch', arch, '--scale', '2', '--arch-opt', *extra, '--weights', str(weights),
            '--output', str(tmp_path / 'm.onnx'), '--size', '16', *more]


def diffs(out: str) -> list[float]:
    return [float(v) for v in re.findall(r'max \|diff\| ([0-9.e+-]+)', out)]


def input_type(path: Path) -> int:
    return onnx.load(str(path)).graph.input[0].type.tensor_type.elem_type


def test_fp16_export_runs_in_onnxruntime_close_to_torch_fp32_on_the_demo_images(tmp_path, capsys):
    """fp16 weights, input and output; onnxruntime's CPU provider runs it. Tolerance: 5e-3 on
    [0, 1] images (about 1.3 levels of 255) for this tiny random IMDN (measured 1e-3 to 2e-3)."""
    code = load_tool('export_onnx').main(export(tmp_path, '--precision', 'fp16'))
    out = capsys.readouterr().out
    assert code == 0, out
    assert input_type(tmp_path / 'm.onnx') == onnx.TensorProto.FLOAT16
    assert 'ONNX fp16 (onnxruntime CPU) vs PyTorch (fp32)' in out
    assert out.count('coffeex4.png 64x64') == 1 and 'hubble_deep_fieldx4.png' in out
    assert 'batch of 2 (dynamic shapes)' in out
    found = diffs(out)
    assert len(found) == 3 and all(0 < d < 5e-3 for d in found), out
    assert all(float(p) > 45 for p in re.findall(r'outputs ([0-9.]+) dB', out)), out


@pytest.mark.slow
def test_fp32_export_matches_torch_to_float_rounding(tmp_path, capsys):
    assert load_tool('export_onnx').main(export(tmp_path, '--check-images', str(
        ROOT / 'datasets/demo/val_LR_bicubic/X4/coffeex4.png'))) == 0
    out = capsys.readouterr().out
    assert len(diffs(out)) == 2 and max(diffs(out)) < 1e-5, out


def test_fp16_is_refused_for_an_fp16_unsafe_network(capsys):
    """LKDN overflows in fp16 (capability table); no weights needed to be refused."""
    code = load_tool('export_onnx').main(['--arch', 'LKDN', '--scale', '2', '--output',
                                          'never.onnx', '--precision', 'fp16'])
    err = capsys.readouterr().err
    assert code == 2
    assert 'LKDN overflows in fp16' in err and '--precision bf16 or fp32' in err
    assert not Path('never.onnx').exists()


@pytest.mark.slow
def test_bf16_export_has_opset_22_and_is_checked_with_its_weights_in_fp32(tmp_path, capsys):
    """onnxruntime has no CPU bfloat16 kernels: structure (onnx.checker) and bf16 weights."""
    assert load_tool('export_onnx').main(export(tmp_path, '--precision', 'bf16')) == 0
    out = capsys.readouterr().out
    model = onnx.load(str(tmp_path / 'm.onnx'))
    assert model.opset_import[0].version == 22
    assert input_type(tmp_path / 'm.onnx') == onnx.TensorProto.BFLOAT16
    assert 'no CPU bf16 kernels' in out and max(diffs(out)) < 3e-2, out
    code = load_tool('export_onnx').main(export(tmp_path, '--precision', 'bf16', '--opset', '17'))
    assert code == 2 and 'bf16 needs ONNX opset 22' in capsys.readouterr().err


@pytest.mark.slow
def test_slim_runs_onnxslim(tmp_path, capsys):
    pytest.importorskip('onnxslim')
    assert load_tool('export_onnx').main(export(tmp_path, '--slim', '--no-check')) == 0
    assert 'Slimmed' in capsys.readouterr().out
    ops = [n.op_type for n in onnx.load(str(tmp_path / 'm.onnx')).graph.node]
    assert 'Conv' in ops and 'Constant' not in ops  # folded into initializers


def test_slim_without_onnxslim_is_one_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxslim', None)  # import fails
    assert load_tool('export_onnx').main(export(tmp_path, '--slim', '--no-check')) == 2
    assert '--slim needs onnxslim: pip install onnxslim' in capsys.readouterr().err


def test_converter_flags_find_grid_sample_einsum_control_flow_and_dynamic_resize(tmp_path):
    from onnx import TensorProto, helper

    from basicsr_lite.inference.onnx_check import converter_flags
    value = helper.make_tensor_value_info
    branch = helper.make_graph([helper.make_node('Einsum', ['x', 'x'], ['e'], equation='ij,ij->ij')],
                               'b', [], [value('e', TensorProto.FLOAT, None)])
    nodes = [helper.make_node('GridSample', ['x', 'grid'], ['g']),
             helper.make_node('Shape', ['x'], ['shape']),
             helper.make_node('Resize', ['g', '', '', 'shape'], ['r']),
             helper.make_node('Resize', ['r', '', 'scales'], ['y'], mode='cubic'),
             helper.make_node('If', ['cond'], ['z'], then_branch=branch, else_branch=branch)]
    graph = helper.make_graph(
        nodes, 'g', [value('x', TensorProto.FLOAT, [1, 1, 4, 4]),
                     value('grid', TensorProto.FLOAT, [1, 4, 4, 2]),
                     value('cond', TensorProto.BOOL, [])],
        [value('y', TensorProto.FLOAT, None), value('z', TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor('scales', TensorProto.FLOAT, [4], [1, 1, 2, 2])])
    onnx.save(helper.make_model(graph), str(tmp_path / 'g.onnx'))
    flags = converter_flags(tmp_path / 'g.onnx')
    assert set(flags) == {'GridSample', 'Einsum', 'If', 'Resize (cubic)',
                          'Resize with sizes/scales from the input shape'}
    assert 'NCNN' in flags['GridSample'] and 'TensorRT' in flags['Resize (cubic)']


@pytest.mark.slow
def test_a_clean_export_has_no_flags(tmp_path):
    assert load_tool('export_onnx').main(export(tmp_path, '--no-check')) == 0
    from basicsr_lite.inference.onnx_check import converter_flags
    assert converter_flags(tmp_path / 'm.onnx') == {}


def test_table_rows_for_two_archs_and_the_page_rows_are_current(capsys):
    """Two small networks (FSRCNN from its option file, SFTMD's tiny case with its degradation
    vector fixed); the architectures page's table lists every generator and holds these rows."""
    table = load_tool('onnx_table')
    rows = table.rows_for(['FSRCNN', 'SFTMD'])
    assert [r['exports'] for r in rows] == ['yes', 'yes']
    assert [r['dynamic shapes'] for r in rows] == ['yes', 'yes']
    assert rows[1]['config'] == 'tiny case, condition fixed'
    assert table.check(table.PAGE, ['FSRCNN', 'SFTMD'], False, rows) == 0, \
        capsys.readouterr().out


def test_table_bucket_and_stale_check_fail_when_they_should(tmp_path, capsys):
    table = load_tool('onnx_table')
    assert table.bucket(3e-7) == '< 1e-06' and table.bucket(0.02) == '< 1e-01'
    assert table.bucket(float('nan')) == 'nan/inf'
    page = table.PAGE.read_text()
    (tmp_path / 'R.md').write_text(page.replace('| FSRCNN | test/', '| FSRCNX | test/'))
    assert table.main(['--check', str(tmp_path / 'R.md'), '--arch', 'FSRCNN']) == 1
    assert 'regenerate it' in capsys.readouterr().out


@pytest.mark.manual
def test_the_onnx_table_is_current_for_the_whole_registry():
    """Exports every registered generator (about 10 minutes on 2 CPU cores: too long for CI's
    slow run; run it by hand with ``-m manual`` after changing an architecture or the export).
    The default run checks that the page's table lists every generator and holds the rows of
    two of them (above)."""
    assert load_tool('onnx_table').main(['--check']) == 0
