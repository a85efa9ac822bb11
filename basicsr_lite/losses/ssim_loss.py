"""Structural losses: 1 - SSIM, 1 - MS-SSIM, and the MS-SSIM + L1 mix of Zhao et al. 2017.

All three use the SSIM core of utils/ssim_util.py (the same code as the MS-SSIM metric), on
NCHW inputs in [0, ``data_range``], per channel; a per-image value is the mean over channels.
``reduction`` reduces the per-image losses over the batch ('none' returns shape (N,)).
"""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.registry import LOSS_REGISTRY
from basicsr_lite.utils.ssim_util import (MS_SSIM_WEIGHTS, gaussian_filter_valid, gaussian_taps,
                                          ms_ssim_per_channel, ssim_per_channel)

_REDUCTIONS = ('none', 'mean', 'sum')


def _reduce(per_image: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == 'mean':
        return per_image.mean()
    if reduction == 'sum':
        return per_image.sum()
    return per_image


class _SSIMBase(nn.Module):
    def __init__(self, loss_weight: float, reduction: str, data_range: float, win_size: int,
                 win_sigma: float, K: list[float] | tuple[float, float]) -> None:  # noqa: N803
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}; got '{reduction}'.")
        if not data_range > 0:
            raise ValueError(f'data_range must be > 0; got {data_range!r}.')
        if len(K) != 2:
            raise ValueError(f'K must be the pair (K1, K2); got {K!r}.')
        gaussian_taps(win_size, win_sigma)  # rejects an even window now rather than in forward
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.data_range = data_range
        self.win_size = win_size
        self.win_sigma = win_sigma
        self.K = tuple(float(k) for k in K)  # noqa: N815 (pytorch-msssim's name)

    @staticmethod
    def _as_float(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # SSIM's variances are differences of near-equal moments: never in half precision (with
        # autocast off, see forward: under bf16 autocast the filtering alone moved 1 - MS-SSIM
        # by 38%)
        dtype = torch.promote_types(pred.dtype, torch.float32)
        return pred.to(dtype), target.to(dtype)

    @staticmethod
    def _no_autocast(x: torch.Tensor) -> torch.autocast:
        return torch.autocast(x.device.type, enabled=False)


@LOSS_REGISTRY.register()
class SSIMLoss(_SSIMBase):
    """``loss_weight * (1 - SSIM(pred, target))`` (Wang et al. 2004; Gaussian window
    ``win_size`` / ``win_sigma``, constants ``K``)."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', data_range: float = 1.0,
                 win_size: int = 11, win_sigma: float = 1.5,
                 K: list[float] | tuple[float, float] = (0.01, 0.03)) -> None:  # noqa: N803
        super().__init__(loss_weight, reduction, data_range, win_size, win_sigma, K)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with self._no_autocast(pred):
            pred, target = self._as_float(pred, target)
            ssim = ssim_per_channel(pred, target, self.data_range, self.win_size,
                                    self.win_sigma, self.K).mean(dim=1)
            return self.loss_weight * _reduce(1 - ssim, self.reduction)


@LOSS_REGISTRY.register()
class MSSSIMLoss(_SSIMBase):
    """``loss_weight * (1 - MS-SSIM(pred, target))`` (Wang, Simoncelli & Bovik 2003: ``weights``
    per scale; fewer scales on patches under 161 pixels, see utils/ssim_util.py)."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', data_range: float = 1.0,
                 win_size: int = 11, win_sigma: float = 1.5,
                 weights: list[float] | tuple[float, ...] = MS_SSIM_WEIGHTS,
                 K: list[float] | tuple[float, float] = (0.01, 0.03)) -> None:  # noqa: N803
        super().__init__(loss_weight, reduction, data_range, win_size, win_sigma, K)
        if not weights or min(weights) < 0:
            raise ValueError(f'weights must be non-negative, one per scale; got {weights!r}.')
        self.weights = tuple(float(w) for w in weights)

    def ms_ssim(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N,) MS-SSIM of each image."""
        with self._no_autocast(pred):
            pred, target = self._as_float(pred, target)
            return ms_ssim_per_channel(pred, target, self.data_range, self.win_size,
                                       self.win_sigma, self.weights, self.K).mean(dim=1)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * _reduce(1 - self.ms_ssim(pred, target), self.reduction)


@LOSS_REGISTRY.register()
class MSSSIML1Loss(MSSSIMLoss):
    """Zhao, Gallo, Frosio & Kautz 2017, "Loss Functions for Image Restoration with Neural
    Networks": ``alpha * (1 - MS-SSIM) + (1 - alpha) * G * |pred - target| / data_range``.

    The L1 term is weighted by a Gaussian of ``gaussian_sigma`` (the paper's sigma of the
    coarsest scale, 8; 'valid' filtering: each position's value is the paper's per-patch loss at
    that patch's centre, window 4 sigma + 1 = 33), then averaged. The MS-SSIM term is this
    framework's (the 2003 pyramid, as MSSSIMLoss); the paper's own MS-SSIM filters the full
    resolution with sigmas (0.5, 1, 2, 4, 8) instead of downsampling.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', alpha: float = 0.84,
                 gaussian_sigma: float = 8.0, data_range: float = 1.0, win_size: int = 11,
                 win_sigma: float = 1.5,
                 weights: list[float] | tuple[float, ...] = MS_SSIM_WEIGHTS,
                 K: list[float] | tuple[float, float] = (0.01, 0.03)) -> None:  # noqa: N803
        super().__init__(loss_weight, reduction, data_range, win_size, win_sigma, weights, K)
        if not 0 <= alpha <= 1:
            raise ValueError(f'alpha must be in [0, 1]; got {alpha!r}.')
        if not gaussian_sigma > 0:
            raise ValueError(f'gaussian_sigma must be > 0; got {gaussian_sigma!r}.')
        self.alpha = alpha
        self.gaussian_sigma = gaussian_sigma
        self.l1_window = int(4 * gaussian_sigma) // 2 * 2 + 1  # odd, ~4 sigma wide

    def weighted_l1(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N,) Gaussian-weighted L1 of each image, divided by data_range."""
        if min(pred.shape[-2:]) < self.l1_window:
            raise ValueError(f'MSSSIML1Loss needs images of at least {self.l1_window}x'
                             f'{self.l1_window} (the L1 window of sigma {self.gaussian_sigma}); '
                             f'got {tuple(pred.shape[-2:])}.')
        with self._no_autocast(pred):
            pred, target = self._as_float(pred, target)
            taps = gaussian_taps(self.l1_window, self.gaussian_sigma)
            l1_map = gaussian_filter_valid((pred - target).abs(), taps)
            return l1_map.flatten(1).mean(dim=1) / self.data_range

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mix = self.alpha * (1 - self.ms_ssim(pred, target)) + \
            (1 - self.alpha) * self.weighted_l1(pred, target)
        return self.loss_weight * _reduce(mix, self.reduction)
