"""tools/plot_run.py: PNG curves and the HTML report of a run, from TensorBoard events or from
the log; the report opened in a real headless browser when one is installed."""
from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from tests.browser import browser_or_skip, dom, screenshot
from tests.conftest import load_tool
from tests.runs import train_in_process


def run_opt(tiny_opt: dict, tb: bool) -> dict:
    tiny_opt['train']['total_iter'] = 8
    tiny_opt['val'].update(val_freq=2, save_img=False, tb_images=2, tb_image_size=32)
    tiny_opt['logger'].update(use_tb_logger=tb, print_freq=2,
                              keep_best_checkpoints={'metric': 'psnr', 'k': 2})
    return tiny_opt


@pytest.fixture
def tb_run(tiny_opt, tmp_path) -> Path:
    assert train_in_process(tmp_path, run_opt(tiny_opt, tb=True)) == 0
    return Path(tiny_opt['path']['experiments_root'])


def png_size(path: Path) -> tuple[int, int]:
    image = cv2.imread(str(path))
    assert image is not None, f'{path} is not an image'
    return image.shape[:2]


def test_curves_and_report_from_tensorboard(tb_run, capsys):
    assert load_tool('plot_run').main([str(tb_run)]) == 0
    out = tb_run / 'report'
    for stem in ('losses', 'learning_rate', 'metric_tiny_val_psnr', 'metric_tiny_val_ssim',
                 'data_wait', 'grad_norm', 'cpu', 'memory'):
        assert png_size(out / f'{stem}.png') == (360, 720), stem
    page = (out / 'report.html').read_text()
    # every validation (2, 4, 6 and the final one, 8) in the metric table
    for it in (2, 4, 6, 8):
        assert f'<tr><th>{it}</th>' in page
    assert page.count('class="best"') == 2  # the best PSNR and the best SSIM
    assert 'psnr on tiny_val (higher is better), best 2' in page
    assert page.count('class="compare"') == 2  # tb_images: 2
    assert 'report: ' in capsys.readouterr().out


def test_panels_of_the_triplet_keep_their_size(tb_run):
    from basicsr_lite.report.html_report import split_triplet
    from basicsr_lite.report.run_data import read_run
    data = read_run(tb_run)
    step, png = data.images['images/tiny_val/a']
    panels = split_triplet(png)
    assert step == 8 and list(panels) == ['LR', 'SR', 'GT']  # the final validation's images
    sizes = {cv2.imdecode(__import__('numpy').frombuffer(p, 'uint8'), 1).shape for p in
             panels.values()}
    assert sizes == {(26, 32, 3)}  # the 32x40 GT, 32 pixels on its longer side


def test_curves_from_the_log_alone(tiny_opt, tmp_path):
    assert train_in_process(tmp_path, run_opt(tiny_opt, tb=False)) == 0
    root = Path(tiny_opt['path']['experiments_root'])
    from basicsr_lite.report.run_data import read_run
    data = read_run(root)
    assert data.source == 'log'
    assert [it for it, _ in data.scalars['losses/l_pix']] == [2, 4, 6, 8]
    assert [it for it, _ in data.scalars['metrics/tiny_val/psnr']] == [2, 4, 6, 8]
    assert load_tool('plot_run').main([str(root), '--out', str(tmp_path / 'plots')]) == 0
    assert png_size(tmp_path / 'plots' / 'losses.png') == (360, 720)
    page = (tmp_path / 'plots' / 'report.html').read_text()
    assert 'No validation images' in page and 'read from the log records' in page


def test_not_an_experiment_is_a_clear_error(tmp_path, capsys):
    assert load_tool('plot_run').main([str(tmp_path)]) == 2
    assert 'has neither TensorBoard events (tb_logger/) nor train_*.log files' in \
        capsys.readouterr().err


def test_report_in_a_headless_browser(tb_run, tmp_path):
    browser = browser_or_skip()
    assert load_tool('plot_run').main([str(tb_run)]) == 0
    page = (tb_run / 'report' / 'report.html').resolve().as_uri()
    shot = tmp_path / 'report.png'
    screenshot(browser, page, shot, (1280, 2400), tmp_path / 'profile')
    height, width = png_size(shot)
    assert (height, width) == (2400, 1280)
    image = cv2.imread(str(shot))
    assert image.std() > 10  # rendered content, not a blank page
    # the slider script ran on both comparisons
    assert 'data-sliders="2"' in dom(browser, page, tmp_path / 'profile')
