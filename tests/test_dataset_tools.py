from pathlib import Path

import cv2
import numpy as np
import pytest

from basicsr_lite.data.degrade.imresize import imresize
from basicsr_lite.errors import DataError
from basicsr_lite.prep.dataset_tools import (crop_positions, extract_subimages, folder_metrics,
                                             generate_lr)
from basicsr_lite.prep.synthetic import make_paired_folder, smooth_image
from tests.conftest import load_tool

ROOT = Path(__file__).resolve().parent.parent


def test_crop_positions_basicsr_rule():
    assert crop_positions(100, 48, 24, 0) == [0, 24, 48, 52]
    assert crop_positions(96, 48, 24, 0) == [0, 24, 48]
    assert crop_positions(100, 48, 24, 10) == [0, 24, 48]  # 4 leftover pixels <= thresh
    assert crop_positions(30, 48, 24, 0) == []


def test_generate_lr_mod_crops_and_matches_imresize(tmp_path):
    hr = smooth_image(np.random.default_rng(0), 50, 43)
    cv2.imwrite(str(tmp_path / 'img.png'), hr)
    report = generate_lr(tmp_path, tmp_path / 'lr', 4, hr_mod_folder=tmp_path / 'mod', workers=2)
    assert report.outputs == 1 and not report.errors
    mod = cv2.imread(str(tmp_path / 'mod' / 'img.png'))
    assert mod.shape == (48, 40, 3)
    lr = cv2.imread(str(tmp_path / 'lr' / 'imgx4.png'))
    np.testing.assert_array_equal(lr, imresize(hr[:48, :40], 0.25))


def test_generate_lr_reports_bad_files(tmp_path):
    cv2.imwrite(str(tmp_path / 'good.png'), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / 'bad.png').write_bytes(b'nope')
    report = generate_lr(tmp_path, tmp_path / 'lr', 2)
    assert report.outputs == 1 and len(report.errors) == 1 and 'bad.png' in report.errors[0]


def test_extract_paired_subimages_align(tmp_path):
    gt, lq = make_paired_folder(tmp_path, ['p'], (100, 76), 4, seed=5)
    report = extract_subimages(gt, tmp_path / 'hr_sub', 48, 24, 0, lq, tmp_path / 'lq_sub', 4,
                               '{}x4', workers=2)
    # rows: 0, 24, 48, 52 (4); cols: 0, 24, 28 (3) -> 12 crops
    assert report.outputs == 12 and not report.errors
    names = sorted(p.name for p in (tmp_path / 'hr_sub').iterdir())
    assert names == [f'p_s{i:03d}.png' for i in range(1, 13)]
    assert sorted(p.name for p in (tmp_path / 'lq_sub').iterdir()) == names
    hr_full = cv2.imread(str(gt / 'p.png'))
    lq_full = cv2.imread(str(lq / 'px4.png'))
    crop = cv2.imread(str(tmp_path / 'hr_sub' / 'p_s012.png'))  # last: y 52, x 28
    np.testing.assert_array_equal(crop, hr_full[52:100, 28:76])
    lq_crop = cv2.imread(str(tmp_path / 'lq_sub' / 'p_s012.png'))
    np.testing.assert_array_equal(lq_crop, lq_full[13:25, 7:19])


def test_extract_subimages_errors(tmp_path):
    gt, lq = make_paired_folder(tmp_path, ['p'], (40, 40), 2, seed=5)
    with pytest.raises(DataError, match="no LQ partner 'p_lr.*' .*--suffix-pattern"):
        extract_subimages(gt, tmp_path / 'o', 20, 10, 0, lq, tmp_path / 'lo', 2, '{}_lr')
    with pytest.raises(DataError, match='step 9 must be divisible by scale 2'):
        extract_subimages(gt, tmp_path / 'o', 20, 9, 0, lq, tmp_path / 'lo', 2, '{}x2')
    cv2.imwrite(str(lq / 'px2.png'), np.zeros((5, 5, 3), np.uint8))
    report = extract_subimages(gt, tmp_path / 'o', 20, 10, 0, lq, tmp_path / 'lo', 2, '{}x2')
    assert len(report.errors) == 1 and 'is not' in report.errors[0]
    report = extract_subimages(gt, tmp_path / 'o2', 64, 32)
    assert report.outputs == 0 and 'smaller than crop_size 64' in report.skipped[0]


def test_folder_metrics_and_cli(tmp_path, capsys):
    gt, lq = make_paired_folder(tmp_path, ['a', 'b'], (32, 32), 2, seed=6)
    restored = tmp_path / 'sr'
    restored.mkdir()
    for name in ('a', 'b'):
        img = cv2.imread(str(gt / f'{name}.png'))
        cv2.imwrite(str(restored / f'{name}_SR.png'), np.clip(img.astype(int) + 3, 0, 255)
                    .astype(np.uint8))
    rows = folder_metrics(restored, gt, 2, False, '{}_SR')
    assert [r['name'] for r in rows] == ['a', 'b']
    for row in rows:  # PSNR written out: 10 log10(255^2 / MSE) on the cropped images
        ref = cv2.imread(str(gt / f"{row['name']}.png")).astype(np.float64)[2:-2, 2:-2]
        mse = ((np.clip(ref + 3, 0, 255) - ref) ** 2).mean()
        assert row['psnr'] == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-10)
    tool = load_tool('calculate_metrics')
    assert tool.main(['--restored', str(restored), '--gt', str(gt), '--restored-tmpl', '{}_SR',
                      '--crop-border', '2', '--csv', str(tmp_path / 'm.csv'),
                      '--json', str(tmp_path / 'm.json')]) == 0
    out = capsys.readouterr().out
    assert 'mean' in out and 'psnr' in out
    assert (tmp_path / 'm.csv').read_text().splitlines()[-1].startswith('HR,mean,')
    assert tool.main(['--restored', str(restored), '--gt', str(gt)]) == 2
    err = capsys.readouterr().err
    assert f"2 GT image(s) have no restored image in {restored} (--restored-tmpl '{{}}'): " \
           'looked for a, b (any image extension); that folder has a_SR.png, b_SR.png. test.py ' \
           "names its images '<image>_<name>.png': use --restored-tmpl '{}_<name>'." in err


def test_tool_clis(tmp_path):
    gt, _ = make_paired_folder(tmp_path, ['q'], (64, 64), 2, seed=7)
    assert load_tool('generate_lr').main(['--input', str(gt), '--output', str(tmp_path / 'l'),
                                          '--scale', '2', '--workers', '1']) == 0
    assert (tmp_path / 'l' / 'qx2.png').is_file()
    assert load_tool('extract_subimages').main([
        '--input', str(gt), '--output', str(tmp_path / 's'), '--crop-size', '32', '--step', '32',
        '--lq-input', str(tmp_path / 'l'), '--lq-output', str(tmp_path / 'ls'), '--scale', '2',
        '--suffix-pattern', '{}x2', '--workers', '1']) == 0
    assert len(list((tmp_path / 'ls').iterdir())) == 4


@pytest.mark.slow
def test_benchmark_data_runs(capsys):
    """Smoke test of tools/benchmark_data.py (its numbers are reported, never asserted)."""
    tool = load_tool('benchmark_data')
    assert tool.main(['--images', '4', '--batches', '2', '--demo-iters', '2',
                      '--edsr-iters', '1', '--workers', '0']) == 0
    out = capsys.readouterr().out
    assert 'samples/s' in out and 'Data wait as a share of iteration time' in out
