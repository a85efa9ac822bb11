"""NIQE against MATLAB's published value on BasicSR's test image; numpy == torch; batches;
no-reference use in validation; clear errors."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr_lite.engine.validate import image_metrics
from basicsr_lite.metrics.niqe_metric import calculate_niqe, calculate_niqe_pt

NIQE_DIR = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'niqe'
PARAMS = str(NIQE_DIR / 'niqe_pris_params.npz')
pytestmark = pytest.mark.skipif(not NIQE_DIR.is_dir(), reason='../shared/data/niqe is absent')


@pytest.fixture(scope='module')
def baboon() -> np.ndarray:
    return cv2.imread(str(NIQE_DIR / 'baboon.png'))


def as_tensor(bgr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255


@pytest.mark.reproduction
def test_baboon_matches_matlabs_published_value(baboon):
    """Published: 5.7296 (MATLAB, Y channel, crop 0); measured here: 5.72996."""
    assert calculate_niqe(baboon, 0, params_path=PARAMS) == pytest.approx(5.7296, abs=1e-3)


@pytest.mark.parametrize('crop_border,convert_to', [(0, 'y'), (4, 'y'), (0, 'gray')])
def test_torch_equals_numpy(baboon, crop_border, convert_to):
    expected = calculate_niqe(baboon, crop_border, convert_to=convert_to, params_path=PARAMS)
    got = calculate_niqe_pt(as_tensor(baboon), crop_border, convert_to=convert_to,
                            params_path=PARAMS)
    assert got.shape == (1,) and got.item() == pytest.approx(expected, abs=1e-6)


def test_batches_and_orders(baboon):
    crops = [baboon[:200, :300], baboon[150:350, 100:400]]
    batch = torch.cat([as_tensor(c) for c in crops])
    values = calculate_niqe_pt(batch, 0, params_path=PARAMS)
    expected = [calculate_niqe(c, 0, params_path=PARAMS) for c in crops]
    np.testing.assert_allclose(values.numpy(), expected, atol=1e-6)
    chw = calculate_niqe(crops[0].transpose(2, 0, 1), 0, input_order='CHW', params_path=PARAMS)
    assert chw == expected[0]


def test_noise_raises_niqe(baboon):
    rng = np.random.default_rng(0)
    noisy = np.clip(baboon + rng.normal(0, 25, baboon.shape), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(baboon, (0, 0), 3)
    clean = calculate_niqe(baboon, 0, params_path=PARAMS)
    assert calculate_niqe(noisy, 0, params_path=PARAMS) > clean + 1
    assert calculate_niqe(blurred, 0, params_path=PARAMS) > clean + 1


def test_no_reference_metric_in_validation_without_gt(baboon, monkeypatch):
    monkeypatch.setenv('BASICSR_LITE_NIQE_PARAMS', PARAMS)
    metrics = {'niqe': {'type': 'calculate_niqe', 'crop_border': 0},
               'niqe_pt': {'type': 'calculate_niqe_pt', 'crop_border': 0},
               'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}
    values = image_metrics(as_tensor(baboon), None, metrics)
    assert set(values) == {'niqe', 'niqe_pt'}  # PSNR needs a GT
    assert values['niqe'] == pytest.approx(values['niqe_pt'], abs=1e-6)
    assert values['niqe'] == pytest.approx(5.72996, abs=1e-5)
    assert set(image_metrics(as_tensor(baboon), as_tensor(baboon), metrics)) == set(metrics)


def test_clear_errors(baboon, tmp_path, monkeypatch):
    monkeypatch.delenv('BASICSR_LITE_NIQE_PARAMS', raising=False)
    missing = tmp_path / 'none.npz'
    with pytest.raises(FileNotFoundError, match=f'not found at {missing}'):
        calculate_niqe(baboon, 0, params_path=str(missing))
    with pytest.raises(ValueError, match=r'two or more 96x96 blocks .* got 96x150'):
        calculate_niqe(baboon[:96, :150], 0, params_path=PARAMS)
    with pytest.raises(ValueError, match="convert_to must be 'y' or 'gray'"):
        calculate_niqe(baboon, 0, convert_to='rgb', params_path=PARAMS)


def test_crop_border_pair_crops_rows_and_columns_apart(baboon):
    """ArbSR's ``crop_border: scale`` gives NIQE a (rows, columns) pair."""
    from basicsr_lite.metrics.niqe_metric import niqe_input, niqe_input_pt
    whole = niqe_input(baboon, 0)
    np.testing.assert_array_equal(niqe_input(baboon, (3, 7)), whole[3:-3, 7:-7])
    np.testing.assert_array_equal(niqe_input(baboon, 5), whole[5:-5, 5:-5])
    whole_pt = niqe_input_pt(as_tensor(baboon), 0)
    assert torch.equal(niqe_input_pt(as_tensor(baboon), (3, 7)), whole_pt[:, 3:-3, 7:-7])
    assert calculate_niqe(baboon, (3, 7), params_path=PARAMS) == pytest.approx(
        float(calculate_niqe_pt(as_tensor(baboon), (3, 7), params_path=PARAMS)[0]), abs=1e-3)
