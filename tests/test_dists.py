"""DISTS (archs/dists_arch.py, losses/dists_loss.py, metrics/dists_metric.py) with the authors'
alpha / beta file (../shared/weights/DISTS/weights.pt) and a random VGG16 in torchvision's
layout at the torch hub cache path (no ImageNet VGG16 file is obtainable offline): key layout,
the loading path, L2 pooling and the distance against independent computations, the loss's
gradients and precision, the metric's forms and validation use, errors.

The published values (IQA-PyTorch's five TID2013 calibration pairs) need torchvision's ImageNet
``vgg16-397923af.pth``: ``test_calibration_pairs_match_the_published_values`` runs them when that
file is in the torch hub cache and skips otherwise."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from basicsr_lite.archs.dists_arch import DISTS, L2pooling, dists_score
from basicsr_lite.archs.vgg_arch import hub_weight_path
from basicsr_lite.engine.validate import image_metrics
from basicsr_lite.errors import UserError
from basicsr_lite.losses import build_loss
from basicsr_lite.losses.dists_loss import DISTSLoss
from basicsr_lite.metrics import metric_better
from basicsr_lite.metrics.dists_metric import calculate_dists, calculate_dists_pt
from basicsr_lite.runtime.weights import load_torch

DISTS_DIR = Path(__file__).resolve().parents[2] / 'shared' / 'weights' / 'DISTS'
WEIGHTS = DISTS_DIR / 'weights.pt'
pytestmark = pytest.mark.skipif(not WEIGHTS.is_file(),
                                reason='../shared/weights/DISTS/weights.pt is absent')
# IQA-PyTorch @ 01ae427 ResultsCalibra/ResultsCalibra.md:11, DISTS(org) (the authors' code)
PUBLISHED = {'I03': 0.4742, 'I04': 0.1424, 'I06': 0.0682, 'I08': 0.0287, 'I19': 0.3123}
# torchvision vgg16.features: (stage, index of its L2 pooling or None, [(conv index, in, out)])
AUTHORS_STAGES = [
    (1, None, [(0, 3, 64), (2, 64, 64)]),
    (2, 4, [(5, 64, 128), (7, 128, 128)]),
    (3, 9, [(10, 128, 256), (12, 256, 256), (14, 256, 256)]),
    (4, 16, [(17, 256, 512), (19, 512, 512), (21, 512, 512)]),
    (5, 23, [(24, 512, 512), (26, 512, 512), (28, 512, 512)]),
]


@pytest.fixture
def dists_env(random_backbones, monkeypatch):
    monkeypatch.setenv('BASICSR_LITE_DISTS_WEIGHTS', str(WEIGHTS))


def pair(seed: int = 0, size: int = 32, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 3, size, size, generator=gen)
    return a, (a + 0.1 * torch.randn(a.shape, generator=gen)).clamp(0, 1)


def test_keys_and_shapes_follow_the_authors_layout(dists_env):
    """DISTS_pt.py: own parameters alpha, beta, buffers mean, std, then stage1..stage5 holding
    vgg16.features modules under their indices, L2pooling(channels) in place of each pool."""
    expected = [('alpha', (1, 1475, 1, 1)), ('beta', (1, 1475, 1, 1)),
                ('mean', (1, 3, 1, 1)), ('std', (1, 3, 1, 1))]
    for stage, pool, convs in AUTHORS_STAGES:
        if pool is not None:
            expected.append((f'stage{stage}.{pool}.filter', (convs[0][1], 1, 3, 3)))
        for index, c_in, c_out in convs:
            expected += [(f'stage{stage}.{index}.weight', (c_out, c_in, 3, 3)),
                         (f'stage{stage}.{index}.bias', (c_out,))]
    model = DISTS()
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == expected
    # VGG16's 13 convs (torchvision: 14,714,688 in vgg16.features) + alpha and beta
    assert sum(p.numel() for p in model.parameters()) == 14_714_688 + 2 * 1475
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.slow  # default-suite time: kept for the slow run
def test_backbone_comes_from_the_hub_cache_file(dists_env):
    model = DISTS()
    stored = load_torch(hub_weight_path('vgg16'))
    for stage, _, convs in AUTHORS_STAGES:
        for index, _, _ in convs:
            for leaf in ('weight', 'bias'):
                assert torch.equal(model.state_dict()[f'stage{stage}.{index}.{leaf}'],
                                   stored[f'features.{index}.{leaf}'])


def test_alpha_beta_file_loads_with_its_shapes(dists_env):
    weights = load_torch(WEIGHTS)
    assert weights['alpha'].shape == weights['beta'].shape == (1, 1475, 1, 1)
    model = DISTS()
    assert torch.equal(model.alpha, weights['alpha']) and torch.equal(model.beta, weights['beta'])
    assert (weights['alpha'].sum() + weights['beta'].sum()).item() == pytest.approx(1, abs=1e-5)


def test_l2_pooling_equals_its_definition():
    """sqrt(sum_uv w_uv x^2 + 1e-12), w = outer(h, h) / 4 with h = (0.5, 1, 0.5) (the Hanning
    window of 5 without its zero ends), stride 2, zero padding 1."""
    x = torch.randn(2, 4, 9, 8, generator=torch.Generator().manual_seed(1))
    pool = L2pooling(channels=4)
    w = np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]) / 4
    padded = np.pad(x.double().numpy() ** 2, ((0, 0), (0, 0), (1, 1), (1, 1)))
    rows, cols = (9 + 2 - 3) // 2 + 1, (8 + 2 - 3) // 2 + 1
    expected = np.zeros((2, 4, rows, cols))
    for i in range(rows):
        for j in range(cols):
            window = padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            expected[:, :, i, j] = np.sqrt((window * w).sum(axis=(2, 3)) + 1e-12)
    np.testing.assert_allclose(pool(x).numpy(), expected, rtol=1e-5, atol=1e-7)
    assert pool.filter.shape == (4, 1, 3, 3)


def reference_features(x: torch.Tensor, state: dict) -> list[torch.Tensor]:
    """VGG16 relu1_2 .. relu5_3 of the ImageNet-normalised ``x`` with L2 pooling, written from
    the paper / DISTS_pt.py without the module under test."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h, feats = (x - mean) / std, [x]
    window = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    for _, pool, convs in AUTHORS_STAGES:
        if pool is not None:
            c = h.shape[1]
            h = torch.sqrt(F.conv2d(h * h, window.expand(c, 1, 3, 3), stride=2, padding=1,
                                    groups=c) + 1e-12)
        for index, _, _ in convs:
            h = F.relu(F.conv2d(h, state[f'features.{index}.weight'],
                                state[f'features.{index}.bias'], padding=1))
        feats.append(h)
    return feats


def reference_dists(feats: list[np.ndarray], feats2: list[np.ndarray], alpha: np.ndarray,
                    beta: np.ndarray) -> np.ndarray:
    """The DISTS formula per image in float64 numpy: 1 - sum over maps and channels of
    alpha * (2 mx my + c) / (mx^2 + my^2 + c) + beta * (2 cov + c) / (vx + vy + c), c = 1e-6,
    alpha and beta divided by their joint sum."""
    total = alpha.sum() + beta.sum()
    alpha, beta = alpha.ravel() / total, beta.ravel() / total
    start = 0
    scores = np.ones(feats[0].shape[0])
    for x, y in zip(feats, feats2):
        c = x.shape[1]
        a, b = alpha[start:start + c], beta[start:start + c]
        start += c
        for n in range(x.shape[0]):
            fx, fy = x[n].reshape(c, -1), y[n].reshape(c, -1)
            mx, my = fx.mean(1), fy.mean(1)
            vx, vy = fx.var(1), fy.var(1)
            cov = ((fx - mx[:, None]) * (fy - my[:, None])).mean(1)
            texture = (2 * mx * my + 1e-6) / (mx ** 2 + my ** 2 + 1e-6)
            structure = (2 * cov + 1e-6) / (vx + vy + 1e-6)
            scores[n] -= (a * texture).sum() + (b * structure).sum()
    assert start == 1475
    return scores


def test_distance_equals_an_independent_computation(dists_env):
    model = DISTS()
    state = load_torch(hub_weight_path('vgg16'))
    x, y = pair()
    feats, feats2 = (reference_features(t, state) for t in (x, y))
    for mine, ref in zip(model.features(x), feats):
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-6)
    weights = load_torch(WEIGHTS)
    expected = reference_dists([f.double().numpy() for f in feats],
                               [f.double().numpy() for f in feats2],
                               weights['alpha'].double().numpy(), weights['beta'].double().numpy())
    got = model(x, y)
    assert got.shape == (2,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-6)
    # the formula alone, on the same (random) features: random alpha / beta too
    gen = torch.Generator().manual_seed(3)
    alpha, beta = torch.rand(1, 1475, 1, 1, generator=gen), torch.rand(1, 1475, 1, 1, generator=gen)
    np.testing.assert_allclose(
        dists_score(feats, feats2, alpha, beta).numpy(),
        reference_dists([f.double().numpy() for f in feats], [f.double().numpy() for f in feats2],
                        alpha.double().numpy(), beta.double().numpy()), rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # default-suite time: kept for the slow run
def test_distance_properties(dists_env):
    model = DISTS()
    x, y = pair()
    far = torch.rand(x.shape, generator=torch.Generator().manual_seed(9))
    assert torch.all(model(x, x).abs() < 1e-6)  # alpha + beta sum to 1: 1 - 1
    near, d_far = model(x, y), model(x, far)
    assert torch.all(near > 0) and torch.all(d_far > near) and torch.all(d_far < 1)
    torch.testing.assert_close(model(y, x), near)  # symmetric


def test_loss_value_gradients_and_precision(dists_env):
    x, gt = pair(seed=4)
    loss = DISTSLoss(loss_weight=0.5)
    per_image = DISTS()(x, gt)
    pred = x.clone().requires_grad_(True)
    target = gt.clone().requires_grad_(True)
    value = loss(pred, target)
    torch.testing.assert_close(value, 0.5 * per_image.mean())
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None  # the reference gets no gradient
    assert not any(p.grad is not None for p in loss.parameters())
    with torch.autocast('cpu', dtype=torch.bfloat16):  # computed in float32 all the same
        in_autocast = loss(x.bfloat16(), gt)
    assert in_autocast.dtype == torch.float32
    torch.testing.assert_close(in_autocast, loss(x.bfloat16().float(), gt))
    metric_form = DISTSLoss(as_loss=False, loss_weight=0.5)(pred, gt)
    assert metric_form.shape == (2,) and not metric_form.requires_grad
    torch.testing.assert_close(metric_form, per_image)


@pytest.mark.slow  # default-suite time: kept for the slow run
def test_loss_builds_from_options(dists_env, tmp_path):
    opt = {'type': 'DISTSLoss', 'loss_weight': 0.25, 'dists_weights': str(WEIGHTS),
           'vgg_weights': str(hub_weight_path('vgg16'))}
    loss = build_loss(opt)
    assert isinstance(loss, DISTSLoss) and loss.loss_weight == 0.25
    x, gt = pair(size=16, n=1)
    torch.testing.assert_close(loss(x, gt), 0.25 * DISTS()(x, gt).mean())


@pytest.mark.slow  # a full VGG16 on 256 x 256 images, twice
def test_numpy_form_equals_the_batched_form(dists_env):
    a, b = pair(size=40, n=1)
    img, img2 = ((t.permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)
                 for t in (a[0], b[0]))
    quantised = [torch.from_numpy(x[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
                 for x in (img, img2)]
    for crop in (0, 4):
        assert calculate_dists(img, img2, crop) == pytest.approx(
            calculate_dists_pt(*quantised, crop).item(), rel=1e-5)
    chw = calculate_dists(img.transpose(2, 0, 1), img2.transpose(2, 0, 1), input_order='CHW')
    assert chw == pytest.approx(calculate_dists(img, img2), rel=1e-6)


def test_in_validation_with_its_direction(dists_env):
    a, b = pair(size=48, n=1)
    b = (b * 255).round() / 255  # GT images are 8-bit
    values = image_metrics(a, b, {'dists': {'type': 'calculate_dists_pt'},
                                  'dists_np': {'type': 'calculate_dists'}})
    assert values['dists'] == pytest.approx(values['dists_np'], rel=1e-4)
    assert metric_better({'type': 'calculate_dists'}) == 'lower'
    assert metric_better({'type': 'calculate_dists_pt'}) == 'lower'
    assert image_metrics(a, None, {'dists': {'type': 'calculate_dists_pt'}}) == {}


@pytest.mark.slow  # default-suite time: kept for the slow run
def test_missing_or_wrong_files_are_clear_errors(random_backbones, tmp_path, monkeypatch):
    monkeypatch.setenv('BASICSR_LITE_DISTS_WEIGHTS', str(tmp_path / 'nothing.pt'))
    with pytest.raises(UserError, match=r'DISTS needs its learned alpha / beta file weights.pt'):
        DISTSLoss()
    monkeypatch.setenv('BASICSR_LITE_DISTS_WEIGHTS', str(WEIGHTS))
    wrong = tmp_path / 'wrong.pt'
    torch.save({'alpha': torch.ones(1, 1472, 1, 1), 'beta': torch.ones(1, 1475, 1, 1)}, wrong)
    with pytest.raises(UserError, match=r'alpha should be a tensor of shape \(1, 1475, 1, 1\)'):
        DISTSLoss(dists_weights=str(wrong))
    with pytest.raises(UserError, match='ImageNet weights file /nonexistent/vgg16.pth does not'):
        DISTSLoss(vgg_weights='/nonexistent/vgg16.pth')
    alexnet = load_torch(hub_weight_path('alexnet'))
    torch.save(alexnet, tmp_path / 'alex.pth')
    with pytest.raises(UserError, match=r'features.0.weight of shape \(64, 3, 3, 3\): not a'):
        DISTSLoss(vgg_weights=str(tmp_path / 'alex.pth'))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty_home'))
    monkeypatch.setattr(torch.hub, 'download_url_to_file',
                        lambda *a, **k: (_ for _ in ()).throw(OSError('no network')))
    for build, hint in ((DISTSLoss, 'give the loss a vgg_weights path'),
                        (lambda: calculate_dists_pt(*pair()),
                         'give calculate_dists a vgg_weights path')):
        with pytest.raises(UserError) as err:
            build()
        assert 'vgg16-397923af.pth are not available' in str(err.value)
        assert str(hub_weight_path('vgg16')) in str(err.value) and hint in str(err.value)


def real_vgg16() -> Path:
    """torchvision's ImageNet VGG16 in the torch hub cache (not the tests' random one)."""
    path = hub_weight_path('vgg16')
    if not path.is_file():
        pytest.skip(f'needs torchvision\'s ImageNet VGG16 weights at {path} (the torch hub '
                    f'cache; https://download.pytorch.org/models/vgg16-397923af.pth, 528 MB) to '
                    f'check DISTS against the published values {PUBLISHED}')
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest.startswith('397923af'), f'{path} is not torchvision\'s vgg16-397923af.pth'
    return path


@pytest.mark.slow
@pytest.mark.reproduction
def test_calibration_pairs_match_the_published_values():
    """IQA-PyTorch's five TID2013 pairs (ResultsCalibra/{ref_dir,dist_dir}) at full size
    (512 x 384), DISTS(org) = the authors' DISTS_pt.py with ImageNet VGG16: I03 0.4742, I04
    0.1424, I06 0.0682 (0.0683 in its calibration_summary.csv), I08 0.0287, I19 0.3123."""
    import cv2
    vgg = real_vgg16()
    got = {}
    for name in PUBLISHED:
        ref, dist = (cv2.imread(str(DISTS_DIR / 'calib' / folder / f'{name}.bmp'))
                     for folder in ('ref_dir', 'dist_dir'))
        got[name] = calculate_dists(dist, ref, vgg_weights=str(vgg), dists_weights=str(WEIGHTS))
    for name, value in PUBLISHED.items():
        assert got[name] == pytest.approx(value, abs=1.5e-4), got


def test_option_schema_takes_the_loss_and_names_a_misspelt_key():
    from basicsr_lite.options.spec import SpecKit
    errors: list[str] = []
    opt = SpecKit.loss().validate({'type': 'DISTSLoss', 'loss_weight': 1, 'as_loss': True,
                                   'vgg_weights': None, 'dists_weights': str(WEIGHTS)},
                                  'train.perceptual_opt', errors, None)
    assert errors == [] and opt['loss_weight'] == 1.0
    SpecKit.loss().validate({'type': 'DISTSLoss', 'dists_weight': 'w.pt'}, 'train.pixel_opt',
                            errors, None)
    assert len(errors) == 1 and "did you mean 'dists_weights'" in errors[0]


@pytest.mark.slow  # a training run with a full VGG16
def test_a_tiny_run_trains_on_dists_and_validates_with_it(dists_env, tiny_opt, tmp_path):
    """As a scalar loss DISTS fits any slot that takes one (here ``pixel_opt``) and the list
    form; not ``perceptual_opt``, whose loss returns (perceptual, style)."""
    from basicsr_lite.train import main as train_main
    from tests.conftest import write_yaml
    tiny_opt['train'].update(total_iter=2, pixel_opt={'type': 'DISTSLoss', 'loss_weight': 1.0})
    tiny_opt['val'].update(val_freq=2, metrics={'dists': {'type': 'calculate_dists_pt',
                                                          'crop_border': 2}})
    tiny_opt['logger']['save_checkpoint_freq'] = 2
    assert train_main(['-opt', str(write_yaml(tmp_path / 'opt.yml', tiny_opt))]) == 0
    log = next(Path(tiny_opt['path']['experiments_root']).glob('train_tiny_*.log')).read_text()
    assert 'l_pix:' in log and 'dists' in log
