"""Boundaries the other tests never reach: ArbSR's evaluation crop at odd LR sizes and
non-integer scales, metadata ranges that do not start at 0, fractions of an epoch that are not
exact, ties in early stopping, and what a branch keeps (nothing) of a state's patience count
and best-K list while a plain resume keeps both."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from basicsr_lite.data.degrade.scales import evaluation_crop, make_lr
from basicsr_lite.data.io.metadata import DEGRADATION_RANGES, MetadataVector
from basicsr_lite.data.loading.loaders import epoch_batches
from basicsr_lite.data.multiscale_dataset import MultiScaleDataset
from basicsr_lite.data.paired_image_dataset import PairedImageDataset
from basicsr_lite.engine.builtin_hooks import EarlyStopping, MetricWatch
from basicsr_lite.engine.validate import with_scale_borders
from basicsr_lite.metrics.psnr_ssim_metric import calculate_psnr
from basicsr_lite.prep.synthetic import make_paired_folder
from tests.runs import load, saved_iterations, train_in_process


def positions(h: int, w: int) -> np.ndarray:
    """An H x W x 1 image whose pixel (row, column) holds 1000 * row + column."""
    return (1000 * np.arange(h)[:, None, None] + np.arange(w)[None, :, None]).astype(np.int64)


# ---- ArbSR's evaluation crop -------------------------------------------------------------------

# (LR rows, HR rows, scale) -> (LR rows kept, HR rows kept), by hand from ArbSR's
# trainer.crop_border: size = LR if round(LR * s) <= HR else floor(HR / s); keep
# size // step * step pixels, and when that is odd, size // (2 * step) * 2 * step; HR keeps
# round(s * kept). (An odd count only arises with an odd step: 1 or 5.)
CROPS = [
    ((7, 21, 3.0), (6, 18)),     # step 1, odd LR: 7 -> 6
    ((6, 18, 3.0), (6, 18)),     # step 1, even LR: whole
    ((25, 35, 1.4), (20, 28)),   # step 5: 25 = 5 steps (odd) -> 4 steps
    ((17, 24, 1.4), (10, 14)),   # step 5: 17 -> 3 steps (odd) -> 2 steps
    ((15, 17, 1.2), (10, 12)),   # round(18) > 17: floor(17 / 1.2) = 14 -> 2 steps of 5
    ((13, 33, 2.5), (12, 30)),   # step 2: round(32.5) = 32 <= 33; 13 -> 6 steps
    ((13, 31, 2.5), (12, 30)),   # step 2: 32 > 31: floor(31 / 2.5) = 12 -> 6 steps
    ((13, 25, 2.5), (10, 25)),   # an HR far too short: floor(25 / 2.5) = 10
    ((7, 15, 3.0), (4, 12)),     # step 1: 21 > 15: floor(15 / 3) = 5 (odd) -> 4
    ((31, 79, 2.5), (30, 75)),   # step 2: 31 -> 30 (15 steps, an even pixel count)
    ((75, 94, 1.25), (60, 75)),  # step 20: 75 -> 60
    ((149, 152, 1.02), (100, 102)),  # step 50: 2 steps
]


@pytest.mark.parametrize('sizes, kept', CROPS)
def test_evaluation_crop_by_hand(sizes, kept):
    lr_rows, hr_rows, scale = sizes
    lr, hr = positions(lr_rows, 8), positions(hr_rows, 9)
    # rows at ``scale``, columns at x1 (8 LR columns, 9 HR ones: 8 columns kept, even)
    lq, gt = evaluation_crop(lr, hr, (scale, 1.0))
    assert (lq.shape[0], gt.shape[0]) == kept
    assert lq.shape[1] == 8 and gt.shape[1] == 8
    assert np.array_equal(lq, lr[:kept[0], :8]) and np.array_equal(gt, hr[:kept[1], :8])
    # the same along columns
    lq, gt = evaluation_crop(lr.transpose(1, 0, 2), hr.transpose(1, 0, 2), (1.0, scale))
    assert (lq.shape[1], gt.shape[1]) == kept and (lq.shape[0], gt.shape[0]) == (8, 8)


def test_multiscale_validation_items_and_scale_border(tmp_path):
    """A 38 x 40 image at x1.4 (rows) / x3 (columns): gen_LR_img keeps 35 x 39 HR pixels, LR
    25 x 13; the test crop keeps LR 20 x 12 (both odd counts shortened), HR 28 x 36, from the
    top-left; crop_border: scale shaves ceil(1.4) = 2 rows and 3 columns."""
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (38, 40, 3), dtype=np.uint8)
    (tmp_path / 'gt').mkdir()
    cv2.imwrite(str(tmp_path / 'gt' / 'a.png'), hr)
    item = MultiScaleDataset(str(tmp_path / 'gt'), [[1.4, 3]], phase='val').at_scale(
        (1.4, 3.0))[0]
    assert tuple(item['lq'].shape) == (3, 20, 12) and tuple(item['gt'].shape) == (3, 28, 36)
    assert item['scale'].tolist() == [1.4, 3.0]
    rgb = torch.from_numpy(hr[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(item['gt'], rgb[:, :28, :36])
    _, lr = make_lr(hr, (1.4, 3.0))
    assert lr.shape[:2] == (25, 13)
    lr_rgb = torch.from_numpy(lr[:20, :12, ::-1].copy()).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(item['lq'], lr_rgb)

    metrics = with_scale_borders({'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale'},
                                  'fixed': {'type': 'calculate_psnr', 'crop_border': 1}},
                                 (1.4, 3.0))
    assert metrics['psnr']['crop_border'] == (2, 3) and metrics['fixed']['crop_border'] == 1
    assert with_scale_borders({'p': {'crop_border': 'scale'}}, (2.0, 2.5))['p'][
        'crop_border'] == (2, 3)
    out = hr[:28, :36].astype(np.int16)
    out[:2] = 0  # differences only in the shaved rows and columns ...
    out[:, -3:] = 255
    out[10, 10] += 4  # ... and in one kept pixel
    out = out.clip(0, 255).astype(np.uint8)
    kept = hr[2:26, 3:33].astype(np.float64), out[2:26, 3:33].astype(np.float64)
    mse = np.mean((kept[0] - kept[1]) ** 2)
    assert mse > 0
    assert calculate_psnr(out, hr[:28, :36], (2, 3)) == pytest.approx(
        10 * np.log10(255 ** 2 / mse), abs=1e-9)


# ---- metadata ranges ---------------------------------------------------------------------------

def test_metadata_range_not_starting_at_zero():
    """(value - low) / (high - low): [10, 50] maps 10 -> 0, 30 -> 0.5, 50 -> 1, and beyond
    (5 -> -0.125, 60 -> 1.25: not clamped); a value without a range is used as it is; a given
    range replaces the degradation's default one."""
    vector = MetadataVector(['blur_sigma', 'gain'], {'blur_sigma': [10, 50]})
    got = [vector({'blur_sigma': v, 'gain': 7.5}).tolist() for v in (10, 30, 50, 5, 60)]
    assert got == [[0.0, 7.5], [0.5, 7.5], [1.0, 7.5], [-0.125, 7.5], [1.25, 7.5]]
    noise = MetadataVector(['noise_sigma'], {'noise_sigma': [10, 50]}, DEGRADATION_RANGES)
    assert noise({'noise_sigma': 20}).tolist() == [0.25]
    default = MetadataVector(['noise_sigma', 'jpeg_quality'], None, DEGRADATION_RANGES)
    assert default({'noise_sigma': 20, 'jpeg_quality': 90}).tolist() == pytest.approx([0.4, 0.9])


def test_paired_dataset_maps_file_values_by_metadata_range(tmp_path):
    gt, lq = make_paired_folder(tmp_path, ['a', 'b', 'c'], (8, 8), 2)
    (tmp_path / 'meta.csv').write_text('name,iso\na,10\nb,30\nc,50\n')
    dataset = PairedImageDataset(str(gt), str(lq), 2, 'val', filename_tmpl='{}x2',
                                 metadata_file=str(tmp_path / 'meta.csv'), metadata=['iso'],
                                 metadata_range={'iso': [10, 50]})
    got = {Path(dataset[i]['gt_path']).stem: dataset[i]['meta'].tolist() for i in range(3)}
    assert got == {'a': [0.0], 'b': [0.5], 'c': [1.0]}


# ---- fractions of an epoch ---------------------------------------------------------------------

@pytest.mark.parametrize('full, limit, batches', [
    (7, 0.3, 3),    # 2.1 rounds up
    (100, 0.07, 7),  # 0.07 * 100 is 7.000000000000001 in floats: still 7
    (50, 0.14, 7),  # the same
    (25, 0.28, 7),  # the same
    (10, 0.3, 3),
    (7, 0.1, 1),    # 0.7: at least one batch
    (7, 1.0, 7),
    (3, 0.5, 2),    # 1.5 rounds up
    (7, 3, 3),      # a count
    (7, 10, 7),     # a count above the epoch: the epoch
    (7, None, 7),
])
def test_epoch_batches_rounds_a_fraction_up(full, limit, batches):
    assert epoch_batches(full, limit) == batches


def test_the_loop_counts_epochs_of_a_fraction(tiny_opt, tmp_path):
    """4 images x enlarge 5 / batch 2 = 10 batches; 0.3 of them = 3 per epoch: iterations
    1-3 are epoch 0, 4-6 epoch 1, 7 epoch 2; a checkpoint at the end of every epoch."""
    tiny_opt['datasets']['train']['dataset_enlarge_ratio'] = 5
    tiny_opt['train'].update(total_iter=7, limit_train_batches=0.3)
    tiny_opt['val']['val_freq'] = 1000
    tiny_opt['logger'].update(save_checkpoint_freq=1000, save_checkpoint_freq_epochs=1)
    assert train_in_process(tmp_path, tiny_opt) == 0
    root = Path(tiny_opt['path']['experiments_root'])
    log = next(root.glob('train_*.log')).read_text()
    assert '3 iters per epoch' in log
    epochs = {int(it.replace(',', '')): int(epoch) for epoch, it in
              re.findall(r'\[epoch:\s*(\d+), iter:\s*([\d,]+),', log)}
    assert epochs == {1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 1, 7: 2}
    assert [i for i in saved_iterations(root) if i < 7] == [3, 6]
    assert load(root / 'training_states' / '6.state')['epoch'] == 1


# ---- early stopping ties -----------------------------------------------------------------------

def stopping_run(better: str, patience: int, min_delta: float, values: list[float]):
    """Feed ``values`` as successive validations; (stale count after each, finish reasons)."""
    hook = EarlyStopping(MetricWatch('m', 'set', better), patience, min_delta)
    reasons: list[str] = []
    run = SimpleNamespace(finish=reasons.append)
    stale = []
    for it, value in enumerate(values, 1):
        hook.on_validation_end(run, it, {'set': SimpleNamespace(means={'m': value})})
        stale.append(hook.stale)
    return stale, reasons, hook


def test_a_tie_is_not_an_improvement_higher_is_better():
    stale, reasons, hook = stopping_run('higher', 2, 0.0, [30.0, 30.0, 30.5, 30.5, 30.5])
    assert stale == [0, 1, 0, 1, 2]
    assert (hook.best, hook.best_iter) == (30.5, 3)
    assert len(reasons) == 1 and 'best 30.5000 at iter 3' in reasons[0]


def test_a_tie_is_not_an_improvement_lower_is_better():
    stale, reasons, hook = stopping_run('lower', 3, 0.0, [2.0, 2.0, 1.5, 1.5, 1.75])
    assert stale == [0, 1, 0, 1, 2] and reasons == []
    assert (hook.best, hook.best_iter) == (1.5, 3)


@pytest.mark.parametrize('better, values', [('higher', [1.0, 1.25, 1.5, 1.75]),
                                            ('lower', [1.0, 0.75, 0.5, 0.25])])
def test_an_improvement_of_exactly_min_delta_does_not_count(better, values):
    """min_delta 0.25 (exact in floats): a step of 0.25 is not 'more than min_delta'; two
    steps (0.5 from the best) are."""
    stale, reasons, hook = stopping_run(better, 5, 0.25, values)
    assert stale == [0, 1, 0, 1]
    assert (hook.best, hook.best_iter) == (values[2], 3)


# ---- a branch starts its patience count and best-K list afresh -------------------------------

@pytest.mark.slow
def test_branch_starts_afresh_while_resume_keeps_patience_and_best_list(tiny_opt, tmp_path):
    """lr 0 and no EMA: every validation gives the same PSNR (ties). Run A (5 iterations,
    validations at 1-4 at least): its state 4 holds stale 3 (best at 1) and the best-2 list
    [1, 2]. Resuming A to 9 keeps them: its state 8 (validations 1-8) holds stale 7, list
    [1, 2]. A branch from A's state 4 to 9 starts afresh: its state 8 (validations 5-8) holds
    best at 5, stale 3, list [5, 6]."""
    tiny_opt['train'].update(total_iter=5, ema_decay=0)
    tiny_opt['train']['optim_g']['lr'] = 0.0
    tiny_opt['val'].update(val_freq=1, save_img=False,
                           early_stopping={'metric': 'psnr', 'patience': 10})
    tiny_opt['logger'].update(save_checkpoint_freq=4, print_freq=4,
                              keep_best_checkpoints={'metric': 'psnr', 'k': 2})
    branch = copy.deepcopy(tiny_opt)
    root = Path(tiny_opt['path']['experiments_root'])
    assert train_in_process(tmp_path, tiny_opt) == 0
    state = load(root / 'training_states' / '4.state')['hooks']
    psnr = state['early_stopping']['best']
    assert state['early_stopping'] == {'best': psnr, 'best_iter': 1, 'stale': 3}
    assert state['best_checkpoints']['entries'] == [{'iter': 1, 'value': psnr},
                                                    {'iter': 2, 'value': psnr}]

    branch['name'] = 'tiny_branch'
    branch['train']['total_iter'] = 9
    branch['path'].update(experiments_root=str(root.with_name('tiny_branch')),
                          branch_from=str(root / 'training_states' / '4.state'))
    assert train_in_process(tmp_path, branch) == 0
    state = load(root.with_name('tiny_branch') / 'training_states' / '8.state')['hooks']
    assert state['early_stopping'] == {'best': psnr, 'best_iter': 5, 'stale': 3}
    assert state['best_checkpoints']['entries'] == [{'iter': 5, 'value': psnr},
                                                    {'iter': 6, 'value': psnr}]
    models = root.with_name('tiny_branch') / 'models'
    assert [e['iter'] for e in json.loads((models / 'best_psnr.json').read_text())['best']] == \
        [5, 6]
    assert sorted(p.name for p in models.glob('net_g_best_psnr_*.pth')) == \
        ['net_g_best_psnr_5.pth', 'net_g_best_psnr_6.pth']

    tiny_opt['train']['total_iter'] = 9
    assert train_in_process(tmp_path, tiny_opt, '--auto_resume') == 0
    state = load(root / 'training_states' / '8.state')['hooks']
    assert state['early_stopping'] == {'best': psnr, 'best_iter': 1, 'stale': 7}
    assert state['best_checkpoints']['entries'] == [{'iter': 1, 'value': psnr},
                                                    {'iter': 2, 'value': psnr}]
