"""The README's demo, run as a user types it, ends with the numbers the README prints.

Regression: these numbers are this code's own. Training is deterministic on one machine, but
CPUs with other floating-point kernels end slightly apart after 600 iterations (0.015 dB seen),
so the model column is checked within 0.03 dB / 0.0005; the bicubic column is exact."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_table() -> str:
    text = (ROOT / 'README.md').read_text()
    block = re.search(r'```\n(Final validation on demo_val \(2 images\):\n.*?)```', text, re.S)
    assert block, 'the README no longer shows the demo table'
    return block.group(1).strip()


@pytest.mark.slow
@pytest.mark.regression
def test_demo_ends_with_the_readme_numbers(tmp_path):
    exp = tmp_path / 'demo'
    proc = subprocess.run([sys.executable, 'train.py', '-opt', 'options/train/demo.yml',
                           '--force_yml', f'path:experiments_root={exp}'], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = next(exp.glob('train_*.log')).read_text().splitlines()
    title, header, *rows = readme_table().splitlines()
    start = next(i for i, line in enumerate(log) if line.endswith(title))
    assert log[start + 1].split() == header.split()
    for expected, got in zip(rows, log[start + 2:start + 2 + len(rows)]):
        name, model, bicubic = expected.split()
        got_name, got_model, got_bicubic = got.split()
        assert got_name == name and got_bicubic == bicubic
        assert float(got_model) == pytest.approx(float(model), abs=0.03 if name == 'psnr'
                                                 else 0.0005)
