"""The tools are an installed package (issue 24): every console script of pyproject.toml names an
importable ``main``, each tool runs as ``python tools/<name>.py`` and ``python -m
basicsr_lite.tools.<name>`` with the same arguments, and no script in tools/ edits sys.path."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['scripts']


@pytest.mark.parametrize('script', sorted(SCRIPTS))
def test_console_script_resolves_to_a_main(script):
    module, func = SCRIPTS[script].split(':')
    assert callable(getattr(importlib.import_module(module), func))
    if module.startswith('basicsr_lite.tools.'):  # basicsr-<name> with dashes, tools/<name>.py
        name = module.rsplit('.', 1)[1]
        assert script == 'basicsr-' + name.replace('_', '-')
        assert (ROOT / 'tools' / f'{name}.py').is_file()


def test_every_tool_module_has_a_console_script():
    modules = {p.stem for p in (ROOT / 'basicsr_lite' / 'tools').glob('*.py')} - {'__init__'}
    assert {f'basicsr_lite.tools.{m}:main' for m in modules} <= set(SCRIPTS.values())


def test_no_tool_edits_sys_path():
    edits = [p.name for p in (ROOT / 'tools').glob('*.py') if 'sys.path' in p.read_text()]
    assert edits == []


@pytest.mark.parametrize('name', ['create_lmdb',
                                  pytest.param('calculate_metrics', marks=pytest.mark.slow)])
@pytest.mark.parametrize('how', ['script', 'module'])
def test_tool_help_runs_both_ways(name, how):
    # PYTHONPATH stands for the installed package: this checkout's, whatever else is installed
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [str(ROOT), *filter(None, os.environ.get('PYTHONPATH', '').split(os.pathsep))])}
    cmd = ([f'tools/{name}.py'] if how == 'script' else ['-m', f'basicsr_lite.tools.{name}'])
    proc = subprocess.run([sys.executable, *cmd, '--help'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = importlib.import_module(f'basicsr_lite.tools.{name}').__doc__
    assert proc.stdout.startswith(f'usage: {name}.py ') and doc.splitlines()[0] in proc.stdout
