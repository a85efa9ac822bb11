"""Images beyond 8-bit RGB: reading and writing as stored, per-band normalisation, band
statistics, metrics with a data range, and training / testing on a 4-band 16-bit set."""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr_lite.data import build_dataset
from basicsr_lite.data.degrade.imresize import imresize
from basicsr_lite.data.io.band_io import (decode_bands, encode_bands, lossless_suffix, read_bands,
                                          write_bands, write_lossless)
from basicsr_lite.data.io.band_norm import build_codec, normalize_problems
from basicsr_lite.data.io.scan import image_size
from basicsr_lite.errors import DataError, ImageReadError, OptionError
from basicsr_lite.metrics import (calculate_psnr, calculate_psnr_pt, calculate_ssim,
                                  calculate_ssim_pt)
from basicsr_lite.prep.band_stats import compute_band_stats, write_band_stats
from basicsr_lite.prep.synthetic import make_multiband_folder, multiband_scene
from tests.conftest import load_tool
from tests.runs import train_in_process
from tests.test_options import errors_of

RNG = np.random.default_rng(0)


def random_image(dtype, bands, h=9, w=7):
    if dtype == np.float32:
        return RNG.random((h, w, bands), dtype=np.float32) * 3 - 1
    return RNG.integers(0, np.iinfo(dtype).max + 1, (h, w, bands)).astype(dtype)


# ---- reading and writing as stored ---------------------------------------------------------------

@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize('bands', [1, 2, 3, 4, 6])
def test_every_type_and_band_count_round_trips_exactly(tmp_path, dtype, bands):
    img = random_image(dtype, bands)
    path = write_lossless(img, tmp_path / 'x')
    expected = '.npy' if bands not in (1, 3, 4) else ('.tif' if dtype == np.float32 else '.png')
    assert path.suffix == expected == lossless_suffix(img)
    back = read_bands(path)
    assert back.dtype == dtype and np.array_equal(back, img)
    assert image_size(str(path)) in ((9, 7), None)  # PNG and .npy headers give the size


def test_bands_keep_the_files_order():
    """A PNG stores R, G, B, A; OpenCV's arrays are B, G, R, A. As stored means the file's."""
    bgra = random_image(np.uint16, 4)
    ok, buf = cv2.imencode('.png', bgra)
    img = decode_bands(buf.tobytes(), 'x.png')
    assert np.array_equal(img, bgra[:, :, [2, 1, 0, 3]])
    assert np.array_equal(cv2.imdecode(np.frombuffer(encode_bands(img, '.png'), np.uint8),
                                       cv2.IMREAD_UNCHANGED), bgra)


def test_what_a_format_cannot_hold_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r'A \.png file cannot hold 4 bands of float32 exactly; '
                                         r'use \.tif'):
        write_bands(random_image(np.float32, 4), tmp_path / 'x.png')
    with pytest.raises(ValueError, match='cannot hold 5 bands of uint16 exactly; use .npy'):
        write_bands(random_image(np.uint16, 5), tmp_path / 'x.tif')
    assert not list(tmp_path.iterdir())
    np.save(tmp_path / 'i.npy', np.zeros((4, 4), np.int32))
    with pytest.raises(ImageReadError, match=r'i\.npy has pixels of type int32; expected one of '
                                             r'uint8, uint16, float32'):
        read_bands(tmp_path / 'i.npy')
    (tmp_path / 'bad.npy').write_bytes(b'\x93NUMPY garbage')
    with pytest.raises(ImageReadError, match=r'Cannot decode array .*bad\.npy'):
        read_bands(tmp_path / 'bad.npy')


def test_imresize_keeps_16_bit_images_16_bit_rounding_each_pass_like_matlab():
    img = random_image(np.uint16, 4, 12, 16)
    out = imresize(img, 0.5)
    assert out.dtype == np.uint16 and out.shape == (6, 8, 4)
    rows = np.clip(np.floor(imresize(img.astype(np.float64), 0.5, output_shape=(6, 16)) + 0.5),
                   0, 65535)
    expected = np.clip(np.floor(imresize(rows, 0.5, output_shape=(6, 8)) + 0.5), 0, 65535)
    assert np.array_equal(out, expected.astype(np.uint16))


# ---- normalisation -------------------------------------------------------------------------------

def write_stats(tmp_path, images, percentiles=(1, 99)) -> Path:
    folder = tmp_path / 'stats_src'
    for i, img in enumerate(images):
        write_lossless(img, folder / f'{i}')
    return Path(write_band_stats(folder, tmp_path / 'stats.json', percentiles)['source']).parent \
        / 'stats.json'


@pytest.mark.parametrize('kind', ['range', 'mean_std', 'min_max', 'percentile'])
def test_each_normalisation_is_exactly_invertible_to_the_stored_values(tmp_path, kind):
    images = [multiband_scene(np.random.default_rng(i), 24, 24) for i in range(3)]
    stats_path = write_stats(tmp_path, images)
    stats = json.loads(stats_path.read_text())
    opt = {'type': kind, 'data_range': 10000}
    if kind != 'range':
        opt['stats_file'] = str(stats_path)
    assert normalize_problems(opt) == []
    codec = build_codec(opt, np.dtype(np.uint16), 4, 'test')
    tensor = codec.encode(images[0])
    raw = images[0].transpose(2, 0, 1).astype(np.float64)
    if kind == 'range':
        expected = raw / 10000
    elif kind == 'mean_std':
        expected = (raw - np.array(stats['mean'])[:, None, None]) / \
            np.array(stats['std'])[:, None, None]
    else:
        low, high = ((np.array(stats['min']), np.array(stats['max'])) if kind == 'min_max' else
                     (np.array(stats['percentiles']['1']), np.array(stats['percentiles']['99'])))
        expected = (raw - low[:, None, None]) / (high - low)[:, None, None]
    assert torch.allclose(tensor.double(), torch.from_numpy(expected), atol=1e-5)
    assert np.array_equal(codec.to_image(tensor[None]), images[0])
    assert codec.data_range == 10000


def test_normalize_options_are_checked_with_clear_messages(tmp_path):
    stats_path = write_stats(tmp_path, [multiband_scene(RNG, 16, 16)])

    def problems(**opt):
        return '; '.join(f'{k}: {m}' for k, m in normalize_problems(opt))

    assert "normalize.stat_file: unknown key; did you mean 'stats_file'?" in problems(
        type='range', stat_file='x')
    assert 'normalize.type: expected one of range, mean_std, min_max, percentile' in problems(
        type='zscore')
    assert 'type mean_std needs mean and std, or stats_file' in problems(type='mean_std')
    assert 'type percentile needs stats_file' in problems(type='percentile')
    assert 'normalize.mean: is not used by type percentile' in problems(
        type='percentile', stats_file=str(stats_path), mean=[1])
    assert 'give mean and std or stats_file, not both' in problems(
        type='mean_std', mean=[1], std=[2], stats_file=str(stats_path))
    assert 'normalize.data_range: expected a number > 0; got 0' in problems(data_range=0)
    assert 'normalize.stats_file: expected a file path; got 5' in problems(type='min_max',
                                                                          stats_file=5)
    assert 'normalize.std: expected a list of numbers' in problems(type='mean_std', mean=[1],
                                                                   std='2')
    assert 'has no percentile 0.5 (it has 1, 99)' in problems(
        type='percentile', stats_file=str(stats_path), low=0.5)
    assert '0 <= low < high <= 100' in problems(type='percentile', stats_file=str(stats_path),
                                                low=99, high=1)
    (tmp_path / 'other.json').write_text('{"a": 1}')
    assert 'is not a band statistics file' in problems(type='min_max',
                                                       stats_file=str(tmp_path / 'other.json'))


def test_statistics_that_do_not_fit_the_images_are_data_errors(tmp_path):
    stats_path = write_stats(tmp_path, [multiband_scene(RNG, 16, 16)])
    with pytest.raises(DataError, match=r'describes 4 band\(s\) of uint16, but the images have '
                                        r'3 band\(s\) of uint16'):
        build_codec({'type': 'min_max', 'stats_file': str(stats_path)}, np.dtype(np.uint16), 3,
                    'here')
    with pytest.raises(DataError, match=r'here: normalize.mean has 2 value\(s\) but the images '
                                        r'have 4 band\(s\)'):
        build_codec({'type': 'mean_std', 'mean': [1, 2], 'std': [1, 1]}, np.dtype(np.uint16), 4,
                    'here')
    with pytest.raises(DataError, match=r'would divide band\(s\) 1 by 0 \(a constant band\?\)'):
        build_codec({'type': 'mean_std', 'mean': [1, 2], 'std': [1, 0]}, np.dtype(np.uint16), 2,
                    'here')


def test_default_data_range_follows_the_pixel_type():
    for dtype, peak in ((np.uint8, 255), (np.uint16, 65535), (np.float32, 1.0)):
        codec = build_codec(None, np.dtype(dtype), 2, 'x')
        assert codec.data_range == peak and codec.scale == (peak, peak)


# ---- band statistics -----------------------------------------------------------------------------

def test_integer_statistics_are_exact(tmp_path):
    images = [multiband_scene(np.random.default_rng(i), 20 + i, 24) for i in range(3)]
    stats = compute_band_stats([str(i) for i in range(3)], lambda n: images[int(n)],
                               (0, 1, 50, 97.5, 100))
    values = np.concatenate([img.reshape(-1, 4) for img in images]).astype(np.float64)
    assert stats['pixels_per_band'] == values.shape[0]
    assert np.allclose(stats['mean'], values.mean(0), rtol=1e-12)
    assert np.allclose(stats['std'], values.std(0), rtol=1e-10)
    assert stats['min'] == values.min(0).tolist() and stats['max'] == values.max(0).tolist()
    for p in (0, 1, 50, 97.5, 100):
        expected = np.percentile(values, p, axis=0, method='inverted_cdf')
        assert stats['percentiles'][f'{p:g}'] == expected.tolist(), p


def test_float_percentiles_are_within_one_histogram_bin():
    images = [random_image(np.float32, 2, 40, 40) for _ in range(2)]
    stats = compute_band_stats(['0', '1'], lambda n: images[int(n)], (2, 98))
    values = np.concatenate([img.reshape(-1, 2) for img in images]).astype(np.float64)
    width = (values.max(0) - values.min(0)) / 65536
    for p in (2, 98):
        assert np.all(np.abs(np.array(stats['percentiles'][f'{p:g}']) -
                             np.percentile(values, p, axis=0, method='inverted_cdf'))
                      <= width * 1.0001)
    assert 'histogram' in stats['percentile_method']


def test_band_stats_tool_reads_folders_and_lmdbs_and_keeps_existing_files(tmp_path, capsys):
    gt, _ = make_multiband_folder(tmp_path / 'set', ['a', 'b'], (16, 16), 2)
    tool = load_tool('band_stats')
    out = tmp_path / 'stats.json'
    assert tool.main(['--input', str(gt), '--output', str(out), '--percentiles', '2', '98']) == 0
    assert 'percentiles 2, 98 (exact (inverted CDF))' in capsys.readouterr().out
    before = out.read_text()
    assert tool.main(['--input', str(gt), '--output', str(out)]) == 2
    assert 'exists; runs that use it would change their normalisation' in capsys.readouterr().err
    assert out.read_text() == before
    lmdb_tool = load_tool('create_lmdb')
    assert lmdb_tool.main(['--input', str(gt), '--output', str(tmp_path / 'gt.lmdb'),
                           '--verify']) == 0
    from_lmdb = tmp_path / 'lmdb_stats.json'
    assert tool.main(['--input', str(tmp_path / 'gt.lmdb'), '--output', str(from_lmdb),
                      '--percentiles', '2', '98']) == 0
    a, b = json.loads(before), json.loads(from_lmdb.read_text())
    assert {k: v for k, v in a.items() if k != 'source'} == \
        {k: v for k, v in b.items() if k != 'source'}


# ---- metrics with a data range -------------------------------------------------------------------

def test_psnr_and_ssim_with_a_data_range_equal_the_rescaled_8_bit_scale():
    a = random_image(np.uint16, 4, 32, 32).astype(np.float64)
    b = np.clip(a + RNG.normal(0, 900, a.shape), 0, 65535)
    scaled = [x * 255 / 65535 for x in (a, b)]
    assert calculate_psnr(a, b, 2, data_range=65535) == pytest.approx(
        calculate_psnr(*scaled, 2), abs=1e-9)
    assert calculate_ssim(a, b, 2, data_range=65535) == pytest.approx(
        calculate_ssim(*scaled, 2), abs=1e-9)
    mse = np.mean((a[2:-2, 2:-2] - b[2:-2, 2:-2])**2)
    assert calculate_psnr(a, b, 2, data_range=65535) == pytest.approx(
        10 * np.log10(65535**2 / mse))
    ta, tb = (torch.from_numpy(x.transpose(2, 0, 1))[None] for x in (a, b))
    assert float(calculate_psnr_pt(ta, tb, 2, data_range=65535)) == pytest.approx(
        calculate_psnr(a, b, 2, data_range=65535), abs=1e-9)
    assert float(calculate_ssim_pt(ta, tb, 2, data_range=65535)) == pytest.approx(
        calculate_ssim(a, b, 2, data_range=65535), abs=1e-6)


def test_band_scores_one_band_and_ssim_averages_the_bands():
    a = random_image(np.uint16, 3, 32, 32).astype(np.float64)
    b = a.copy()
    b[:, :, 1] = np.clip(b[:, :, 1] + RNG.normal(0, 2000, b.shape[:2]), 0, 65535)
    assert calculate_psnr(a, b, 0, data_range=65535, band=0) == float('inf')
    per_band = [calculate_ssim(a, b, 0, data_range=65535, band=k) for k in range(3)]
    assert per_band[0] == per_band[2] == pytest.approx(1.0)
    assert calculate_ssim(a, b, 0, data_range=65535) == pytest.approx(np.mean(per_band))
    with pytest.raises(ValueError, match=r'band 3 does not exist: the images have 3 band\(s\)'):
        calculate_psnr(a, b, 0, band=3)
    with pytest.raises(ValueError, match='band and test_y_channel exclude each other'):
        calculate_psnr(a, b, 0, band=0, test_y_channel=True)


def test_metrics_tool_scores_16_bit_folders_with_a_data_range(tmp_path, capsys):
    gt, _ = make_multiband_folder(tmp_path / 'set', ['a'], (24, 24), 2)
    restored = tmp_path / 'restored'
    img = read_bands(gt / 'a.png')
    noisy = np.clip(img + RNG.normal(0, 50, img.shape), 0, 65535).astype(np.uint16)
    write_lossless(noisy, restored / 'a')
    tool = load_tool('calculate_metrics')
    assert tool.main(['--restored', str(restored), '--gt', str(gt), '--data-range', '10000',
                      '--json', str(tmp_path / 'm.json')]) == 0
    psnr = json.loads((tmp_path / 'm.json').read_text())['gt']['mean']['psnr']
    mse = np.mean((noisy.astype(np.float64) - img)**2)
    assert psnr == pytest.approx(10 * np.log10(10000**2 / mse))


# ---- datasets ------------------------------------------------------------------------------------

@pytest.fixture
def multiband(tmp_path) -> dict:
    train_gt, train_lq = make_multiband_folder(tmp_path / 'train', ['s0', 's1', 's2'], (32, 32),
                                               2, seed=3)
    val_gt, val_lq = make_multiband_folder(tmp_path / 'val', ['v0', 'v1'], (32, 28), 2, seed=4)
    stats = write_band_stats(train_gt, tmp_path / 'stats.json', (1, 99))
    assert stats['bands'] == 4 and stats['dtype'] == 'uint16'
    return {'train_gt': str(train_gt), 'train_lq': str(train_lq), 'val_gt': str(val_gt),
            'val_lq': str(val_lq), 'stats': str(tmp_path / 'stats.json'), 'root': tmp_path}


NORMALIZE = {'type': 'percentile', 'low': 1, 'high': 99, 'data_range': 10000}


def multiband_opt(tiny_opt: dict, data: dict, normalize: dict | None = None) -> dict:
    opt = copy.deepcopy(tiny_opt)
    normalize = normalize or {**NORMALIZE, 'stats_file': data['stats']}
    for key, split in (('train', 'train'), ('val', 'val')):
        entry = opt['datasets'][key]
        entry.update(dataroot_gt=data[f'{split}_gt'], dataroot_lq=data[f'{split}_lq'],
                     read_mode='unchanged', normalize=dict(normalize))
        entry.pop('filename_tmpl')
    opt['network_g'].update(num_in_ch=4, num_out_ch=4)
    opt['val']['metrics']['psnr_nir'] = {'type': 'calculate_psnr', 'crop_border': 2, 'band': 3}
    return opt


def eval_entry(opt: dict, key: str = 'val') -> dict:
    entry = opt['datasets'][key]
    return {k: v for k, v in entry.items() if k not in ('name', 'num_worker_per_gpu',
                                                        'batch_size_per_gpu',
                                                        'dataset_enlarge_ratio')}


def test_dataset_gives_normalised_bands_of_the_stored_pixels(tiny_opt, multiband):
    opt = multiband_opt(tiny_opt, multiband)
    dataset = build_dataset(eval_entry(opt), 'val', 2)
    item = dataset[0]
    codec = dataset.pixels.codec
    assert item['gt'].shape == (4, 32, 28) and item['lq'].shape == (4, 16, 14)
    gt = read_bands(item['gt_path'])
    assert np.array_equal(codec.to_image(item['gt']), gt)
    assert torch.allclose(item['gt'][3], torch.from_numpy(
        (gt[:, :, 3] - codec.offset[3]) / codec.scale[3]).float())
    train = build_dataset(eval_entry(opt, 'train'), 'train', 2)
    patch = train[0]
    assert patch['gt'].shape == (4, 16, 16) and patch['lq'].shape == (4, 8, 8)


def test_lq_interp_upsamples_16_bit_input(tiny_opt, multiband):
    opt = multiband_opt(tiny_opt, multiband)
    item = build_dataset({**eval_entry(opt), 'lq_interp': 'bicubic'}, 'val', 2)[0]
    codec_image = build_dataset(eval_entry(opt), 'val', 2).pixels.codec.to_image(item['lq'])
    lr = read_bands(item['lq_path'])
    assert np.array_equal(codec_image, imresize(lr, 2, output_shape=(32, 28)))


@pytest.mark.slow  # builds two LMDBs: about 3 s
def test_lmdb_gives_the_same_samples_as_the_folders(tiny_opt, multiband, tmp_path):
    lmdb_tool = load_tool('create_lmdb')
    out = [str(tmp_path / 'gt.lmdb'), str(tmp_path / 'lq.lmdb')]
    assert lmdb_tool.main(['--input', multiband['val_gt'], multiband['val_lq'], '--output',
                           *out, '--verify']) == 0
    opt = multiband_opt(tiny_opt, multiband)
    disk = build_dataset(eval_entry(opt), 'val', 2)
    lmdb = build_dataset({**eval_entry(opt), 'dataroot_gt': out[0], 'dataroot_lq': out[1],
                          'io_backend': {'type': 'lmdb'}}, 'val', 2)
    for a, b in zip(disk, lmdb):
        assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq'])


def test_an_image_of_another_type_is_a_data_error(tiny_opt, multiband):
    write_lossless(random_image(np.uint8, 4, 32, 28), Path(multiband['val_gt']) / 'v1')
    opt = multiband_opt(tiny_opt, multiband)
    dataset = build_dataset(eval_entry(opt), 'val', 2)
    with pytest.raises(DataError, match=r"v1\.png has 4 band\(s\) of uint8, but this dataset's "
                                        r"images have 4 band\(s\) of uint16"):
        dataset[1]


def test_pixel_options_are_validated_with_the_option_file(tiny_opt, multiband):
    opt = multiband_opt(tiny_opt, multiband)
    opt['datasets']['val']['read_mode'] = 'raw'
    assert "datasets.val.read_mode: expected one of color, unchanged; got 'raw'" in errors_of(opt)
    opt = multiband_opt(tiny_opt, multiband)
    opt['datasets']['val']['read_mode'] = 'color'
    assert 'datasets.val.normalize: needs read_mode: unchanged' in errors_of(opt)
    opt = multiband_opt(tiny_opt, multiband)
    opt['datasets']['train']['mean'] = [0.5] * 4
    assert ('datasets.train.mean: is for 8-bit color images; with read_mode: unchanged use '
            'normalize') in errors_of(opt)
    opt = multiband_opt(tiny_opt, multiband)
    opt['datasets']['train']['normalize']['hi'] = 98
    assert "datasets.train.normalize.hi: unknown key; did you mean 'high'?" in errors_of(opt)


def test_8_bit_metrics_on_a_multiband_validation_set_are_refused_at_start(tiny_opt, multiband,
                                                                          tmp_path):
    opt = multiband_opt(tiny_opt, multiband)
    opt['val']['metrics']['niqe'] = {'type': 'calculate_niqe', 'crop_border': 2}
    from basicsr_lite.data.loading.loaders import build_eval_loaders
    from basicsr_lite.engine.validate import check_metrics
    from basicsr_lite.options import validate_options
    loaders = build_eval_loaders(validate_options(opt, True), ('val',))
    with pytest.raises(OptionError, match=r'val\.metrics\.niqe \(calculate_niqe\) scores 8-bit '
                                          r'RGB images, but validation set tiny_val is read as '
                                          r'stored \(4 band\(s\) of uint16\)'):
        check_metrics(opt['val']['metrics'], loaders)
    bad = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'band': 4}}
    with pytest.raises(OptionError, match=r'band 4 does not exist: the images have 4 band'):
        check_metrics(bad, loaders)


# ---- training and testing ------------------------------------------------------------------------

def test_training_on_16_bit_bands_saves_and_scores_them_in_their_units(tiny_opt, multiband,
                                                                       tmp_path, capsys):
    opt = multiband_opt(tiny_opt, multiband)
    opt['val']['tb_images'] = 1
    opt['logger']['use_tb_logger'] = True
    assert train_in_process(tmp_path, opt) == 0
    log = capsys.readouterr().err
    assert 'Final validation on tiny_val (2 images)' in log and 'bicubic' in log
    root = Path(opt['path']['experiments_root'])
    state = torch.load(root / 'training_states' / '6.state', weights_only=True)
    best = state['best_metric_results']['tiny_val']['psnr']
    # the logged PSNR is the one of the saved 16-bit files, in reflectance units (data range)
    psnrs = []
    for name in ('v0', 'v1'):
        result = read_bands(root / 'visualization' / 'tiny_val' / f"{name}_{best['iter']}.png")
        assert result.dtype == np.uint16 and result.shape == (32, 28, 4)
        gt = read_bands(Path(multiband['val_gt']) / f'{name}.png').astype(np.float64)
        mse = np.mean((result[2:-2, 2:-2] - gt[2:-2, 2:-2])**2)
        psnrs.append(10 * np.log10(10000**2 / mse))
    assert best['val'] == pytest.approx(np.mean(psnrs), abs=1e-9)
    assert state['hooks']['pixel_formats']['tiny_val']['dtype'] == 'uint16'
    events = list((root / 'tb_logger').rglob('events.out.tfevents.*'))
    assert events  # the validation images (three of the four bands) went to TensorBoard


def test_resuming_with_other_statistics_is_refused(tiny_opt, multiband, tmp_path, capsys):
    opt = multiband_opt(tiny_opt, multiband)
    opt['train']['total_iter'] = 3
    assert train_in_process(tmp_path, opt) == 0
    # the statistics file is made again from other images: the stretch would change
    other, _ = make_multiband_folder(tmp_path / 'other', ['o'], (32, 32), 2, seed=9)
    write_band_stats(other, multiband['stats'], (1, 99), overwrite=True)
    opt['train']['total_iter'] = 6
    capsys.readouterr()
    assert train_in_process(tmp_path, opt, '--auto_resume') == 2
    err = capsys.readouterr().err
    assert 'Dataset tiny_train would be read differently from the run being resumed' in err
    assert 'offset' in err and 'start a new run (--branch)' in err
    assert not (Path(opt['path']['experiments_root']) / 'training_states' / '6.state').exists()


def test_test_py_writes_16_bit_results(tiny_opt, multiband, tmp_path):
    opt = multiband_opt(tiny_opt, multiband)
    opt['train']['total_iter'] = 2
    assert train_in_process(tmp_path, opt) == 0
    from basicsr_lite.test import main as test_main
    from tests.conftest import write_yaml
    test_opt = {k: opt[k] for k in ('model_type', 'scale', 'num_gpu', 'network_g', 'val')}
    test_opt['val'] = {'save_img': True, 'metrics': opt['val']['metrics']}
    test_opt.update(name='mb_test', datasets={'test_1': {**opt['datasets']['val']}},
                    path={'pretrain_network_g': str(Path(opt['path']['experiments_root']) /
                                                    'models' / 'net_g_latest.pth'),
                          'results_root': str(tmp_path / 'results')})
    assert test_main(['-opt', str(write_yaml(tmp_path / 'test.yml', test_opt))]) == 0
    metrics = json.loads((tmp_path / 'results' / 'metrics.json').read_text())['tiny_val']
    assert set(metrics['mean']) == {'psnr', 'ssim', 'psnr_nir'}
    saved = read_bands(tmp_path / 'results' / 'visualization' / 'tiny_val' / 'v0_mb_test.png')
    assert saved.dtype == np.uint16 and saved.shape[2] == 4


def test_a_16_bit_png_read_as_8_bit_is_said_once(tiny_opt, multiband, monkeypatch):
    from basicsr_lite.data.io import pixels
    monkeypatch.setattr(pixels, '_warned_16_bit', False)
    opt = multiband_opt(tiny_opt, multiband)
    entry = {k: v for k, v in eval_entry(opt).items() if k not in ('read_mode', 'normalize')}
    # 8-bit reading keeps three of the four bands: make the images 3-band 16-bit
    for folder in (multiband['val_gt'], multiband['val_lq']):
        for path in Path(folder).glob('*.png'):
            write_lossless(read_bands(path)[:, :, :3], path.with_suffix(''))
    dataset = build_dataset(entry, 'val', 2)
    records: list = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger('basicsr_lite')
    logger.addHandler(handler)  # (train runs turn the logger's propagation off)
    try:
        dataset[0], dataset[1]
    finally:
        logger.removeHandler(handler)
    warnings = [r.getMessage() for r in records if '16-bit PNG' in r.getMessage()]
    assert len(warnings) == 1 and 'read_mode: unchanged to keep the 16 bits' in warnings[0]
