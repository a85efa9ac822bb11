"""The probabilities and ranges of the Real-ESRGAN degradation model, counted over a few hundred
fixed seeds with DIFFERENT settings for the two stages: each branch frequency against its
configured probability (5-sigma binomial tolerance: an inverted probability or a stage reading
the other stage's keys is far outside it) and every drawn value inside its own stage's range.

The branches are observed by spies on the functions each branch calls (the real ones still run,
on 16x16 images), so nothing depends on the pixels."""
from __future__ import annotations

import math
from collections import Counter

import cv2
import numpy as np
import pytest
import torch

from basicsr_lite.data.degrade import batch_degradations, kernels, realesrgan_pipeline
from basicsr_lite.data.degrade.realesrgan_pipeline import HighOrderDegradation
from basicsr_lite.data.loading.sample_wrappers import SeededSamples
from basicsr_lite.data.realesrgan_dataset import RealESRGANDataset
from basicsr_lite.runtime.random_streams import RandomStreams


def assert_rate(count: int, n: int, p: float, what: str) -> None:
    """``count`` successes of ``n`` trials agree with probability ``p`` (5 sigma)."""
    tolerance = 5 * math.sqrt(n * p * (1 - p)) + 1
    assert abs(count - n * p) <= tolerance, \
        f'{what}: {count} of {n} (expected {n * p:.0f} +- {tolerance:.0f}, p = {p})'


def assert_spans(values, low: float, high: float, what: str) -> None:
    """All ``values`` in [low, high], and reaching close to both ends (the whole range is used)."""
    values = np.asarray(values, dtype=np.float64)
    assert values.size, f'{what}: no draws'
    assert values.min() >= low - 1e-6 and values.max() <= high + 1e-6, \
        f'{what}: drawn in [{values.min():.4g}, {values.max():.4g}], not within [{low}, {high}]'
    margin = 0.15 * (high - low)
    assert values.min() < low + margin and values.max() > high - margin, \
        f'{what}: drawn in [{values.min():.4g}, {values.max():.4g}], not spanning [{low}, {high}]'


# ---- the batch pipeline (HighOrderDegradation) -------------------------------------------------

PIPELINE = {
    'resize_prob': [0.6, 0.3, 0.1], 'resize_range': [0.5, 1.5],
    'gaussian_noise_prob': 0.8, 'noise_range': [1, 5], 'poisson_scale_range': [0.05, 0.5],
    'gray_noise_prob': 0.15, 'jpeg_range': [30, 50],
    'second_blur_prob': 0.3,
    'resize_prob2': [0.1, 0.25, 0.65], 'resize_range2': [0.8, 1.2],
    'gaussian_noise_prob2': 0.3, 'noise_range2': [20, 30], 'poisson_scale_range2': [1, 2],
    'gray_noise_prob2': 0.7, 'jpeg_range2': [80, 95],
}
CALLS, BATCH, GT, SCALE = 300, 4, 16, 4


@pytest.fixture(scope='module')
def pipeline_events() -> list[list[tuple]]:
    """For each of CALLS seeds, the events of one degradation of a BATCH x 3 x 16 x 16 batch:
    ('blur', 'k1' | 'k2' | 'sinc'), ('scale', factor), ('resize', size, mode),
    ('gaussian' | 'poisson', strengths, gray flags), ('jpeg', qualities)."""
    log: list[tuple] = []
    with pytest.MonkeyPatch.context() as mp:
        def spy(module, name, record):
            real = getattr(module, name)

            def wrapper(*args, **kwargs):
                out = real(*args, **kwargs)
                log.append(record(out, *args, **kwargs))
                return out
            mp.setattr(module, name, wrapper)

        k1, k2, sinc = (torch.full((7, 7), 1 / 49) for _ in range(3))
        names = {id(k1): 'k1', id(k2): 'k2', id(sinc): 'sinc'}
        spy(realesrgan_pipeline, 'filter2d', lambda out, img, k: ('blur', names[id(k)]))
        spy(realesrgan_pipeline, 'resize',
            lambda out, img, size, mode: ('resize', tuple(out.shape[-2:]), mode))
        for kind in ('gaussian', 'poisson'):
            spy(batch_degradations, f'{kind}_noise',
                lambda out, img, strength, gray, gen, kind=kind:
                (kind, strength.tolist(), gray.tolist()))
        real_scale = HighOrderDegradation._scale
        mp.setattr(HighOrderDegradation, '_scale', staticmethod(
            lambda *args: log.append(('scale', real_scale(*args))) or log[-1][1]))
        degrade = HighOrderDegradation(PIPELINE, SCALE, torch.device('cpu'))
        # JPEG itself is not under test (its quality draw is: it happens before the call)
        degrade.jpeg = lambda img, quality: log.append(('jpeg', quality.tolist())) or img
        gt = torch.rand(BATCH, 3, GT, GT, generator=torch.Generator().manual_seed(0))
        runs = []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny tensors: 10x faster than several threads on a busy CPU
        try:
            for seed in range(CALLS):
                log.clear()
                lq = degrade(gt, k1, k2, sinc, RandomStreams(seed, torch.device('cpu')))
                assert lq.shape == (BATCH, 3, GT // SCALE, GT // SCALE)
                runs.append(list(log))
        finally:
            torch.set_num_threads(threads)
    return runs


FIRST = ['blur', 'scale', 'resize', 'noise', 'jpeg']


def kinds(run: list[tuple]) -> list[str]:
    return ['noise' if e[0] in ('gaussian', 'poisson') else e[0] for e in run]


def stages(run: list[tuple]) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """(first stage, second stage, final step) of one run, checking the order of the events."""
    second_len = 4 if run[5] == ('blur', 'k2') else 3
    first, second, final = run[:5], run[5:5 + second_len], run[5 + second_len:]
    assert kinds(first) == FIRST
    assert kinds(second) == ['blur', 'scale', 'resize', 'noise'][4 - second_len:]
    assert kinds(final) in (['resize', 'blur', 'jpeg'], ['jpeg', 'resize', 'blur'])
    assert first[0] == ('blur', 'k1') and ('blur', 'sinc') in final
    return first, second, final


def test_pipeline_runs_the_stages_in_order(pipeline_events):
    for run in pipeline_events:
        first, second, final = stages(run)
        f1, f2 = first[1][1], second[-3][1]
        assert first[2][1] == (int(GT * f1),) * 2  # relative to the GT size
        assert second[-2][1] == (int(GT / SCALE * f2),) * 2  # relative to the LQ size
        assert next(e for e in final if e[0] == 'resize')[1] == (GT // SCALE,) * 2


def test_pipeline_branch_frequencies_follow_each_stages_probabilities(pipeline_events):
    runs = [stages(run) for run in pipeline_events]
    n = len(runs)
    assert_rate(sum(second[0] == ('blur', 'k2') for _, second, _ in runs), n,
                PIPELINE['second_blur_prob'], 'second_blur_prob')
    assert_rate(sum(final[0][0] == 'jpeg' for _, _, final in runs), n, 0.5,
                'final JPEG before the sinc')
    for stage, suffix, index in (('first', '', 0), ('second', '2', 1)):
        picked = [r[index] for r in runs]
        noise = [next(e for e in s if e[0] in ('gaussian', 'poisson')) for s in picked]
        assert_rate(sum(e[0] == 'gaussian' for e in noise), n,
                    PIPELINE[f'gaussian_noise_prob{suffix}'], f'gaussian_noise_prob{suffix}')
        gray = [flag for e in noise for flag in e[2]]
        assert set(gray) == {0.0, 1.0}
        assert_rate(int(sum(gray)), n * BATCH, PIPELINE[f'gray_noise_prob{suffix}'],
                    f'gray_noise_prob{suffix}')
        factors = [next(e[1] for e in s if e[0] == 'scale') for s in picked]
        directions = Counter('up' if f > 1 else 'down' if f < 1 else 'keep' for f in factors)
        for direction, p in zip(('up', 'down', 'keep'), PIPELINE[f'resize_prob{suffix}']):
            assert_rate(directions[direction], n, p, f'resize_prob{suffix} ({direction})')
    modes = Counter(e[2] for run in pipeline_events for e in run if e[0] == 'resize')
    assert set(modes) == set(batch_degradations.RESIZE_MODES)
    for mode in modes:
        assert_rate(modes[mode], 3 * n, 1 / 3, f'resize mode {mode}')


def test_pipeline_values_are_drawn_from_each_stages_range(pipeline_events):
    runs = [stages(run) for run in pipeline_events]
    for suffix, index in (('', 0), ('2', 1)):
        picked = [r[index] for r in runs]
        noise = [next(e for e in s if e[0] in ('gaussian', 'poisson')) for s in picked]
        for kind, key in (('gaussian', 'noise_range'), ('poisson', 'poisson_scale_range')):
            assert_spans([v for e in noise if e[0] == kind for v in e[1]],
                         *PIPELINE[f'{key}{suffix}'], f'{key}{suffix}')
        factors = [next(e[1] for e in s if e[0] == 'scale') for s in picked]
        low, high = PIPELINE[f'resize_range{suffix}']
        assert_spans([f for f in factors if f > 1], 1, high, f'resize_range{suffix} (up)')
        assert_spans([f for f in factors if f < 1], low, 1, f'resize_range{suffix} (down)')
    assert_spans([q for first, _, _ in runs for q in first[4][1]], *PIPELINE['jpeg_range'],
                 'jpeg_range')
    assert_spans([q for _, _, final in runs for e in final if e[0] == 'jpeg' for q in e[1]],
                 *PIPELINE['jpeg_range2'], 'jpeg_range2')


# ---- the kernels of each sample (RealESRGANDataset) --------------------------------------------

DATASET = {
    'blur_kernel_size': 7, 'kernel_list': ['iso', 'generalized_aniso', 'plateau_iso'],
    'kernel_prob': [0.6, 0.3, 0.1], 'sinc_prob': 0.2, 'blur_sigma': [0.2, 1.0],
    'betag_range': [0.6, 1.5], 'betap_range': [0.8, 2.0],
    'blur_kernel_size2': 11, 'kernel_list2': ['aniso', 'generalized_iso', 'plateau_aniso'],
    'kernel_prob2': [0.15, 0.25, 0.6], 'sinc_prob2': 0.6, 'blur_sigma2': [1.5, 3.0],
    'betag_range2': [0.3, 4.0], 'betap_range2': [0.5, 3.0],
    'final_sinc_prob': 0.35,
}
ITEMS = 400
FAMILIES = {'bivariate_gaussian': '', 'bivariate_generalized_gaussian': 'generalized_',
            'bivariate_plateau': 'plateau_'}


@pytest.fixture(scope='module')
def kernel_draws(tmp_path_factory) -> list[tuple[list[dict], dict]]:
    """For ITEMS seeds: the kernel constructions of one sample, in order (stage 1, stage 2,
    the final sinc if any), each ``{'type', 'size', 'sigma', 'theta', 'beta', 'cutoff',
    'pad_to'}``, and the sample."""
    folder = tmp_path_factory.mktemp('realesrgan_gt')
    cv2.imwrite(str(folder / 'a.png'), np.full((8, 8, 3), 128, np.uint8))
    dataset = SeededSamples(RealESRGANDataset(str(folder), crop_pad_size=8, use_hflip=False,
                                              **DATASET))
    log: list[dict] = []
    with pytest.MonkeyPatch.context() as mp:
        real_sinc = kernels.circular_lowpass_kernel

        def sinc(cutoff, kernel_size, pad_to=0):
            log.append({'type': 'sinc', 'cutoff': cutoff, 'size': kernel_size, 'pad_to': pad_to})
            return real_sinc(cutoff, kernel_size, pad_to)
        mp.setattr(kernels, 'circular_lowpass_kernel', sinc)
        for name, prefix in FAMILIES.items():
            def family(kernel_size, sigma_x, sigma_y, theta, *beta, isotropic=True,
                       real=getattr(kernels, name), prefix=prefix):
                log.append({'type': prefix + ('iso' if isotropic else 'aniso'),
                            'size': kernel_size, 'sigma': (sigma_x, sigma_y), 'theta': theta,
                            'beta': beta[0] if beta else None})
                return real(kernel_size, sigma_x, sigma_y, theta, *beta, isotropic=isotropic)
            mp.setattr(kernels, name, family)
        draws = []
        for seed in range(ITEMS):
            log.clear()
            item = dataset[(0, seed)]
            draws.append((list(log), item))
    return draws


def test_each_sample_draws_one_kernel_per_stage_and_maybe_a_final_sinc(kernel_draws):
    impulse = torch.zeros(21, 21)
    impulse[10, 10] = 1
    for log, item in kernel_draws:
        assert len(log) in (2, 3)
        assert item['kernel1'].shape == (7, 7) and item['kernel2'].shape == (11, 11)
        assert log[0]['size'] == 7 and log[1]['size'] in (7, 9, 11)
        if len(log) == 3:
            assert log[2]['type'] == 'sinc' and log[2]['pad_to'] == 21
            assert not torch.equal(item['sinc_kernel'], impulse)
        else:
            assert torch.equal(item['sinc_kernel'], impulse)
    assert {log[1]['size'] for log, _ in kernel_draws} == {7, 9, 11}


def test_kernel_type_frequencies_follow_each_stages_probabilities(kernel_draws):
    n = len(kernel_draws)
    assert_rate(sum(len(log) == 3 for log, _ in kernel_draws), n, DATASET['final_sinc_prob'],
                'final_sinc_prob')
    for index, suffix in ((0, ''), (1, '2')):
        drawn = [log[index] for log, _ in kernel_draws]
        sincs = sum(d['type'] == 'sinc' for d in drawn)
        assert_rate(sincs, n, DATASET[f'sinc_prob{suffix}'], f'sinc_prob{suffix}')
        types = Counter(d['type'] for d in drawn if d['type'] != 'sinc')
        assert set(types) == set(DATASET[f'kernel_list{suffix}'])
        for kind, p in zip(DATASET[f'kernel_list{suffix}'], DATASET[f'kernel_prob{suffix}']):
            assert_rate(types[kind], n - sincs, p, f'kernel_prob{suffix} ({kind})')


def test_kernel_parameters_are_drawn_from_each_stages_ranges(kernel_draws):
    for index, suffix in ((0, ''), (1, '2')):
        drawn = [log[index] for log, _ in kernel_draws]
        shaped = [d for d in drawn if d['type'] != 'sinc']
        sigmas = [s for d in shaped for s in d['sigma']]
        assert_spans(sigmas, *DATASET[f'blur_sigma{suffix}'], f'blur_sigma{suffix}')
        for d in shaped:
            if d['type'].endswith('_iso') or d['type'] == 'iso':
                assert d['sigma'][0] == d['sigma'][1] and d['theta'] == 0
        thetas = [d['theta'] for d in shaped if d['type'].endswith('aniso')]
        assert_spans(thetas, -math.pi, math.pi, f'rotation (stage {index + 1})')
        for family, key in (('generalized', 'betag_range'), ('plateau', 'betap_range')):
            betas = [d['beta'] for d in shaped if d['type'].startswith(family)]
            low, high = DATASET[f'{key}{suffix}']
            assert_spans([b for b in betas if b < 1], low, 1, f'{key}{suffix} (below 1)')
            assert_spans([b for b in betas if b >= 1], 1, high, f'{key}{suffix} (above 1)')
            assert_rate(sum(b < 1 for b in betas), len(betas), 0.5, f'{key}{suffix}: beta < 1')
        assert all(d['beta'] is None for d in shaped if d['type'] in ('iso', 'aniso'))
        # sinc kernels below size 13: cutoff in [pi/3, pi]
        assert_spans([d['cutoff'] for d in drawn if d['type'] == 'sinc'], math.pi / 3, math.pi,
                     f'sinc cutoff (stage {index + 1})')
    finals = [log[2] for log, _ in kernel_draws if len(log) == 3]
    assert_spans([d['cutoff'] for d in finals], math.pi / 3, math.pi, 'final sinc cutoff')
    assert {d['size'] for d in finals} == set(range(7, 22, 2))
