"""The README's demo, run as a user types it, ends with the numbers the README prints.

Regression: these numbers are this code's own (the demo data and training are deterministic on
the CPU); a change to them needs a reason and a README update."""
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
    log = next(exp.glob('train_*.log')).read_text()
    expected = readme_table().splitlines()
    start = next(i for i, line in enumerate(log.splitlines()) if expected[0] in line)
    got = log.splitlines()[start + 1:start + len(expected)]
    assert [line.rstrip() for line in got] == [line.rstrip() for line in expected[1:]]
