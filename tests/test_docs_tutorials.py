"""The "add your own" tutorials of docs/tutorials/ (architecture, loss, model, hook), followed as a
reader would: in order, in an empty folder, each page's files written (a ``# file: NAME`` block
writes NAME, a ``# add to NAME`` block is merged into that option file) and each page's
commands run against this checkout; the log shows what each page says it shows."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / 'docs' / 'tutorials'
# (page, what its run must print)
PAGES = [('add-architecture.md', ['--fast_dev_run: the pipeline works.']),
         ('add-loss.md', ['l_l1: ', 'l_logcosh: ']),
         ('add-model.md', ['--fast_dev_run: the pipeline works.']),
         ('add-hook.md', [re.compile(r'Lowest l_l1: \S+ at iteration \d+\.')])]


def merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def follow(page: Path, folder: Path) -> list[str]:
    """Write the page's files into ``folder``; its commands."""
    text = page.read_text()
    for block in re.findall(r'```(?:python|yaml)\n(.*?)```', text, re.S):
        first = block.splitlines()[0]
        written = re.fullmatch(r'# file: (\S+)', first)
        added = re.fullmatch(r'# add to (\S+)', first)
        if written:
            (folder / written[1]).write_text(block)
        elif added:
            target = folder / added[1]
            merged = merge(yaml.safe_load(target.read_text()), yaml.safe_load(block))
            target.write_text(yaml.safe_dump(merged, sort_keys=False))
    return [line.strip() for block in re.findall(r'```bash\n(.*?)```', text, re.S)
            for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_each_add_your_own_tutorial_trains(tmp_path):
    (tmp_path / 'datasets').symlink_to(ROOT / 'datasets')  # the demo images the pages train on
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    for name, expected in PAGES:
        commands = follow(TUTORIALS / name, tmp_path)
        assert commands, f'{name} has no command'
        for command in commands:
            words = shlex.split(command)
            assert words[0] == 'python', command
            proc = subprocess.run([sys.executable, *words[1:]], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=600)
            out = proc.stdout + proc.stderr
            assert proc.returncode == 0, f'{name}: {command}\n{out[-3000:]}'
            for want in expected:
                found = want.search(out) if isinstance(want, re.Pattern) else want in out
                assert found, f'{name}: {want} not in the output of {command}'
    assert not (tmp_path / 'experiments').exists()  # --fast_dev_run leaves nothing behind
