"""LPIPS with the real v0.1 lin layers (../shared/weights/lpips) and random backbones in
torchvision's layout at the torch hub cache path: the loading path, the head's maths against a
hand computation, metric properties, the numpy and batched forms, validation use, errors.

Not checkable here: values against the lpips package with ImageNet backbones (no backbone
file and no torchvision on these machines)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from basicsr_lite.archs.vgg_arch import hub_weight_path
from basicsr_lite.engine.validate import image_metrics
from basicsr_lite.errors import UserError
from basicsr_lite.metrics.lpips_metric import (LPIPS, SCALE, SHIFT, calculate_lpips,
                                               calculate_lpips_pt)
from basicsr_lite.runtime.weights import load_torch

LIN_DIR = Path(__file__).resolve().parents[2] / 'shared' / 'weights' / 'lpips'
pytestmark = pytest.mark.skipif(not LIN_DIR.is_dir(), reason='../shared/weights/lpips is absent')


@pytest.fixture
def lpips_env(random_backbones, monkeypatch):
    monkeypatch.setenv('BASICSR_LITE_LPIPS_DIR', str(LIN_DIR))


def pair(seed: int = 0, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(2, 3, size, size, generator=gen)
    return a, (a + 0.1 * torch.randn(a.shape, generator=gen)).clamp(0, 1)


@pytest.mark.parametrize('net', ['alex', 'vgg'])
def test_head_equals_a_hand_computation_with_the_real_lin_layers(lpips_env, net):
    model = LPIPS(net)
    lin = load_torch(LIN_DIR / f'{net}.pth')
    a, b = pair()
    expected = torch.zeros(2)
    scaled = [((x * 2 - 1) - torch.tensor(SHIFT).view(1, 3, 1, 1)) /
              torch.tensor(SCALE).view(1, 3, 1, 1) for x in (a, b)]
    feats_a, feats_b = (model.backbone(x) for x in scaled)
    if isinstance(feats_a, dict):
        feats_a, feats_b = list(feats_a.values()), list(feats_b.values())
    for k, (fa, fb) in enumerate(zip(feats_a, feats_b)):
        na = fa / (torch.sqrt((fa ** 2).sum(1, keepdim=True)) + 1e-10)
        nb = fb / (torch.sqrt((fb ** 2).sum(1, keepdim=True)) + 1e-10)
        w = lin[f'lin{k}.model.1.weight'].view(-1)
        expected += torch.einsum('c,nchw->nhw', w, (na - nb) ** 2).mean(dim=(1, 2))
    torch.testing.assert_close(model(a, b), expected, rtol=1e-5, atol=1e-7)
    for k, conv in enumerate(model.lins):
        assert torch.equal(conv.weight, lin[f'lin{k}.model.1.weight'])


@pytest.mark.parametrize('net', ['alex', 'vgg'])
def test_backbone_comes_from_the_hub_cache_file(lpips_env, net):
    model = LPIPS(net)
    stored = torch.load(hub_weight_path('alexnet' if net == 'alex' else 'vgg16'),
                        weights_only=True)
    for key, value in model.backbone.features.state_dict().items():
        assert torch.equal(value, stored[f'features.{key}'])


def test_distance_properties(lpips_env):
    a, b = pair()
    far = torch.rand(a.shape, generator=torch.Generator().manual_seed(9))
    same = calculate_lpips_pt(a, a)
    assert torch.all(same.abs() < 1e-6)
    d_near, d_far = calculate_lpips_pt(a, b), calculate_lpips_pt(a, far)
    assert torch.all(d_near > 0) and torch.all(d_far > d_near)
    torch.testing.assert_close(calculate_lpips_pt(b, a), d_near)


def test_numpy_form_equals_the_batched_form(lpips_env):
    a, b = pair(size=48)
    img, img2 = ((t.permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)
                 for t in (a[0], b[0]))
    quantised = [torch.from_numpy(x[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
                 for x in (img, img2)]
    for crop in (0, 4):
        assert calculate_lpips(img, img2, crop, net='vgg') == pytest.approx(
            calculate_lpips_pt(*quantised, crop, net='vgg').item(), rel=1e-5)


def test_in_validation_with_its_direction(lpips_env):
    from basicsr_lite.metrics import metric_better
    a, b = pair()
    b = (b * 255).round() / 255  # GT images are 8-bit
    values = image_metrics(a[:1], b[:1], {'lpips': {'type': 'calculate_lpips_pt'},
                                          'lpips_np': {'type': 'calculate_lpips'}})
    assert values['lpips'] == pytest.approx(values['lpips_np'], rel=1e-4)
    assert metric_better({'type': 'calculate_lpips'}) == 'lower'
    assert image_metrics(a[:1], None, {'lpips': {'type': 'calculate_lpips_pt'}}) == {}


def test_missing_files_are_clear_errors(random_backbones, tmp_path, monkeypatch):
    monkeypatch.setenv('BASICSR_LITE_LPIPS_DIR', str(tmp_path / 'nothing'))
    with pytest.raises(UserError, match=r'LPIPS needs its learned lin layers alex.pth'):
        calculate_lpips_pt(*pair())
    monkeypatch.setenv('BASICSR_LITE_LPIPS_DIR', str(LIN_DIR))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty_home'))
    monkeypatch.setattr(torch.hub, 'download_url_to_file',
                        lambda *a, **k: (_ for _ in ()).throw(OSError('no network')))
    with pytest.raises(UserError) as err:
        calculate_lpips_pt(*pair(), net='vgg')
    message = str(err.value)
    assert 'vgg16-397923af.pth are not available' in message
    assert 'give calculate_lpips a backbone_weights path' in message
    with pytest.raises(ValueError, match="net must be one of"):
        calculate_lpips_pt(*pair(), net='squeeze')


def test_calculate_metrics_tool_with_niqe_and_lpips(lpips_env, tmp_path, monkeypatch, capsys):
    from basicsr_lite.prep.synthetic import make_paired_folder
    from tests.conftest import load_tool
    monkeypatch.setenv('BASICSR_LITE_NIQE_PARAMS',
                       str(LIN_DIR.parents[1] / 'data' / 'niqe' / 'niqe_pris_params.npz'))
    gt, restored = make_paired_folder(tmp_path / 'd', ['a', 'b'], (200, 104), 1, seed=4)
    tool = load_tool('calculate_metrics')
    assert tool.main(['--restored', str(restored), '--gt', str(gt), '--restored-tmpl', '{}x1',
                      '--niqe', '--lpips', 'alex', '--json', str(tmp_path / 'm.json')]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header == ['image', 'PSNR', 'SSIM', 'NIQE', 'LPIPS']
    assert '"lpips"' in (tmp_path / 'm.json').read_text()
    assert tool.main(['--restored', str(restored), '--niqe']) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ['image', 'NIQE']
    assert tool.main(['--restored', str(restored)]) == 2
    assert 'only NIQE can be computed' in capsys.readouterr().err
