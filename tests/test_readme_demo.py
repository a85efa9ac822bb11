"""The README's demo, run as a user types it, ends with the numbers the README prints.

Regression: these numbers are this code's own. Training is deterministic on one machine, but
CPUs with other floating-point kernels end slightly apart (the SR demo: 0.015 dB seen after 600
iterations), so the model column is checked within a tolerance (SR: 0.03 dB / 0.0005; the GAN
demo, where small differences grow, 0.3 dB / 0.01); the bicubic column is exact."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_table(title: str) -> str:
    text = (ROOT / 'README.md').read_text()
    block = re.search(r'```\n(' + re.escape(title) + r'\n.*?)```', text, re.S)
    assert block, f'the README no longer shows the table {title}'
    return block.group(1).strip()


@pytest.mark.slow
@pytest.mark.regression
@pytest.mark.parametrize('option_file,title,tolerance', [
    ('options/train/demo.yml', 'Final validation on demo_val (2 images):', (0.03, 0.0005)),
    ('options/train/Pix2pix/train_pix2pix_demo.yml',
     'Final validation on demo_pix2pix_val (4 images):', (0.3, 0.01)),
])
def test_demo_ends_with_the_readme_numbers(tmp_path, option_file, title, tolerance):
    check_table(run_demo(option_file, tmp_path / 'demo'), title, tolerance)


@pytest.mark.slow
@pytest.mark.regression
def test_multiband_demo_ends_with_the_readme_numbers(tmp_path):
    if not (ROOT / 'datasets' / 'demo_multiband' / 'band_stats.json').is_file():
        subprocess.run([sys.executable, 'tools/make_multiband_demo.py'], cwd=ROOT, check=True,
                       capture_output=True, timeout=300)
    check_table(run_demo('options/train/demo_multiband.yml', tmp_path / 'demo'),
                'Final validation on multiband_val (2 images):', (0.03, 0.0005))


def run_demo(option_file: str, exp: Path, *overrides: str) -> Path:
    proc = subprocess.run([sys.executable, 'train.py', '-opt', option_file, '--force_yml',
                           f'path:experiments_root={exp}', *overrides], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return exp


def check_table(exp: Path, title: str, tolerance: tuple[float, float]) -> None:
    log = next(exp.glob('train_*.log')).read_text().splitlines()
    title, header, *rows = readme_table(title).splitlines()
    start = next(i for i, line in enumerate(log) if line.endswith(title))
    assert log[start + 1].split() == header.split()
    for expected, got in zip(rows, log[start + 2:start + 2 + len(rows)]):
        name, model, bicubic = expected.split()
        got_name, got_model, got_bicubic = got.split()
        assert got_name == name and got_bicubic == bicubic
        limit = tolerance[0] if name.startswith('psnr') else tolerance[1]
        assert float(got_model) == pytest.approx(float(model), abs=limit)


@pytest.mark.slow
@pytest.mark.regression
def test_realesrgan_demos_end_with_the_readme_numbers(tmp_path):
    """Real-ESRNet, then Real-ESRGAN from its weights, as the README runs them."""
    net = run_demo('options/train/RealESRGAN/train_realesrnet_demo.yml', tmp_path / 'net')
    check_table(net, 'Final validation on realesrnet_demo_val (2 images):', (0.3, 0.01))
    gan = run_demo('options/train/RealESRGAN/train_realesrgan_demo.yml', tmp_path / 'gan',
                   f"path:pretrain_network_g={net / 'models' / 'net_g_latest.pth'}")
    check_table(gan, 'Final validation on realesrgan_demo_val (2 images):', (0.3, 0.01))
