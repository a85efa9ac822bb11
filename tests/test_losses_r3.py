"""The round-3 losses (frequency, edge, TV, colour, MS-SSIM + L1) against their formulas: by hand
on 1x1x4x4 tensors, and against numpy re-implementations written here from the papers."""
import math

import numpy as np
import pytest
import torch

from basicsr_lite.errors import OptionError
from basicsr_lite.losses import build_loss
from basicsr_lite.registry import LOSS_REGISTRY
from basicsr_lite.utils.img_util import rgb2y, rgb2ycbcr

NEW_LOSSES = ['SSIMLoss', 'MSSSIMLoss', 'MSSSIML1Loss', 'FocalFrequencyLoss',
              'FFTAmplitudePhaseLoss', 'GradientVarianceLoss', 'SobelEdgeLoss', 'TVLoss', 'ColorLoss', 'LumaLoss']


def random_pair(shape=(2, 3, 48, 48), seed=0):
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=gen, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    return pred, target


# ---- every loss -----------------------------------------------------------------------------

@pytest.mark.parametrize('name', NEW_LOSSES)
def test_registered_finite_gradients_and_weight(name):
    assert name in LOSS_REGISTRY
    pred, target = random_pair()
    pred = pred.float().requires_grad_()
    loss = build_loss({'type': name})(pred, target.float())
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    half = build_loss({'type': name, 'loss_weight': 0.5})(pred.detach(), target.float())
    assert half.item() == pytest.approx(loss.item() / 2, rel=1e-6)


@pytest.mark.parametrize('name', [n for n in NEW_LOSSES if n != 'TVLoss'])
def test_zero_at_pred_equal_target(name):
    _, target = random_pair()
    assert build_loss({'type': name})(target.float(), target.float().clone()).item() == \
        pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize('name', NEW_LOSSES)
def test_a_misspelt_option_is_an_option_error_naming_it(name):
    with pytest.raises(OptionError, match='loss_weigth'):
        build_loss({'type': name, 'loss_weigth': 1})


def test_bad_criterion_is_an_option_error():
    with pytest.raises(OptionError, match="criterion must be one of"):
        build_loss({'type': 'ColorLoss', 'criterion': 'huber'})


# ---- focal frequency loss -------------------------------------------------------------------

def test_focal_frequency_by_hand_delta():
    # pred - target = 2 at one pixel: its orthonormal 4x4 DFT is 2/4 at all 16 frequencies, so
    # every weight is 1 and the loss is the mean of |1/2|^2 = 1/4
    target = torch.zeros(1, 1, 4, 4)
    pred = target.clone()
    pred[0, 0, 1, 2] = 2.0
    assert build_loss({'type': 'FocalFrequencyLoss'})(pred, target).item() == \
        pytest.approx(0.25)


@pytest.mark.parametrize('alpha', [1.0, 2.0])
def test_focal_frequency_by_hand_cosine(alpha):
    # pred - target = cos(pi x / 2) on every row: the DFT has 2 at (0, 1) and (0, 3) only;
    # weights 1 there and 0 elsewhere -> mean of (4 + 4) / 16
    target = torch.full((1, 1, 4, 4), 0.5)
    pred = target + torch.tensor([1.0, 0.0, -1.0, 0.0]).expand(1, 1, 4, 4)
    loss = build_loss({'type': 'FocalFrequencyLoss', 'alpha': alpha})(pred, target)
    assert loss.item() == pytest.approx(0.5, abs=1e-6)


def ffl_numpy(pred, target, alpha=1.0, patch_factor=1, ave_spectrum=False, log_matrix=False,
              batch_matrix=False):
    """The focal frequency loss written from the paper with numpy's FFT."""
    def spectra(x):
        n, c, h, w = x.shape
        ph, pw = h // patch_factor, w // patch_factor
        patches = [x[:, :, i * ph:(i + 1) * ph, j * pw:(j + 1) * pw]
                   for i in range(patch_factor) for j in range(patch_factor)]
        return np.fft.fft2(np.stack(patches, axis=1), norm='ortho')

    fp, ft = spectra(pred), spectra(target)
    if ave_spectrum:
        fp, ft = fp.mean(0, keepdims=True), ft.mean(0, keepdims=True)
    dist = np.abs(fp - ft)**2
    w = np.sqrt(dist)**alpha
    if log_matrix:
        w = np.log(w + 1.0)
    w = w / (w.max() if batch_matrix else w.max(axis=(-2, -1), keepdims=True))
    w = np.clip(np.nan_to_num(w), 0, 1)
    return float(np.mean(w * dist))


@pytest.mark.parametrize('kwargs', [
    {}, {'alpha': 0.5, 'patch_factor': 2}, {'ave_spectrum': True}, {'log_matrix': True},
    {'batch_matrix': True, 'patch_factor': 4}])
def test_focal_frequency_equals_numpy(kwargs):
    pred, target = random_pair((2, 3, 16, 24))
    loss = build_loss({'type': 'FocalFrequencyLoss', **kwargs})(pred, target).item()
    assert loss == pytest.approx(ffl_numpy(pred.numpy(), target.numpy(), **kwargs), rel=1e-5)


def test_focal_frequency_given_matrix_and_bad_patch_factor():
    pred, target = random_pair((1, 1, 8, 8))
    ones = torch.ones(1, 1, 1, 8, 8)
    diff = np.fft.fft2((pred - target).numpy(), norm='ortho')
    assert build_loss({'type': 'FocalFrequencyLoss'})(pred, target, matrix=ones).item() == \
        pytest.approx(float(np.mean(np.abs(diff)**2)), rel=1e-5)
    with pytest.raises(ValueError, match='must divide'):
        build_loss({'type': 'FocalFrequencyLoss', 'patch_factor': 3})(pred, target)


# ---- FFT loss -------------------------------------------------------------------------------

def fft_numpy(pred, target):
    fp, ft = np.fft.rfft2(pred, norm='ortho'), np.fft.rfft2(target, norm='ortho')
    amplitude = np.abs(np.abs(fp) - np.abs(ft)).mean()
    product = fp * np.conj(ft)
    phase = np.where(np.abs(product) > 1e-12, np.abs(np.angle(product)), 0.0).mean()
    return float(amplitude + phase)


def test_fft_loss_equals_numpy():
    pred, target = random_pair((2, 3, 12, 10))
    assert build_loss({'type': 'FFTAmplitudePhaseLoss'})(pred, target).item() == \
        pytest.approx(fft_numpy(pred.numpy(), target.numpy()), rel=1e-5)


def test_fft_loss_splits_amplitude_and_phase():
    _, target = random_pair((1, 1, 8, 8))
    # -target: same amplitudes, every phase off by pi
    amp_only = build_loss({'type': 'FFTAmplitudePhaseLoss', 'phase_weight': 0.0})
    phase_only = build_loss({'type': 'FFTAmplitudePhaseLoss', 'amplitude_weight': 0.0})
    assert amp_only(-target, target).item() == pytest.approx(0.0, abs=1e-6)
    assert phase_only(-target, target).item() == pytest.approx(math.pi, rel=1e-5)
    # a circular shift keeps the amplitudes too
    assert amp_only(target.roll(3, dims=-1), target).item() == pytest.approx(0.0, abs=1e-6)
    assert phase_only(target.roll(3, dims=-1), target).item() > 0.5


def test_fft_loss_gradient_finite_on_a_flat_image():
    flat = torch.full((1, 3, 16, 16), 0.5, requires_grad=True)  # all but DC exactly 0
    build_loss({'type': 'FFTAmplitudePhaseLoss'})(flat, torch.rand(1, 3, 16, 16)).backward()
    assert torch.isfinite(flat.grad).all()


# ---- edge losses ----------------------------------------------------------------------------

def sobel_numpy(img, pad_mode):
    """(gx, gy) of a 2-D array: 3x3 Sobel cross-correlation after one pixel of padding."""
    p = np.pad(img, 1, mode=pad_mode)
    h, w = img.shape
    win = lambda dy, dx: p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]  # noqa: E731
    gx = (win(-1, 1) + 2 * win(0, 1) + win(1, 1)) - (win(-1, -1) + 2 * win(0, -1) + win(1, -1))
    gy = (win(1, -1) + 2 * win(1, 0) + win(1, 1)) - (win(-1, -1) + 2 * win(-1, 0) + win(-1, 1))
    return gx, gy


def gradient_variance_numpy(pred, target, patch=8):
    """Abrahamyan et al.: MSE between per-patch (unbiased) variances of Sobel maps of gray."""
    def variances(x):
        gray = 0.2989 * x[:, 0] + 0.5870 * x[:, 1] + 0.1140 * x[:, 2]
        out_x, out_y = [], []
        for img in gray:
            gx, gy = sobel_numpy(img, 'constant')
            h, w = (img.shape[0] // patch) * patch, (img.shape[1] // patch) * patch
            for g, out in ((gx, out_x), (gy, out_y)):
                blocks = g[:h, :w].reshape(h // patch, patch, w // patch, patch)
                out.append(blocks.transpose(0, 2, 1, 3).reshape(-1, patch * patch).var(1, ddof=1))
        return np.stack(out_x), np.stack(out_y)

    (px, py), (tx, ty) = variances(pred), variances(target)
    return float(((px - tx)**2).mean() + ((py - ty)**2).mean())


def test_gradient_variance_equals_numpy():
    pred, target = random_pair((2, 3, 20, 24))  # 20: a remainder row of patches is dropped
    assert build_loss({'type': 'GradientVarianceLoss'})(pred, target).item() == \
        pytest.approx(gradient_variance_numpy(pred.numpy(), target.numpy()), rel=1e-6)


def test_gradient_variance_by_hand():
    # One 4x4 patch: target flat 0 (zero padding: its own border is no edge), pred = 1 at one
    # interior pixel. Its Sobel-x map is [[1,0,-1],[2,0,-2],[1,0,-1]] around (1,1) -> values
    # 1,2,1,-1,-2,-1 and ten zeros: mean 0, unbiased variance 12/15; the same for y.
    target = torch.zeros(1, 1, 4, 4)
    pred = target.clone()
    pred[0, 0, 1, 1] = 1.0
    loss = build_loss({'type': 'GradientVarianceLoss', 'patch_size': 4})(pred, target)
    assert loss.item() == pytest.approx(2 * (12 / 15)**2)


def test_sobel_edge_by_hand():
    # pred = a vertical step 0,0,1,1 on every row, target 0. With replicate padding and the
    # kernels / 4: gx = 0,1,1,0 per row and gy = 0 -> L1 mean over 32 values = 8 / 32
    target = torch.zeros(1, 1, 4, 4)
    pred = torch.tensor([0.0, 0.0, 1.0, 1.0]).expand(1, 1, 4, 4)
    assert build_loss({'type': 'SobelEdgeLoss'})(pred, target).item() == pytest.approx(0.25)
    assert build_loss({'type': 'SobelEdgeLoss', 'criterion': 'l2'})(pred, target).item() == \
        pytest.approx(0.25)


def test_sobel_edge_equals_numpy_and_ignores_offsets():
    pred, target = random_pair((1, 3, 9, 7))
    expected = []
    for c in range(3):
        gp = sobel_numpy(pred[0, c].numpy(), 'edge')
        gt = sobel_numpy(target[0, c].numpy(), 'edge')
        expected += [np.abs(a - b) / 4 for a, b in zip(gp, gt)]
    loss = build_loss({'type': 'SobelEdgeLoss'})
    assert loss(pred, target).item() == pytest.approx(float(np.mean(expected)), rel=1e-6)
    assert loss(target + 0.3, target).item() == pytest.approx(0.0, abs=1e-7)  # flat shift


# ---- total variation ------------------------------------------------------------------------

def test_tv_by_hand():
    x = torch.arange(16.0).view(1, 1, 4, 4)  # vertical differences 4, horizontal 1 (12 each)
    assert build_loss({'type': 'TVLoss'})(x).item() == pytest.approx(4 + 1)
    assert build_loss({'type': 'TVLoss', 'criterion': 'l2'})(x).item() == pytest.approx(16 + 1)
    assert build_loss({'type': 'TVLoss', 'reduction': 'sum'})(x).item() == \
        pytest.approx(12 * 4 + 12 * 1)
    # the target of a (pred, target) call is ignored; a flat image has no variation
    assert build_loss({'type': 'TVLoss'})(x, torch.zeros_like(x)).item() == pytest.approx(5)
    assert build_loss({'type': 'TVLoss'})(torch.full((1, 3, 5, 5), 0.7)).item() == 0.0


def test_weighted_tv_keeps_its_not_available_message():
    from basicsr_lite.registry import RegistryError
    with pytest.raises(RegistryError, match='does not have it yet'):
        LOSS_REGISTRY.get('WeightedTVLoss')


# ---- colour ---------------------------------------------------------------------------------

def test_rgb2ycbcr_matches_matlab_and_rgb2y():
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    ycbcr = rgb2ycbcr(red).flatten() * 255
    assert torch.allclose(ycbcr, torch.tensor([16 + 65.481, 128 - 37.797, 128 + 112.0]))
    pred, _ = random_pair((2, 3, 5, 6))
    assert torch.allclose(rgb2ycbcr(pred)[:, :1], rgb2y(pred))


def test_color_loss_by_hand():
    black = torch.zeros(1, 3, 4, 4)
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    # red vs black: Cb differs by 37.797 / 255, Cr by 112 / 255
    assert build_loss({'type': 'ColorLoss', 'scale': 1})(red, black).item() == \
        pytest.approx((37.797 + 112.0) / 2 / 255)
    # grays of any level have the same chroma
    assert build_loss({'type': 'ColorLoss'})(black + 0.8, black + 0.1).item() == \
        pytest.approx(0.0, abs=1e-7)
    # scale 4 compares 4x4 block means: red on the left half vs red on the right half
    left, right = black.clone(), black.clone()
    left[:, 0, :, :2] = 1.0
    right[:, 0, :, 2:] = 1.0
    assert build_loss({'type': 'ColorLoss'})(left, right).item() == pytest.approx(0.0, abs=1e-7)
    assert build_loss({'type': 'ColorLoss', 'scale': 1})(left, right).item() > 0.2


def test_luma_loss_by_hand():
    black = torch.zeros(1, 3, 4, 4)
    assert build_loss({'type': 'LumaLoss'})(black + 1.0, black).item() == \
        pytest.approx(219.0 / 255)
    # a change of chroma at constant luma is free for LumaLoss, not for ColorLoss: move along
    # an RGB direction orthogonal to Y's weights
    _, target = random_pair((1, 3, 8, 8))
    shift = torch.tensor([128.553, -65.481, 0.0], dtype=torch.float64).view(1, 3, 1, 1) / 1000
    assert build_loss({'type': 'LumaLoss'})(target + shift, target).item() == \
        pytest.approx(0.0, abs=1e-9)
    assert build_loss({'type': 'ColorLoss'})(target + shift, target).item() > 0.01
    pred, target = random_pair((1, 3, 6, 6))
    assert build_loss({'type': 'LumaLoss', 'criterion': 'l2'})(pred, target).item() == \
        pytest.approx(float(((rgb2y(pred) - rgb2y(target))**2).mean()))


# ---- MS-SSIM + L1 ---------------------------------------------------------------------------

def test_ms_ssim_l1_is_the_mix_of_its_parts():
    pred, target = random_pair((2, 3, 48, 48))
    ms = build_loss({'type': 'MSSSIMLoss'})(pred, target).item()
    mix = build_loss({'type': 'MSSSIML1Loss'})
    assert build_loss({'type': 'MSSSIML1Loss', 'alpha': 1.0})(pred, target).item() == \
        pytest.approx(ms)
    l1 = float(mix.weighted_l1(pred, target).mean())
    assert mix(pred, target).item() == pytest.approx(0.84 * ms + 0.16 * l1)


def test_ms_ssim_l1_gaussian_weighted_l1_by_hand():
    # A constant difference d: any normalised weighting of |d| gives d
    target = torch.rand(1, 3, 40, 40, dtype=torch.float64)
    loss = build_loss({'type': 'MSSSIML1Loss', 'alpha': 0.0})
    assert loss(target + 0.1, target).item() == pytest.approx(0.1)
    # A difference at one pixel counts with the Gaussian weights around it: at the centre of a
    # 33x33 image (one valid position) its weight is the window's peak
    target = torch.zeros(1, 1, 33, 33, dtype=torch.float64)
    pred = target.clone()
    pred[0, 0, 16, 16] = 1.0
    taps = np.exp(-np.arange(-16, 17)**2 / (2 * 8.0**2))
    assert loss(pred, target).item() == pytest.approx((1 / taps.sum())**2)
    with pytest.raises(ValueError, match='at least 33x33'):
        loss(pred[..., :32, :32], target[..., :32, :32])


# ---- through the option file ----------------------------------------------------------------

def test_option_schema_takes_yaml_lists_and_names_a_misspelt_key():
    from basicsr_lite.options.spec import SpecKit
    errors = []
    opt = SpecKit.loss().validate({'type': 'MSSSIMLoss', 'loss_weight': 1, 'K': [0.01, 0.05],
                                   'weights': [0.5, 0.5]}, 'train.pixel_opt', errors, None)
    assert errors == [] and opt['loss_weight'] == 1.0
    assert build_loss(opt).weights == (0.5, 0.5)
    SpecKit.loss().validate({'type': 'MSSSIMLoss', 'loss_weigth': 1}, 'train.pixel_opt', errors,
                            None)
    assert len(errors) == 1 and "train.pixel_opt.loss_weigth" in errors[0] and \
        "did you mean 'loss_weight'" in errors[0]


def test_a_tiny_run_trains_on_ms_ssim_and_validates_with_it(tiny_opt, tmp_path):
    from pathlib import Path

    from basicsr_lite.train import main as train_main
    from tests.conftest import write_yaml
    tiny_opt['train'].update(total_iter=2, pixel_opt={'type': 'MSSSIMLoss', 'loss_weight': 1.0})
    tiny_opt['val'].update(val_freq=2, metrics={'ms_ssim': {'type': 'calculate_ms_ssim',
                                                            'crop_border': 2}})
    tiny_opt['logger']['save_checkpoint_freq'] = 2
    assert train_main(['-opt', str(write_yaml(tmp_path / 'opt.yml', tiny_opt))]) == 0
    log = next(Path(tiny_opt['path']['experiments_root']).glob('train_tiny_*.log')).read_text()
    assert 'l_pix:' in log and 'ms_ssim' in log
