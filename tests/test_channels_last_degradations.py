"""Real-ESRGAN batch degradations on a channels_last (NHWC) batch, as a model with
``train.channels_last`` hands them over: the same values as on the contiguous batch with the
same random streams (Poisson noise used ``.view`` where only ``.reshape`` works on NHWC)."""
from __future__ import annotations

import torch

from basicsr_lite.data.degrade.batch_degradations import poisson_noise, random_noise
from basicsr_lite.data.degrade.realesrgan_pipeline import HighOrderDegradation
from basicsr_lite.runtime.random_streams import RandomStreams
from tests.test_realesrgan_pipeline import defaults, sample_batch

CPU = torch.device('cpu')


def nhwc(t: torch.Tensor) -> torch.Tensor:
    out = t.contiguous(memory_format=torch.channels_last)
    assert not out.is_contiguous()  # really NHWC in memory
    return out


def test_poisson_noise_on_channels_last_equals_contiguous():
    img = torch.rand(3, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    scale, gray = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([0.0, 1.0, 0.0])
    plain = poisson_noise(img, scale, gray, torch.Generator().manual_seed(1))
    last = poisson_noise(nhwc(img), scale, gray, torch.Generator().manual_seed(1))
    assert plain.abs().max() > 0
    assert torch.equal(plain, last)


def test_random_poisson_noise_on_channels_last_equals_contiguous():
    img = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    outs = [random_noise(x, 0.0, [1, 30], [0.05, 3], 0.4, RandomStreams(3, CPU))
            for x in (img, nhwc(img))]
    assert torch.equal(*outs)


def test_high_order_pipeline_with_poisson_noise_on_channels_last():
    """The whole pipeline (its first blur happens to hand the noise a contiguous batch, so this
    guards the other steps; the two tests above guard the noise itself)."""
    opt = defaults()
    opt.update(gaussian_noise_prob=0.0, gaussian_noise_prob2=0.0)  # Poisson noise in both stages
    degrade = HighOrderDegradation(opt, 4, CPU)
    gt, kernel1, kernel2, sinc = sample_batch(2, 64)
    plain = degrade(gt, kernel1, kernel2, sinc, RandomStreams(7, CPU))
    last = degrade(nhwc(gt), kernel1, kernel2, sinc, RandomStreams(7, CPU))
    assert last.shape == plain.shape == (2, 3, 16, 16)
    assert torch.equal(last, plain)
