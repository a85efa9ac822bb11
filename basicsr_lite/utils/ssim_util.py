"""The one SSIM / MS-SSIM core in torch, shared by the SSIM losses (losses/ssim_loss.py) and the
MS-SSIM metric (metrics/ms_ssim_metric.py); it lives here because losses and metrics may not
import each other (the layering rule in .importlinter).

SSIM: Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, 'valid' filtering, K = (0.01, 0.03)).
MS-SSIM: Wang, Simoncelli & Bovik 2003 (5 scales, weights (0.0448, 0.2856, 0.3001, 0.2363,
0.1333); contrast-structure at scales 1..4, luminance and contrast-structure at the last; a 2x2
average pool between scales), computed like pytorch-msssim: the per-scale means are clipped at
0 before the weighted product, and an odd side is pooled with one zero-padded pixel on each end
(``avg_pool2d(padding=side % 2)``, the padding counted in the mean).

Small images: pytorch-msssim refuses sides <= 160 and IQA-PyTorch fails in its convolution; here
the pyramid is cut to the scales whose sides are all >= the window (11), and the weights of the
scales kept are renormalised to sum to 1 (so identical images still score 1 and the score stays
on the same scale). A side of 161 or more keeps all 5 scales, where the numbers equal
pytorch-msssim's; a side below the window is a ValueError.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def gaussian_taps(win_size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """The normalised 1-D Gaussian (``win_size`` taps) whose outer product is SSIM's window."""
    if win_size < 1 or win_size % 2 == 0:
        raise ValueError(f'win_size must be odd and positive; got {win_size}.')
    offsets = torch.arange(win_size, dtype=torch.float64) - win_size // 2
    taps = torch.exp(-offsets**2 / (2.0 * sigma**2))
    return (taps / taps.sum()).to(dtype=dtype, device=device)


def gaussian_filter_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Each channel of NCHW ``x`` filtered with the separable window, 'valid' part only."""
    channels, size = x.size(1), taps.numel()
    taps = taps.to(x)
    x = F.conv2d(x, taps.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    return F.conv2d(x, taps.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)


def ssim_maps(x: torch.Tensor, y: torch.Tensor, taps: torch.Tensor, data_range: float,
              k: Sequence[float] = (0.01, 0.03)) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ssim_map, cs_map)`` of NCHW ``x`` and ``y`` in [0, data_range]: the SSIM map and its
    contrast-structure factor, both of the 'valid' size."""
    c1 = (k[0] * data_range)**2
    c2 = (k[1] * data_range)**2
    channels = x.size(1)
    # The five local moments in one filtering pass
    moments = gaussian_filter_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), taps)
    mu_x, mu_y, xx, yy, xy = moments.split(channels, dim=1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    cs_map = (2 * (xy - mu_xy) + c2) / ((xx - mu_xx) + (yy - mu_yy) + c2)
    luminance = (2 * mu_xy + c1) / (mu_xx + mu_yy + c1)
    return luminance * cs_map, cs_map


def _check_pair(x: torch.Tensor, y: torch.Tensor, win_size: int) -> None:
    if x.shape != y.shape:
        raise ValueError(f'Tensor shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}.')
    if x.dim() != 4:
        raise ValueError(f'Expected NCHW tensors; got shape {tuple(x.shape)}.')
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f'SSIM needs images of at least {win_size}x{win_size} (the window); got '
                         f'{tuple(x.shape[-2:])}.')


def ssim_per_channel(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0,
                     win_size: int = 11, win_sigma: float = 1.5,
                     k: Sequence[float] = (0.01, 0.03)) -> torch.Tensor:
    """(N, C) mean SSIM of each image and channel (differentiable)."""
    _check_pair(x, y, win_size)
    ssim_map, _ = ssim_maps(x, y, gaussian_taps(win_size, win_sigma), data_range, k)
    return ssim_map.flatten(2).mean(-1)


def ms_ssim_levels(height: int, width: int, win_size: int = 11, max_levels: int = 5) -> int:
    """How many pyramid scales of an image ``height`` x ``width`` have both sides >= win_size."""
    levels = 0
    while levels < max_levels and min(height, width) >= win_size:
        levels += 1
        height, width = (height + 1) // 2, (width + 1) // 2  # the pool's ceil(side / 2)
    return levels


def ms_ssim_per_channel(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0,
                        win_size: int = 11, win_sigma: float = 1.5,
                        weights: Sequence[float] = MS_SSIM_WEIGHTS,
                        k: Sequence[float] = (0.01, 0.03)) -> torch.Tensor:
    """(N, C) MS-SSIM of each image and channel (differentiable); see the module docstring for
    the scales used on small images."""
    _check_pair(x, y, win_size)
    levels = ms_ssim_levels(x.size(-2), x.size(-1), win_size, len(weights))
    exponents = x.new_tensor([float(w) for w in weights[:levels]])
    if levels < len(weights):
        exponents = exponents / exponents.sum()
    taps = gaussian_taps(win_size, win_sigma)
    factors = []
    for level in range(levels):
        ssim_map, cs_map = ssim_maps(x, y, taps, data_range, k)
        if level == levels - 1:
            factors.append(F.relu(ssim_map.flatten(2).mean(-1)))
        else:
            factors.append(F.relu(cs_map.flatten(2).mean(-1)))
            padding = (x.size(-2) % 2, x.size(-1) % 2)
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    factors = torch.stack(factors)
    # factor ** exponent with a zero (not NaN) gradient where a factor was clipped to 0
    positive = factors > 0
    powered = torch.where(positive, factors, torch.ones_like(factors))**exponents.view(-1, 1, 1)
    return torch.prod(torch.where(positive, powered, torch.zeros_like(powered)), dim=0)
