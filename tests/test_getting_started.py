"""Every command of docs/getting-started.md, run as written, in order, in a copy of the
repository; then what the page says of their output is checked against what they wrote.

The ``pip install`` lines run with ``--dry-run --no-index --no-build-isolation``: they check that
the page's requirements resolve against the installed environment (the extras exist, the
package's metadata builds) without reinstalling the package the tests run on. The demo's final
table: the bicubic column exactly (integer maths), the model's margin over bicubic within the
range the page states (the model column itself depends on the CPU's floating-point kernels and
the thread count, see tests/test_docs_demos.py). Slow: the demo trains 600 iterations (about
two and a half minutes on 2 CPU cores)."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / 'docs' / 'getting-started.md'
COPIED = ('basicsr_lite', 'options', 'tools', 'datasets/demo', 'train.py', 'test.py',
          'pyproject.toml', 'README.md')
NUMBER = r'[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?'


def page_commands() -> list[str]:
    """The commands of the page's ``bash`` blocks, continuation lines joined, comments dropped,
    ``a && b`` split into its commands."""
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', PAGE.read_text(), re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            line = re.sub(r'\s+#.*$', '', line).strip()
            commands += [part.strip() for part in line.split('&&') if part.strip()]
    return commands


def runnable(command: str) -> list[str]:
    words = shlex.split(command)
    if words[:2] == ['pip', 'install']:
        return [sys.executable, '-m', 'pip', 'install', '--dry-run', '--no-index',
                '--no-build-isolation', *words[2:]]
    assert words[0] == 'python', f'the test does not know how to run {command!r}'
    return [sys.executable, *words[1:]]


def copy_of_the_repository(dest: Path) -> Path:
    ignore = shutil.ignore_patterns('__pycache__', '*.egg-info')
    for name in COPIED:
        src, dst = ROOT / name, dest / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=ignore)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return dest


def documented_block(title: str) -> list[str]:
    block = re.search(r'```text\n(' + re.escape(title) + r'\n.*?)```', PAGE.read_text(), re.S)
    assert block, f'{PAGE} no longer shows {title!r}'
    return block.group(1).strip().splitlines()


def as_pattern(line: str) -> str:
    """A documented log line as a pattern: its numbers any numbers, its spaces any spaces."""
    parts = re.split(f'({NUMBER})', line.strip())
    pattern = ''.join(NUMBER if i % 2 else re.escape(part) for i, part in enumerate(parts))
    return re.sub(r'(\\ )+|\\\t', r'\\s+', pattern)


@pytest.mark.slow
def test_every_command_of_the_getting_started_page_runs(tmp_path):
    repo = copy_of_the_repository(tmp_path / 'repo')
    env = {**os.environ, 'PYTHONPATH': str(repo), 'OMP_NUM_THREADS': os.environ.get(
        'OMP_NUM_THREADS', '2')}
    commands = page_commands()
    assert 'python train.py -opt options/train/demo.yml' in commands
    output = {}
    for command in commands:
        proc = subprocess.run(runnable(command), cwd=repo, env=env, capture_output=True,
                              text=True, timeout=1800)
        assert proc.returncode == 0, f'{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}'
        output[command] = proc.stdout + proc.stderr

    # the demo's final table: bicubic exactly, the model's margin as the page states it
    exp = repo / 'experiments' / 'demo_MSRResNet_x4'
    log = next(exp.glob('train_*.log')).read_text().splitlines()
    title, header, *rows = documented_block('Final validation on demo_val (2 images):')
    start = max(i for i, line in enumerate(log) if line.endswith(title))
    assert log[start + 1].split() == header.split()
    margin = re.search(r'beats bicubic by ([\d.]+) to ([\d.]+) dB PSNR and ([\d.]+) to ([\d.]+) '
                       r'SSIM', ' '.join(PAGE.read_text().split()))
    low_high = {'psnr': (float(margin[1]), float(margin[2])),
                'ssim': (float(margin[3]), float(margin[4]))}
    for row, logged in zip(rows, log[start + 2:start + 2 + len(rows)]):
        name, _, bicubic = row.split()
        got_name, got_model, got_bicubic = logged.split()
        assert (got_name, got_bicubic) == (name, bicubic)
        low, high = low_high[name]
        assert low <= float(got_model) - float(got_bicubic) <= high, logged

    # the other log lines the page shows, in their format (numbers are the run's own)
    text = '\n'.join(log)
    for first in ('[demo_..][epoch:', 'Validation demo_val (2 images), per image:'):
        lines = next(b for b in re.findall(r'```text\n(.*?)```', PAGE.read_text(), re.S)
                     if b.startswith(first)).strip().splitlines()
        pattern = r'\n.*'.join(as_pattern(line) for line in lines)
        assert re.search(pattern, text), f'the log has no lines like {lines}'

    # every file the page names under experiments/ and results/
    named = re.findall(r'`((?:experiments|results)/[^`<>*]+)`', PAGE.read_text())
    assert len(named) >= 6
    missing = [n for n in named if not (repo / n).exists()]
    assert not missing, missing
    assert 'the pipeline works' in output[
        'python train.py -opt options/train/demo.yml --fast_dev_run']
