"""The batched degradations: JPEG against OpenCV, filtering, noise statistics, USM, the
whole second-order pipeline, the pair pool and the random streams."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr_lite.data.degrade.batch_degradations import (USMSharp, filter2d, gaussian_noise,
                                                          poisson_noise, rgb_to_gray,
                                                          separable_filter2d)
from basicsr_lite.data.degrade.diffjpeg import DiffJPEG
from basicsr_lite.data.degrade.realesrgan_pipeline import (PIPELINE_OPTIONS, HighOrderDegradation,
                                                           TrainingPairPool,
                                                           paired_random_crop_batch)
from basicsr_lite.runtime.random_streams import RandomStreams

DEMO = Path(__file__).resolve().parent.parent / 'datasets' / 'demo'


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def to_tensor(bgr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255


def to_bgr(t: torch.Tensor) -> np.ndarray:
    return (t[0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round()


@pytest.mark.parametrize('name', ['val_HR/coffee.png', 'train_HR/chelsea.png'])
@pytest.mark.parametrize('quality', [30, 60, 95])
def test_jpeg_is_close_to_opencvs_encoder(name, quality):
    """Odd sizes (padding), both modes; measured margins: >= 43 dB to OpenCV, <= 0.3 dB
    difference in the loss against the source."""
    img = cv2.imread(str(DEMO / name))[:203, :245]
    ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    reference = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    ours = to_bgr(DiffJPEG(differentiable=False)(to_tensor(img), quality))
    assert ours.shape == img.shape
    assert psnr(ours, reference) > 42
    assert abs(psnr(ours, img) - psnr(reference, img)) < 0.5
    smooth = to_bgr(DiffJPEG(differentiable=True)(to_tensor(img), quality))
    assert psnr(smooth, reference) > 40


def test_jpeg_quality_is_per_image_and_gradients_flow():
    img = to_tensor(cv2.imread(str(DEMO / 'val_HR' / 'coffee.png'))[:64, :64])
    batch = torch.cat([img, img])
    jpeg = DiffJPEG(differentiable=False)
    out = jpeg(batch, torch.tensor([20.0, 90.0]))
    torch.testing.assert_close(out[:1], jpeg(img, 20))
    torch.testing.assert_close(out[1:], jpeg(img, 90))
    assert (out[0] - img[0]).abs().mean() > 2 * (out[1] - img[0]).abs().mean()
    x = img.clone().requires_grad_(True)
    DiffJPEG(differentiable=True)(x, 50).sum().backward()
    assert x.grad.abs().sum() > 0


def test_filter2d_equals_opencvs_correlation_per_image():
    rng = np.random.default_rng(0)
    imgs = torch.from_numpy(rng.random((2, 3, 20, 23), dtype=np.float32))
    kernels = torch.from_numpy(rng.random((2, 5, 5), dtype=np.float32))
    out = filter2d(imgs, kernels)
    for i in range(2):
        for c in range(3):
            expected = cv2.filter2D(imgs[i, c].numpy(), -1, kernels[i].numpy(),
                                    borderType=cv2.BORDER_REFLECT_101)
            np.testing.assert_allclose(out[i, c].numpy(), expected, atol=1e-5)
    torch.testing.assert_close(filter2d(imgs, kernels[0]),
                               filter2d(imgs, kernels[0].expand(2, 5, 5)))


@pytest.mark.parametrize('size', [40, 12])  # 12: smaller than the padding -> replicated borders
def test_separable_filter_equals_the_2d_filter(size):
    img = torch.rand(2, 3, size, size + 3, generator=torch.Generator().manual_seed(0))
    g = torch.from_numpy(cv2.getGaussianKernel(31, 0)[:, 0]).float()
    torch.testing.assert_close(separable_filter2d(img, g), filter2d(img, torch.outer(g, g)))


def test_gaussian_noise_strength_and_gray():
    g = torch.Generator().manual_seed(0)
    img = torch.full((2, 3, 128, 128), 0.5)
    noise = gaussian_noise(img, torch.tensor([10.0, 20.0]), torch.tensor([0.0, 1.0]), g)
    assert noise[0].std().item() * 255 == pytest.approx(10, rel=0.03)
    assert noise[1].std().item() * 255 == pytest.approx(20, rel=0.03)
    assert torch.equal(noise[1, 0], noise[1, 2]) and not torch.equal(noise[0, 0], noise[0, 2])


def test_poisson_noise_has_the_shot_noise_variance():
    """Levels = 2^ceil(log2(distinct values)): 3 distinct values -> 4 levels; the count at
    value v is Poisson(4 v), so the noise variance is v / 4 (times scale^2)."""
    g = torch.Generator().manual_seed(0)
    img = torch.zeros(1, 3, 150, 150)
    img[..., 50:100, :], img[..., 100:, :] = 100 / 255, 200 / 255
    noise = poisson_noise(img, torch.tensor([0.5]), torch.tensor([0.0]), g)
    region = noise[..., 100:, :]
    assert region.mean().item() == pytest.approx(0, abs=0.01)
    assert region.var().item() == pytest.approx(0.25 * (200 / 255) / 4, rel=0.05)
    assert torch.equal(noise[..., :50, :], torch.zeros_like(noise[..., :50, :]))
    gray = poisson_noise(img, torch.tensor([1.0]), torch.tensor([1.0]), g)
    assert torch.equal(gray[0, 0], gray[0, 1])


def test_rgb_to_gray_weights():
    img = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert rgb_to_gray(img).item() == pytest.approx(0.2989)


def test_usm_sharpens_edges_and_leaves_flat_images():
    usm = USMSharp()
    flat = torch.full((1, 3, 64, 64), 0.4)
    torch.testing.assert_close(usm(flat), flat)
    edge = torch.zeros(1, 3, 64, 64)
    edge[..., 32:] = 0.6
    sharp = usm(edge)
    assert sharp[..., 32].mean() > 0.6 and sharp[..., 31].min() >= 0  # overshoot on the step
    assert sharp.min() >= 0 and sharp.max() <= 1


def defaults() -> dict:
    return {key: default for key, (default, _) in PIPELINE_OPTIONS.items()}


def sample_batch(b: int = 3, size: int = 96):
    rng = np.random.default_rng(1)
    gt = torch.from_numpy(rng.random((b, 3, size, size), dtype=np.float32))
    gt = filter2d(gt, torch.ones(9, 9) / 81)  # natural-ish: smooth
    impulse = torch.zeros(b, 21, 21)
    impulse[:, 10, 10] = 1
    blur = torch.from_numpy(np.outer(*[cv2.getGaussianKernel(21, 1.5)[:, 0]] * 2)).float()
    return gt, blur.expand(b, 21, 21), blur.expand(b, 21, 21), impulse


def test_pipeline_output_size_range_and_determinism():
    degrade = HighOrderDegradation(defaults(), 4, torch.device('cpu'))
    batch = sample_batch()
    outputs = [degrade(*batch, RandomStreams(seed, torch.device('cpu'))) for seed in (5, 5, 6)]
    lq = outputs[0]
    assert lq.shape == (3, 3, 24, 24)
    assert lq.min() >= 0 and lq.max() <= 1
    torch.testing.assert_close(lq * 255, (lq * 255).round(), rtol=0, atol=1e-4)  # 8-bit grid
    assert torch.equal(outputs[0], outputs[1]) and not torch.equal(outputs[0], outputs[2])


def test_pipeline_without_degradations_is_a_plain_resize():
    """All probabilities and strengths at 'nothing': the LQ is the GT resized to 1/scale."""
    opt = defaults()
    opt.update(resize_prob=[0, 0, 1], resize_prob2=[0, 0, 1], gaussian_noise_prob=1,
               gaussian_noise_prob2=1, noise_range=[0, 0], noise_range2=[0, 0],
               second_blur_prob=0, jpeg_range=[100, 100], jpeg_range2=[100, 100])
    gt, _, _, impulse = sample_batch(1, 64)
    cpu = torch.device('cpu')
    lq = HighOrderDegradation(opt, 2, cpu)(gt, impulse, impulse, impulse, RandomStreams(0, cpu))
    reference = torch.nn.functional.avg_pool2d(gt, 2)
    assert (lq - reference).abs().mean() < 0.02  # the resize mode and q-100 JPEG differ a little


def test_paired_crop_is_aligned():
    streams = RandomStreams(0, torch.device('cpu'))
    gt = torch.arange(64 * 64, dtype=torch.float32).view(1, 1, 64, 64)
    lq = gt[..., ::4, ::4]
    (gt_crop,), lq_crop = paired_random_crop_batch([gt], lq, 32, 4, streams)
    assert gt_crop.shape[-1] == 32 and lq_crop.shape[-1] == 8
    assert torch.equal(gt_crop[..., ::4, ::4], lq_crop)


def test_pool_mixes_batches_and_resumes_exactly():
    device = torch.device('cpu')

    def batches(n):
        for i in range(n):  # values identify the batch: i/255, exactly on the 8-bit grid
            lq = torch.full((2, 3, 4, 4), i / 255)
            yield lq, torch.full((2, 3, 8, 8), i / 255)

    pool, streams = TrainingPairPool(6), RandomStreams(0, device)
    seen = [pool.exchange(lq, gt, streams) for lq, gt in batches(3)]
    assert [round(s[0][0, 0, 0, 0].item() * 255) for s in seen] == [0, 1, 2]  # filling
    state = pool.state_dict()
    assert 'uint8' in state['lq'] and state['lq']['uint8'].dtype == torch.uint8
    buffer = io.BytesIO()
    torch.save({'pool': state, 'streams': streams.state_dict()}, buffer)
    saved = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    later = [pool.exchange(lq, gt, streams) for lq, gt in list(batches(6))[3:]]
    ids = {round(v * 255) for out in later for v in out[0][:, 0, 0, 0].tolist()}
    assert ids and ids <= set(range(6)) and ids & {0, 1, 2}  # pooled pairs of earlier batches
    resumed, resumed_streams = TrainingPairPool(6), RandomStreams(99, device)
    resumed.load_state_dict(saved['pool'], device)
    resumed_streams.load_state_dict(saved['streams'])
    again = [resumed.exchange(lq, gt, resumed_streams) for lq, gt in list(batches(6))[3:]]
    for a, b in zip(later, again):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(Exception, match='queue_size 6 is not a multiple of the batch size 4'):
        TrainingPairPool(6).exchange(torch.zeros(4, 3, 2, 2), torch.zeros(4, 3, 4, 4), streams)
