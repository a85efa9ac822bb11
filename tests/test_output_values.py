"""Outputs checked by their values, not their sizes or counts: which pixels land in which panel
of a TensorBoard LR | SR | GT triplet, the centre crop of ``tb_image_fit: crop`` by position,
which cell of the HTML report is marked best, LPIPS's crop_border against a crop made here,
and ``display()`` of a mean_std normalisation against hand values."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from basicsr_lite.data.io.band_norm import BandCodec
from basicsr_lite.engine.tb_hooks import fit_image, triplet
from basicsr_lite.report.html_report import metric_table
from basicsr_lite.report.run_data import RunData

LIN_DIR = Path(__file__).resolve().parents[2] / 'shared' / 'weights' / 'lpips'


def constant(rgb: tuple[int, int, int], size: tuple[int, int]) -> torch.Tensor:
    """A 1 x 3 x H x W tensor of one 8-bit colour (exact after * 255 and rounding)."""
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, *size) / 255


def positions(h: int, w: int) -> np.ndarray:
    """An HW image whose pixel at (row, column) is 16 * row + column."""
    return (16 * np.arange(h)[:, None] + np.arange(w)[None, :]).astype(np.uint8)


# ---- TensorBoard triplets ------------------------------------------------------------------------

def test_triplet_panels_hold_lr_sr_gt_in_that_order():
    """LR 2x2 (four colours, nearest-upsampled to 4x4), SR and GT constant colours; 4-pixel
    white gaps. Colours are RGB in, RGB out."""
    lq = torch.tensor([[[10, 20], [30, 40]], [[50, 60], [70, 80]], [[90, 100], [110, 120]]],
                      dtype=torch.float32)[None] / 255
    sr, gt = constant((200, 5, 17), (4, 4)), constant((1, 150, 99), (4, 4))
    image = triplet({'lq': lq, 'result': sr, 'gt': gt}, size=64, fit='resize')
    assert image.shape == (4, 4 + 4 + 4 + 4 + 4, 3) and image.dtype == np.uint8
    lr_panel, gap1, sr_panel, gap2, gt_panel = (image[:, i:i + 4] for i in range(0, 20, 4))
    assert (gap1 == 255).all() and (gap2 == 255).all()
    for row in range(4):
        for col in range(4):
            assert lr_panel[row, col].tolist() == [v + 20 * (row // 2) + 10 * (col // 2)
                                                    for v in (10, 50, 90)], (row, col)
    assert (sr_panel == [200, 5, 17]).all() and (gt_panel == [1, 150, 99]).all()
    # without a GT of the SR's size: LR | SR only
    no_gt = triplet({'lq': lq, 'result': sr, 'gt': constant((1, 2, 3), (3, 3))}, 64, 'resize')
    assert no_gt.shape == (4, 12, 3) and (no_gt[:, 8:] == [200, 5, 17]).all()


def test_fit_crop_takes_the_centre_by_position():
    # 6 x 10 -> rows 1..4, columns 3..6
    assert np.array_equal(fit_image(positions(6, 10), 4, 'crop'), positions(6, 10)[1:5, 3:7])
    # odd margins round the offset down: 7 x 9 -> rows 1..4, columns 2..5
    assert fit_image(positions(7, 9), 4, 'crop')[0, 0] == 16 * 1 + 2
    # a side already short enough is kept whole: 3 x 9 -> all rows, columns 2..5
    assert np.array_equal(fit_image(positions(3, 9), 4, 'crop'), positions(3, 9)[:, 2:6])
    # small enough: unchanged
    assert np.array_equal(fit_image(positions(4, 3), 4, 'crop'), positions(4, 3))


def test_triplet_with_crop_fit_crops_each_panel_at_its_centre():
    """SR 6 x 6 whose pixels encode their position, tb_image_size 2: each panel is the SR's
    rows 2..3 / columns 2..3 (the LR's pixel (1, 1), nearest-upsampled x2, for the LR panel)."""
    sr = torch.from_numpy(positions(6, 6)).float().expand(3, 6, 6)[None] / 255
    lq = torch.from_numpy(positions(3, 3)).float().expand(3, 3, 3)[None] / 255
    image = triplet({'lq': lq, 'result': sr, 'gt': sr.flip(-1)}, size=2, fit='crop')
    assert image.shape == (2, 2 + 4 + 2 + 4 + 2, 3)
    assert image[:, :2, 0].tolist() == [[17, 17], [17, 17]]  # LR pixel (1, 1)
    assert image[:, 6:8, 0].tolist() == [[34, 35], [50, 51]]  # SR rows 2, 3 / columns 2, 3
    assert image[:, 12:14, 0].tolist() == [[35, 34], [51, 50]]  # GT: the SR mirrored


# ---- the HTML report's best cells ------------------------------------------------------------

def best_cells(table: str) -> dict[str, int]:
    """{column header: iteration of the row} of every cell marked best."""
    header = re.findall(r'<th>([^<]*)</th>', table.split('</tr>')[0])[1:]
    marked: dict[str, int] = {}
    for row in table.split('</tr>')[1:-1]:
        it = int(re.search(r'<tr><th>(\d+)</th>', row).group(1))
        for column, cell in zip(header, re.findall(r'<td([^>]*)>', row)):
            if 'best' in cell:
                assert column not in marked, f'{column} marked twice'
                marked[column] = it
    return marked


def test_report_marks_the_best_row_of_each_metric_by_its_direction():
    """PSNR (higher) is best at iteration 3, NIQE (lower) at 1, LPIPS (lower) at 2; each
    metric's opposite extreme lies elsewhere, so a swapped direction moves the mark."""
    data = RunData('run', 'log', scalars={
        'metrics/set/psnr': [(1, 30.0), (2, 31.0), (3, 31.5)],
        'metrics/set/niqe': [(1, 4.0), (2, 4.2), (3, 5.0)],
        'metrics/set/lpips': [(1, 0.3), (2, 0.1), (3, 0.2)],
        'losses/l_pix': [(1, 0.01), (2, 0.001), (3, 0.002)]})
    table = metric_table(data, {'psnr': 'higher', 'niqe': 'lower', 'lpips': 'lower'})
    assert best_cells(table) == {'set/psnr': 3, 'set/niqe': 1, 'set/lpips': 2}
    assert '<td class="best">31.5000</td>' in table and '<td class="best">4.0000</td>' in table
    # a metric without a known direction counts higher as better
    assert best_cells(metric_table(data, {}))['set/niqe'] == 3


def test_report_best_mark_with_a_metric_missing_at_some_validations():
    data = RunData('run', 'log', scalars={'metrics/a/psnr': [(2, 20.0), (4, 22.0)],
                                          'metrics/b/psnr': [(4, 25.0), (6, 24.0)]})
    table = metric_table(data, {'psnr': 'higher'})
    assert best_cells(table) == {'a/psnr': 4, 'b/psnr': 4}
    rows = table.split('</tr>')[1:-1]
    assert [re.findall(r'<td[^>]*>([^<]*)</td>', r) for r in rows] == [
        ['20.0000', ''], ['22.0000', '25.0000'], ['', '24.0000']]


# ---- LPIPS crop_border ---------------------------------------------------------------------------

@pytest.fixture
def lpips_env(random_backbones, monkeypatch):
    if not LIN_DIR.is_dir():
        pytest.skip('../shared/weights/lpips is absent')
    monkeypatch.setenv('BASICSR_LITE_LPIPS_DIR', str(LIN_DIR))


def test_lpips_crop_border_equals_a_crop_made_here(lpips_env):
    """The distance with crop_border equals the distance of images cropped here by slicing
    (each side; a pair is rows, columns), in both the batched and the numpy forms."""
    from basicsr_lite.metrics.lpips_metric import LPIPS, calculate_lpips, calculate_lpips_pt
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(1, 3, 70, 74, generator=gen)
    b = (a + 0.2 * torch.randn(a.shape, generator=gen)).clamp(0, 1)
    b[..., :, :6] = 1 - b[..., :, :6]  # the left border differs most: a crop changes the value
    model = LPIPS('alex')
    for border, (rows, cols) in ((5, (5, 5)), ((3, 7), (3, 7)), (0, (0, 0))):
        here = model(a[..., rows:70 - rows, cols:74 - cols], b[..., rows:70 - rows, cols:74 - cols])
        torch.testing.assert_close(calculate_lpips_pt(a, b, border), here, rtol=1e-6, atol=1e-7)
    assert calculate_lpips_pt(a, b, 5).item() != pytest.approx(calculate_lpips_pt(a, b, 0).item(),
                                                               rel=1e-3)
    img, img2 = ((t[0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)
                 for t in (a, b))
    quantised = [torch.from_numpy(x[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
                 for x in (img, img2)]
    here = model(quantised[0][..., 3:67, 7:67], quantised[1][..., 3:67, 7:67]).item()
    assert calculate_lpips(img, img2, [3, 7]) == pytest.approx(here, rel=1e-5)


# ---- display() of a normalisation ----------------------------------------------------------------

def test_mean_std_display_is_the_raw_value_over_the_data_range():
    """tensor = (raw - mean) / std; display = raw / data_range of the first three bands,
    clamped to [0, 1]."""
    codec = BandCodec('mean_std', offset=(100.0, 200.0, 300.0, 400.0),
                      scale=(10.0, 20.0, 30.0, 40.0), dtype='uint16', bands=4, data_range=1000.0)
    tensor = torch.tensor([[[1.0, 90.0]], [[-2.0, -20.0]], [[0.5, 3.0]], [[7.0, 7.0]]])  # 4x1x2
    expected = torch.tensor([[[0.110, 1.0]],    # 110, 1000 -> 1 (the peak)
                             [[0.160, 0.0]],    # 160, -200 -> 0
                             [[0.315, 0.390]]])  # 315, 390; band 4 is not shown
    torch.testing.assert_close(codec.display(tensor), expected)
    torch.testing.assert_close(codec.display(tensor[None]), expected[None])  # batches too
    one = BandCodec('mean_std', (50.0,), (25.0,), 'uint8', 1, 255.0)
    torch.testing.assert_close(one.display(torch.tensor([[[2.0, -1.0]]])),
                               torch.tensor([[[100 / 255, 25 / 255]]]))
