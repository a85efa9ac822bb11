"""Real-ESRGAN's second-order degradation of GT batches on the training device, the random crop
of the result, and the pool of training pairs that mixes degradations across batches.

Per batch (BasicSR's order and option keys, top level of the option file):

1. blur (``kernel1``) -> resize up / down / keep (``resize_prob``, ``resize_range``; area,
   bilinear or bicubic) -> Gaussian (``gaussian_noise_prob``, ``noise_range``) or Poisson
   (``poisson_scale_range``) noise, gray with ``gray_noise_prob`` -> JPEG (``jpeg_range``)
2. blur (``kernel2``) with ``second_blur_prob`` -> resize (``resize_prob2``, ``resize_range2``,
   relative to the final LQ size) -> noise (``*2`` keys)
3. in random order: [resize to the LQ size + final sinc (``sinc_kernel``)] and JPEG
   (``jpeg_range2``) -> clamp and round to 8 bits.

The kernels come with each sample (``RealESRGANDataset``, drawn from the sample's seed); every
other draw comes from a :class:`RandomStreams` whose state the model saves.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from basicsr_lite.data.degrade.batch_degradations import (RESIZE_MODES, filter2d, quantize,
                                                          random_noise, resize)
from basicsr_lite.data.degrade.diffjpeg import DiffJPEG
from basicsr_lite.errors import DataError
from basicsr_lite.runtime.random_streams import RandomStreams
from basicsr_lite.utils.checks import probabilities, probability, value_range


def resize_range(values: Any) -> str | None:
    """A scale range that contains 1 ('up' draws from [1, max], 'down' from [min, 1])."""
    problem = value_range(0.01)(values)
    if problem is None and not values[0] <= 1 <= values[1]:
        return f'must contain 1 (up-scaling draws from [1, max], down-scaling from [min, 1]); ' \
               f'got {list(values)}.'
    return problem


# key -> (default: Real-ESRGAN's x4plus recipe, check)
PIPELINE_OPTIONS: dict[str, tuple[Any, Callable[[Any], str | None]]] = {
    'resize_prob': ([0.2, 0.7, 0.1], probabilities(3)),
    'resize_range': ([0.15, 1.5], resize_range),
    'gaussian_noise_prob': (0.5, probability),
    'noise_range': ([1, 30], value_range(0)),
    'poisson_scale_range': ([0.05, 3], value_range(0)),
    'gray_noise_prob': (0.4, probability),
    'jpeg_range': ([30, 95], value_range(1, 100)),
    'second_blur_prob': (0.8, probability),
    'resize_prob2': ([0.3, 0.4, 0.3], probabilities(3)),
    'resize_range2': ([0.3, 1.2], resize_range),
    'gaussian_noise_prob2': (0.5, probability),
    'noise_range2': ([1, 25], value_range(0)),
    'poisson_scale_range2': ([0.05, 2.5], value_range(0)),
    'gray_noise_prob2': (0.4, probability),
    'jpeg_range2': ([30, 95], value_range(1, 100)),
}


class HighOrderDegradation:
    """``degrade(gt, kernel1, kernel2, sinc_kernel, rng)`` -> the LQ batch (``1/scale`` of the
    GT size, values on the 8-bit grid). ``opt`` holds the :data:`PIPELINE_OPTIONS` keys."""

    def __init__(self, opt: dict, scale: int, device: torch.device) -> None:
        self.opt = {key: opt[key] for key in PIPELINE_OPTIONS}
        self.scale = scale
        self.jpeg = DiffJPEG(differentiable=False).to(device)

    @staticmethod
    def _scale(rng: RandomStreams, probs: list[float], scale_range: list[float]) -> float:
        direction = rng.choice(('up', 'down', 'keep'), probs)
        if direction == 'up':
            return float(rng.numpy.uniform(1, scale_range[1]))
        if direction == 'down':
            return float(rng.numpy.uniform(scale_range[0], 1))
        return 1.0

    def _noise(self, img: torch.Tensor, stage: str, rng: RandomStreams) -> torch.Tensor:
        """The noise of stage ``''`` (first) or ``'2'`` (second), with its keys."""
        o = self.opt
        return random_noise(img, o[f'gaussian_noise_prob{stage}'], o[f'noise_range{stage}'],
                            o[f'poisson_scale_range{stage}'], o[f'gray_noise_prob{stage}'], rng)

    def _jpeg(self, img: torch.Tensor, quality_range: list[float], rng: RandomStreams
              ) -> torch.Tensor:
        quality = rng.uniform(img.shape[0], quality_range[0], quality_range[1])
        return self.jpeg(torch.clamp(img, 0, 1), quality)

    def __call__(self, gt: torch.Tensor, kernel1: torch.Tensor, kernel2: torch.Tensor,
                 sinc_kernel: torch.Tensor, rng: RandomStreams) -> torch.Tensor:
        o = self.opt
        h, w = gt.shape[-2:]
        lq_size = (h // self.scale, w // self.scale)
        # first degradation
        out = filter2d(gt, kernel1)
        factor = self._scale(rng, o['resize_prob'], o['resize_range'])
        out = resize(out, (int(h * factor), int(w * factor)), rng.choice(RESIZE_MODES))
        out = self._noise(out, '', rng)
        out = self._jpeg(out, o['jpeg_range'], rng)
        # second degradation
        if rng.numpy.uniform() < o['second_blur_prob']:
            out = filter2d(out, kernel2)
        factor = self._scale(rng, o['resize_prob2'], o['resize_range2'])
        out = resize(out, (int(h / self.scale * factor), int(w / self.scale * factor)),
                     rng.choice(RESIZE_MODES))
        out = self._noise(out, '2', rng)

        def to_lq_size_and_sinc(img: torch.Tensor) -> torch.Tensor:
            return filter2d(resize(img, lq_size, rng.choice(RESIZE_MODES)), sinc_kernel)

        # final sinc filter and JPEG, in random order
        if rng.numpy.uniform() < 0.5:
            out = self._jpeg(to_lq_size_and_sinc(out), o['jpeg_range2'], rng)
        else:
            out = to_lq_size_and_sinc(self._jpeg(out, o['jpeg_range2'], rng))
        return quantize(out)


def paired_random_crop_batch(gts: list[torch.Tensor], lq: torch.Tensor, gt_size: int,
                             scale: int, rng: RandomStreams
                             ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The same random ``gt_size`` crop of every GT batch in ``gts`` and the aligned
    ``gt_size // scale`` crop of ``lq`` (one position for the whole batch)."""
    size = gt_size // scale
    h, w = lq.shape[-2:]
    if h < size or w < size:
        raise DataError(f'The degraded LQ batch ({h}x{w}) is smaller than the LQ patch '
                        f'({size}x{size}) of gt_size {gt_size}; raise crop_pad_size of '
                        f'datasets.train or lower gt_size.')
    top = int(rng.numpy.integers(0, h - size + 1))
    left = int(rng.numpy.integers(0, w - size + 1))
    lq = lq[..., top:top + size, left:left + size]
    gts = [g[..., top * scale:(top + size) * scale, left * scale:(left + size) * scale]
           for g in gts]
    return gts, lq


def _compact(tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """8-bit values stored as uint8 (4x smaller), anything else as float."""
    tensor = tensor.detach().cpu()
    levels = (tensor * 255).round()
    if torch.equal(levels / 255, tensor):
        return {'uint8': levels.to(torch.uint8)}
    return {'float': tensor.float()}


def _expand(stored: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
    if 'uint8' in stored:
        return (stored['uint8'].float() / 255).to(device)
    return stored['float'].to(device)


class TrainingPairPool:
    """Real-ESRGAN's queue of training pairs: the first ``size / batch`` batches fill it (and
    are trained on); from then on the pool is shuffled and each new batch swaps places with
    ``batch`` pooled pairs, so that a batch mixes degradations of earlier batches.
    Its content is part of the training state (exact resume)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.filled = 0
        self.lq: torch.Tensor | None = None
        self.gt: torch.Tensor | None = None

    def exchange(self, lq: torch.Tensor, gt: torch.Tensor, rng: RandomStreams
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.size == 0:
            return lq, gt
        b = lq.shape[0]
        if self.size % b:
            raise DataError(f'queue_size {self.size} is not a multiple of the batch size {b}.')
        if self.lq is None:
            self.lq = lq.new_zeros((self.size, *lq.shape[1:]))
            self.gt = gt.new_zeros((self.size, *gt.shape[1:]))
        if self.filled < self.size:
            self.lq[self.filled:self.filled + b] = lq
            self.gt[self.filled:self.filled + b] = gt
            self.filled += b
            return lq, gt
        order = torch.randperm(self.size, generator=rng.torch, device=rng.device)
        self.lq, self.gt = self.lq[order], self.gt[order]
        out_lq, out_gt = self.lq[:b].clone(), self.gt[:b].clone()
        self.lq[:b], self.gt[:b] = lq, gt
        return out_lq, out_gt

    def state_dict(self) -> dict:
        if self.lq is None:
            return {'filled': 0}
        return {'filled': self.filled, 'size': self.size,
                'lq': _compact(self.lq[:self.filled]), 'gt': _compact(self.gt[:self.filled])}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        if not state.get('filled'):
            self.filled, self.lq, self.gt = 0, None, None
            return
        if state['size'] != self.size:
            raise DataError(f"The training state's pool holds {state['size']} pairs; queue_size "
                            f'is now {self.size}. Resume with the same queue_size.')
        self.filled = state['filled']
        lq, gt = _expand(state['lq'], device), _expand(state['gt'], device)
        self.lq = lq.new_zeros((self.size, *lq.shape[1:]))
        self.gt = gt.new_zeros((self.size, *gt.shape[1:]))
        self.lq[:self.filled], self.gt[:self.filled] = lq, gt
