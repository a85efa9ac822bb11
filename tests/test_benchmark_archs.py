"""tools/benchmark_archs.py: which configuration each architecture is measured in, and one real
run of the table (slow: a process per architecture)."""
from __future__ import annotations

import re

import pytest

from tests.conftest import load_tool


def test_reference_configuration_prefers_training_files_then_released_ones():
    tool = load_tool('benchmark_archs')
    assert tool.reference_option_file('FSRCNN').name == 'train_FSRCNN_x4.yml'
    # no training file: the released file's test configuration
    assert tool.reference_option_file('RLFN_S').name == 'test_RLFN_S_x4.yml'
    assert tool.verdict(1.2) == 'helps' and tool.verdict(0.8) == 'hurts'
    assert tool.verdict(1.0) == 'neutral'


@pytest.mark.slow
def test_benchmark_archs_prints_a_row_per_architecture(capsys):
    load_tool('benchmark_archs').main(['--archs', 'FSRCNN', 'SPAN', '--size', '16',
                                       '--train-size', '8', '--batch', '1', '--repeats', '1'])
    out = capsys.readouterr().out
    assert 'Architectures on cpu' in out
    fsrcnn = re.search(r'\| FSRCNN \| options/train/FSRCNN/train_FSRCNN_x4.yml \| 12,809 \| '
                       r'([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (helps|hurts|neutral) \| (\d+) \| '
                       r'([\d.]+) \|', out)
    assert fsrcnn, out
    assert float(fsrcnn[1]) > 0 and float(fsrcnn[6]) > 0
    assert '| SPAN | options/train/SPAN/train_SPAN_x4.yml | 1,840,488 |' in out


@pytest.mark.slow
def test_checkpointing_table_shows_the_saving(capsys):
    """SwinIR's shipped configuration at a small patch: checkpointing keeps a small fraction of
    the activations (each Swin block's input only), and costs time (the forward is rerun)."""
    load_tool('benchmark_archs').main(['--checkpointing', '--archs', 'SwinIR', 'EDSR',
                                       '--train-size', '16', '--batch', '1', '--repeats', '1'])
    out = capsys.readouterr().out
    row = re.search(r'\| SwinIR \| options/train/SwinIR/\S+ \| (\d+) \| (\d+) \| ([\d.]+) \| '
                    r'(\d+) \| (\d+) \| ([\d.]+) \|', out)
    assert row, out
    assert int(row[1]) > 4 * int(row[2]) and float(row[3]) < 0.25
    assert '| EDSR |' not in out  # no use_checkpoint: not in the table
