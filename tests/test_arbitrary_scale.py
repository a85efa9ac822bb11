"""Arbitrary-scale SR (ArbSR): scale grids and LR making, one scale per batch with the integer
first epoch, the scale-aware network, per-scale validation and test tables, resume."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from basicsr_lite.archs import build_network
from basicsr_lite.archs.arbsr_arch import ScaleAwareConv, ScaleAwareUpsample
from basicsr_lite.data import build_dataset
from basicsr_lite.data.degrade.imresize import imresize
from basicsr_lite.data.degrade.scales import (evaluation_crop, lr_crop_size, make_lr, parse_scales,
                                              scale_label, scale_step)
from basicsr_lite.data.loading.sample_wrappers import SeededSamples
from basicsr_lite.data.loading.sampler import EnlargedSampler
from basicsr_lite.engine.validate import bicubic_baseline
from basicsr_lite.errors import DataError
from basicsr_lite.prep.synthetic import rectangles_image
from basicsr_lite.utils.img_util import imwrite, tensor2img
from tests.conftest import write_yaml
from tests.runs import killed_run_resumes_exactly, train_in_process
from tests.test_options import errors_of


# ---- scales --------------------------------------------------------------------------------------

def test_scale_lists_ranges_and_pairs():
    assert parse_scales({'min': 1.1, 'max': 1.4, 'step': 0.1}) == [
        (1.1, 1.1), (1.2, 1.2), (1.3, 1.3), (1.4, 1.4)]
    assert len(parse_scales({'min': 1.1, 'max': 4.0, 'step': 0.1})) == 30  # ArbSR's list
    assert parse_scales([2, [1.5, 3.5]]) == [(2.0, 2.0), (1.5, 3.5)]
    for bad, message in ((0.5, 'must be a non-empty list'), ([0.9], 'scales must be >= 1'),
                         ([1.013], 'not a multiple of 1/50'), ([[1, 2, 3]], 'a number or a '),
                         ({'min': 1}, r'a scale range is \{min, max, step\}')):
        with pytest.raises(ValueError, match=message):
            parse_scales(bad)
    assert [scale_step(s) for s in (2, 2.5, 1.2, 1.25, 1.02, 3.1)] == [1, 2, 5, 20, 50, 10]
    assert scale_label((2.0, 2.0)) == 'x2' and scale_label((1.5, 3.5)) == 'x1.5x3.5'


def test_lr_images_are_made_as_arbsr_makes_them():
    """gen_LR_img.m: crop the HR to whole grid steps, MATLAB bicubic to round(size / scale)."""
    hr = rectangles_image(np.random.default_rng(0), 103, 77)
    crop, lr = make_lr(hr, (1.3, 2.5))
    assert crop.shape[:2] == (lr_crop_size(103, 1.3), lr_crop_size(77, 2.5)) == (91, 75)
    assert lr.shape[:2] == (70, 30) and lr.dtype == np.uint8
    assert np.array_equal(lr, imresize(hr[:91, :75], 1 / 1.3, output_shape=(70, 30)))
    lq, gt = evaluation_crop(lr, crop, (1.3, 2.5))
    assert lq.shape[:2] == (70, 30) and gt.shape[:2] == (91, 75)  # even multiples of the steps
    lq, gt = evaluation_crop(lr[:69], crop, (1.3, 2.5))
    assert lq.shape[:2] == (60, 30) and gt.shape[:2] == (78, 75)


def folder(tmp_path, count, size, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(count):
        imwrite(rectangles_image(rng, *size), tmp_path / f'{i}.png')
    return str(tmp_path)


@pytest.mark.parametrize('pair', [(1.1, 1.1), (2.5, 2.5), (3.0, 3.0), (1.3, 3.5), (1.05, 1.05)])
def test_training_lr_patch_is_the_patch_of_the_whole_images_lr(tmp_path, pair):
    """The LR patch is computed from its GT region (plus a margin): it must equal the same patch
    of the whole image's MATLAB-bicubic LR, as ArbSR's pre-made LR files give it."""
    root = folder(tmp_path, 1, (120, 140))
    dataset = build_dataset({'type': 'MultiScaleDataset', 'dataroot_gt': root,
                             'scales': [list(pair)], 'lq_size': 20}, 'train', 4)
    dataset = SeededSamples(dataset)
    img = dataset.dataset.pixels.load(dataset.dataset.file_client, dataset.dataset.paths[0])
    hr, lr = make_lr(img, pair)
    for seed in range(6):
        item = dataset[(0, seed, 7, 0)]
        lq, gt = tensor2img(item['lq'], rgb2bgr=True), tensor2img(item['gt'], rgb2bgr=True)
        assert lq.shape[:2] == (20, 20)
        assert gt.shape[:2] == (round(20 * pair[0]), round(20 * pair[1]))
        # find the patch in the whole LR by its GT position
        matches = [(y, x) for y in range(0, lr.shape[0] - 19) for x in range(0, lr.shape[1] - 19)
                   if np.array_equal(lr[y:y + 20, x:x + 20], lq)]
        assert matches, f'seed {seed}: the LR patch is not a patch of the whole LR'
        y, x = matches[0]
        gy, gx = round(y * pair[0]), round(x * pair[1])
        assert np.array_equal(hr[gy:gy + gt.shape[0], gx:gx + gt.shape[1]], gt)


# ---- one scale per batch -------------------------------------------------------------------------

def test_every_batch_has_one_scale_integer_ones_during_the_first_epoch(tmp_path):
    root = folder(tmp_path, 4, (64, 64))
    dataset = build_dataset({'type': 'MultiScaleDataset', 'dataroot_gt': root,
                             'scales': {'min': 1.5, 'max': 4.0, 'step': 0.5}, 'lq_size': 12},
                            'train', 4)
    samples = SeededSamples(dataset)
    sampler = EnlargedSampler(len(dataset), ratio=20, seed=3, with_sample_seeds=True,
                              batch_size=4)
    seen = {}
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        items = list(sampler)
        scales = [tuple(samples[item]['scale'].tolist()) for item in items[:40]]
        batches = [scales[i:i + 4] for i in range(0, 40, 4)]
        assert all(len(set(batch)) == 1 for batch in batches)
        seen[epoch] = {batch[0] for batch in batches}
    assert seen[0] <= {(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)}
    assert seen[1] - {(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)}, 'later epochs use every scale'
    # a resumed epoch (start = 8 samples in) gives the same samples as the straight one
    sampler.set_epoch(1)
    straight = list(sampler)
    sampler.set_epoch(1, start=8)
    assert list(sampler) == straight[8:]


# ---- the network ---------------------------------------------------------------------------------

def test_scale_aware_layers_depend_on_the_scale():
    torch.manual_seed(0)
    conv = ScaleAwareConv(4, 4)
    x = torch.rand(1, 4, 6, 6)
    assert not torch.allclose(conv(x, (2.0, 2.0)), conv(x, (3.5, 3.5)))
    up = ScaleAwareUpsample(16)
    feats = torch.rand(2, 16, 7, 9)
    assert up(feats, (1.5, 2.5)).shape == (2, 16, round(7 * 1.5), round(9 * 2.5))
    # with no offset and zero expert filters, the upsampler is bilinear sampling at the
    # output pixels' positions: integer x2 of a constant stays constant inside
    with torch.no_grad():
        up.offset.weight.zero_(), up.offset.bias.zero_(), up.weight_expand.zero_()
    flat = torch.ones(1, 16, 6, 6)
    assert torch.allclose(up(flat, (2.0, 2.0))[..., 1:-1, 1:-1], torch.ones(1, 16, 10, 10))


def test_arbsr_takes_asymmetric_scales_and_refuses_downscaling():
    net = build_network({'type': 'ArbSR', 'num_feat': 8, 'num_block': 2, 'adapt_every': 2,
                         'backbone': 'rcan', 'num_group': 2, 'squeeze_factor': 4})
    x = torch.rand(1, 3, 10, 12)
    assert net(x, (2.0, 3.5)).shape == (1, 3, 20, 42)
    assert net(x, torch.tensor([[1.5, 1.5]])).shape == (1, 3, 15, 18)
    with pytest.raises(ValueError, match='scale must be >= 1'):
        net(x, 0.5)
    with pytest.raises(ValueError, match='one scale per batch'):
        net(torch.rand(2, 3, 10, 12), torch.tensor([[2.0, 2.0], [3.0, 3.0]]))


# ---- training, validation and test ---------------------------------------------------------------

def arbitrary_opt(tiny_opt: dict, tmp_path) -> dict:
    opt = copy.deepcopy(tiny_opt)
    opt['model_type'] = 'ArbitraryScaleSRModel'
    opt['scale'] = 4
    opt['network_g'] = {'type': 'ArbSR', 'num_feat': 8, 'num_block': 2, 'adapt_every': 1}
    opt['datasets']['train'] = {
        'name': 'arb_train', 'type': 'MultiScaleDataset',
        'dataroot_gt': folder(tmp_path / 'train', 3, (64, 64)),
        'scales': {'min': 1.5, 'max': 3.0, 'step': 0.5}, 'lq_size': 12, 'use_hflip': True,
        'use_rot': True, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 2}
    opt['datasets']['val'] = {'name': 'arb_val', 'type': 'MultiScaleDataset',
                              'dataroot_gt': folder(tmp_path / 'val', 2, (40, 44), seed=1),
                              'scales': [2.5, [1.5, 3.0]]}
    for metric in opt['val']['metrics'].values():
        metric['crop_border'] = 'scale'
    return opt


def test_training_validates_each_scale_with_arbsrs_border(tiny_opt, tmp_path, capsys,
                                                          monkeypatch):
    opt = arbitrary_opt(tiny_opt, tmp_path)
    borders = []
    from basicsr_lite.metrics import psnr_ssim_metric
    psnr = psnr_ssim_metric.calculate_psnr_pt

    def spy(img, img2, crop_border, **kwargs):
        borders.append((tuple(img.shape[-2:]), crop_border))
        return psnr(img, img2, crop_border, **kwargs)

    monkeypatch.setattr(psnr_ssim_metric, 'calculate_psnr_pt', spy)
    from basicsr_lite import metrics
    monkeypatch.setitem(metrics.METRIC_REGISTRY._items, 'calculate_psnr_pt', spy)
    assert train_in_process(tmp_path, opt) == 0
    log = capsys.readouterr().err
    assert 'Final validation on arb_val_x2.5 (2 images)' in log
    assert 'Final validation on arb_val_x1.5x3 (2 images)' in log
    # the GT of 40x44 at x2.5: LR 16x16 (even multiples of the x2.5 grid), GT 40x40
    assert ((40, 40), (3, 3)) in borders
    # x1.5 / x3: LR 26x14 -> GT 39x42; border ceil(1.5) = 2 rows, 3 columns
    assert ((39, 42), (2, 3)) in borders


def test_bicubic_baseline_upsamples_to_each_scale(tiny_opt, tmp_path):
    opt = arbitrary_opt(tiny_opt, tmp_path)
    from basicsr_lite.data.loading.loaders import build_eval_loaders
    from basicsr_lite.options import validate_options
    loaders = build_eval_loaders(validate_options(opt, True), ('val',))
    assert list(loaders) == ['arb_val_x2.5', 'arb_val_x1.5x3']
    loader = loaders['arb_val_x1.5x3']
    result = bicubic_baseline(loader, 'x', 4, {'psnr': {'type': 'calculate_psnr',
                                                        'crop_border': 0}})
    data = next(iter(loader))
    lq = tensor2img(data['lq'], rgb2bgr=False)
    up = imresize(lq, 1, output_shape=data['gt'].shape[-2:])
    gt = tensor2img(data['gt'], rgb2bgr=False).astype(np.float64)
    expected = 10 * math.log10(255**2 / np.mean((up.astype(np.float64) - gt)**2))
    assert result.rows[0]['psnr'] == pytest.approx(expected, abs=1e-6)


def test_test_py_prints_a_row_per_scale(tiny_opt, tmp_path, capsys):
    opt = arbitrary_opt(tiny_opt, tmp_path)
    opt['train']['total_iter'] = 2
    assert train_in_process(tmp_path, opt) == 0
    from basicsr_lite.test import main as test_main
    test_opt = {k: opt[k] for k in ('model_type', 'scale', 'num_gpu', 'network_g')}
    test_opt.update(name='arb_test', datasets={'test_1': opt['datasets']['val']},
                    val={'metrics': opt['val']['metrics'], 'save_img': True},
                    path={'pretrain_network_g': f"{opt['path']['experiments_root']}/models/"
                                                f'net_g_latest.pth',
                          'results_root': str(tmp_path / 'results')})
    capsys.readouterr()
    assert test_main(['-opt', str(write_yaml(tmp_path / 'test.yml', test_opt))]) == 0
    log = capsys.readouterr().err
    table = log[log.index('Per scale:'):].splitlines()
    assert table[1].split() == ['arb_val', 'psnr', 'ssim']
    assert table[2].split()[0] == 'x2.5' and table[3].split()[0] == 'x1.5x3'
    saved = sorted(p.name for p in (tmp_path / 'results' / 'visualization').iterdir())
    assert saved == ['arb_val_x1.5x3', 'arb_val_x2.5']


def test_options_that_cannot_work_are_refused(tiny_opt, tmp_path):
    opt = arbitrary_opt(tiny_opt, tmp_path)
    opt['datasets']['val'] = copy.deepcopy(tiny_opt['datasets']['val'])
    message = errors_of(opt)
    assert ('datasets.val.type: ArbitraryScaleSRModel needs each image\'s scale; '
            'PairedImageDataset gives none (use MultiScaleDataset)') in message
    opt = arbitrary_opt(tiny_opt, tmp_path)
    opt['network_g'] = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3}
    assert 'network_g.type: ArbitraryScaleSRModel runs net_g(lq, scale); EDSR takes no scale' \
        in errors_of(opt)
    opt = arbitrary_opt(tiny_opt, tmp_path)
    opt['datasets']['train']['scales'] = [1.013]
    opt['datasets']['train']['lq_size'] = 0
    message = errors_of(opt)
    assert 'datasets.train.scales: scale 1.013 is not a multiple of 1/50' in message
    assert 'datasets.train.lq_size: must be >= 1; got 0' in message


def test_scale_border_on_a_set_without_scales_is_refused(tiny_opt):
    from basicsr_lite.data.loading.loaders import build_eval_loaders
    from basicsr_lite.engine.validate import check_metrics
    from basicsr_lite.errors import OptionError
    from basicsr_lite.options import validate_options
    loaders = build_eval_loaders(validate_options(tiny_opt, True), ('val',))
    with pytest.raises(OptionError, match=r"crop_border: scale \(ArbSR's border, ceil\(scale\)\) "
                                          r'needs validation sets whose images carry their '
                                          r'scale \(MultiScaleDataset\); tiny_val do not'):
        check_metrics({'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale'}}, loaders)


@pytest.mark.slow
def test_a_killed_arbitrary_scale_run_resumes_exactly(tiny_opt, tmp_path):
    opt = arbitrary_opt(tiny_opt, tmp_path)
    opt['datasets']['train']['dataset_enlarge_ratio'] = 4
    killed_run_resumes_exactly(opt, tmp_path, total=30, kill_after=10)


def test_integer_scales_first_then_all_in_a_real_run(tiny_opt, tmp_path, monkeypatch):
    """6 samples per epoch = 3 iterations: the first epoch's batches are x2 or x3 only."""
    opt = arbitrary_opt(tiny_opt, tmp_path)
    opt['train']['total_iter'] = 12
    opt['val']['val_freq'] = 10**6
    scales = []
    from basicsr_lite.models.arbitrary_scale_model import ArbitraryScaleSRModel
    feed = ArbitraryScaleSRModel.feed_data

    def spy(self, data):
        feed(self, data)
        if self.is_train and self.net_g.training:
            scales.append(self.scale_pair)

    monkeypatch.setattr(ArbitraryScaleSRModel, 'feed_data', spy)
    assert train_in_process(tmp_path, opt) == 0
    assert set(scales[:3]) <= {(2.0, 2.0), (3.0, 3.0)}
    assert set(scales[3:]) - {(2.0, 2.0), (3.0, 3.0)}


def test_images_too_small_for_a_patch_at_some_scale_are_named_at_start(tmp_path):
    root = folder(tmp_path, 2, (64, 64))
    imwrite(rectangles_image(np.random.default_rng(5), 40, 64), tmp_path / 'small.png')
    from basicsr_lite.errors import OptionError
    with pytest.raises((DataError, OptionError), match=r"1 image\(s\) are too small for an LR "
                                                       r'patch of 12 \(lq_size\) at some scale: '
                                                       r'.*small\.png \(64x40\) at x4'):
        build_dataset({'type': 'MultiScaleDataset', 'dataroot_gt': root,
                       'scales': [2, 4], 'lq_size': 12}, 'train', 4)
