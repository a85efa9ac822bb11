"""ArbSR: one network for any scale, including non-integer and asymmetric ones.

Reproduces the plug-in modules of Wang et al., "Learning A Single Network for Scale-Arbitrary
Super-Resolution" (ICCV 2021) on an EDSR or RCAN backbone (BasicSR's layer names, so BasicSR's
EDSR / RCAN weights load into the backbone with ``strict_load_g: false``):

- scale-aware convolution: ``num_experts`` kernels mixed by weights an MLP computes from
  ``(1 / scale_h, 1 / scale_w)``;
- scale-aware feature adaptation after every ``adapt_every`` backbone blocks:
  ``x + mask(x) * scale_aware_conv(x)``, the mask a small convolutional network;
- scale-aware upsampling: each output pixel samples the features at its position in the input
  (plus a learned offset, bilinear) and filters them with its own 1x1 compress / expand pair,
  mixed from ``num_experts`` pairs by weights computed from the scale and the pixel's relative
  position inside its input pixel.

Differences from the authors' code: sampling uses ``align_corners=True``, which matches the
coordinates it computes (their code leaves it to the PyTorch default, which changed in 1.3), and
the mask's upsampling goes back to the input's size, so odd sizes work too (theirs needs even).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.archs.arch_util import ResidualBlockNoBN
from basicsr_lite.archs.rcan_arch import ResidualGroup
from basicsr_lite.registry import ARCH_REGISTRY

Scale = tuple[float, float]


def as_scale_pair(scale: float | Sequence[float] | torch.Tensor) -> Scale:
    """``scale`` as (scale_h, scale_w): a number is both; a pair or a (2,) / (N, 2) tensor whose
    rows are all the same (one scale per batch) is read as it is."""
    if isinstance(scale, torch.Tensor):
        pairs = scale.reshape(-1, 2)
        if not torch.all(pairs == pairs[0]):
            raise ValueError(f'ArbSR takes one scale per batch; got {pairs.tolist()}.')
        scale = pairs[0].tolist()
    if isinstance(scale, (int, float)):
        return float(scale), float(scale)
    scale_h, scale_w = (float(s) for s in scale)
    return scale_h, scale_w


def _kaiming_experts(count: int, *shape: int) -> nn.Parameter:
    weights = torch.empty(count, *shape)
    for expert in weights:
        nn.init.kaiming_uniform_(expert, a=math.sqrt(5))
    return nn.Parameter(weights)


class ScaleAwareConv(nn.Module):
    """A convolution whose kernel is a scale-dependent mix of ``num_experts`` kernels."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, padding: int = 1,
                 bias: bool = False, num_experts: int = 4) -> None:
        super().__init__()
        self.padding = padding
        self.routing = nn.Sequential(nn.Linear(2, 64), nn.ReLU(inplace=True),
                                     nn.Linear(64, num_experts), nn.Softmax(dim=1))
        self.weight_pool = _kaiming_experts(num_experts, out_ch, in_ch, kernel_size, kernel_size)
        self.bias_pool = None
        if bias:
            bound = 1 / math.sqrt(in_ch * kernel_size * kernel_size)
            self.bias_pool = nn.Parameter(torch.empty(num_experts, out_ch).uniform_(-bound,
                                                                                   bound))

    def forward(self, x: torch.Tensor, scale: Scale) -> torch.Tensor:
        inverse = torch.tensor([[1 / scale[0], 1 / scale[1]]], device=x.device, dtype=x.dtype)
        mix = self.routing(inverse)[0]  # (experts,)
        weight = torch.einsum('e,eoikl->oikl', mix, self.weight_pool.to(x.dtype))
        bias = None if self.bias_pool is None else mix @ self.bias_pool.to(x.dtype)
        return F.conv2d(x, weight, bias, padding=self.padding)


class ScaleAwareAdapt(nn.Module):
    """``x + mask(x) * scale_aware_conv(x)``: features adapted to the scale where it matters."""

    def __init__(self, num_feat: int = 64, num_experts: int = 4) -> None:
        super().__init__()
        self.mask_down = nn.Sequential(
            nn.Conv2d(num_feat, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
            nn.Conv2d(16, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.mask_up = nn.Sequential(nn.Conv2d(16, 1, 3, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())
        self.adapt = ScaleAwareConv(num_feat, num_feat, 3, 1, bias=False,
                                    num_experts=num_experts)

    def forward(self, x: torch.Tensor, scale: Scale) -> torch.Tensor:
        low = F.interpolate(self.mask_down(x), size=x.shape[-2:], mode='bilinear',
                            align_corners=False)
        return x + self.adapt(x, scale) * self.mask_up(low)


class ScaleAwareUpsample(nn.Module):
    """Features (N, C, h, w) -> (N, C, round(h * scale_h), round(w * scale_w))."""

    def __init__(self, num_feat: int = 64, num_experts: int = 4) -> None:
        super().__init__()
        self.num_experts = num_experts
        squeezed = num_feat // 8
        self.weight_compress = _kaiming_experts(num_experts, squeezed, num_feat)
        self.weight_expand = _kaiming_experts(num_experts, num_feat, squeezed)
        self.body = nn.Sequential(nn.Conv2d(4, 64, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(64, 64, 1), nn.ReLU(inplace=True))
        self.routing = nn.Sequential(nn.Conv2d(64, num_experts, 1), nn.Sigmoid())
        self.offset = nn.Conv2d(64, 2, 1)

    @staticmethod
    def positions(size: int, out_size: int, scale: float, device, dtype) -> torch.Tensor:
        """Each output pixel's centre in input pixel coordinates (pixel centres at 0, 1, ...)."""
        return (torch.arange(out_size, device=device, dtype=dtype) + 0.5) / scale - 0.5

    def forward(self, x: torch.Tensor, scale: Scale) -> torch.Tensor:
        n, c, h, w = x.shape
        out_h, out_w = round(h * scale[0]), round(w * scale[1])
        ys = self.positions(h, out_h, scale[0], x.device, x.dtype)
        xs = self.positions(w, out_w, scale[1], x.device, x.dtype)
        # where each output pixel falls inside its input pixel, in [-0.5, 0.5)
        rel_y = ys + 0.5 - torch.floor(ys + 0.5 + 1e-3) - 0.5
        rel_x = xs + 0.5 - torch.floor(xs + 0.5 + 1e-3) - 0.5
        embedding = self.body(torch.stack([
            torch.full((out_h, out_w), 1 / scale[1], device=x.device, dtype=x.dtype),
            torch.full((out_h, out_w), 1 / scale[0], device=x.device, dtype=x.dtype),
            rel_y[:, None].expand(out_h, out_w), rel_x[None, :].expand(out_h, out_w)])[None])
        offset = self.offset(embedding)[0]  # (2, H, W): x, y in input pixels
        mix = self.routing(embedding)[0]  # (experts, H, W)
        # sample the features at each output pixel's position (+ offset), bilinear
        grid_x = (xs[None, :] + offset[0]) * 2 / max(w - 1, 1) - 1
        grid_y = (ys[:, None] + offset[1]) * 2 / max(h - 1, 1) - 1
        grid = torch.stack([grid_x, grid_y], dim=-1)[None].expand(n, -1, -1, -1)
        sampled = F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros',
                                align_corners=True)
        # per-pixel 1x1 filters: compress C -> C/8, expand back, mixed from the experts
        compress = torch.einsum('ehw,ekc->hwkc', mix, self.weight_compress.to(x.dtype))
        expand = torch.einsum('ehw,eck->hwck', mix, self.weight_expand.to(x.dtype))
        squeezed = torch.einsum('hwkc,nchw->nkhw', compress, sampled)
        return torch.einsum('hwck,nkhw->nchw', expand, squeezed) + sampled


@ARCH_REGISTRY.register()
class ArbSR(nn.Module):
    """``forward(x, scale)``: ``scale`` a number or (scale_h, scale_w), any value >= 1.

    ``backbone``: 'edsr' (``num_block`` residual blocks) or 'rcan' (``num_group`` groups of
    ``num_block`` RCABs); feature adaptation after every ``adapt_every`` of them (ArbSR's
    ArbRCAN: after each of its 10 groups). Inputs are RGB in [0, 1], mean-shifted by
    ``rgb_mean`` and multiplied by ``img_range`` inside, as EDSR / RCAN.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 backbone: str = 'edsr', num_block: int = 16, num_group: int = 10,
                 squeeze_factor: int = 16, res_scale: float = 1.0, adapt_every: int = 4,
                 num_experts: int = 4, img_range: float = 255.0,
                 rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040)) -> None:
        super().__init__()
        if backbone not in ('edsr', 'rcan'):
            raise ValueError(f"backbone must be 'edsr' or 'rcan'; got {backbone!r}.")
        if len(rgb_mean) != num_in_ch:
            raise ValueError(f'rgb_mean has {len(rgb_mean)} values but num_in_ch is {num_in_ch}.')
        if num_feat % 8:
            raise ValueError(f'num_feat must be a multiple of 8 (the upsampler compresses the '
                             f'features 8x); got {num_feat}.')
        if backbone == 'edsr':
            blocks = [ResidualBlockNoBN(num_feat, res_scale, pytorch_init=True)
                      for _ in range(num_block)]
        else:
            blocks = [ResidualGroup(num_feat, num_block, squeeze_factor, res_scale)
                      for _ in range(num_group)]
        if not 1 <= adapt_every <= len(blocks):
            raise ValueError(f'adapt_every must be in 1..{len(blocks)} (the backbone blocks); '
                             f'got {adapt_every}.')
        self.img_range = img_range
        self.mean = torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.adapt_every = adapt_every
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*blocks)
        self.adapt = nn.ModuleList(ScaleAwareAdapt(num_feat, num_experts)
                                   for _ in range(len(blocks) // adapt_every))
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = ScaleAwareUpsample(num_feat, num_experts)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor, scale: float | Sequence[float] | torch.Tensor
                ) -> torch.Tensor:
        pair = as_scale_pair(scale)
        if min(pair) < 1:
            raise ValueError(f'ArbSR upscales: scale must be >= 1; got {pair}.')
        mean = self.mean.to(x)
        x = self.conv_first((x - mean) * self.img_range)
        res = x
        for i, block in enumerate(self.body):
            res = block(res)
            if (i + 1) % self.adapt_every == 0 and (i + 1) // self.adapt_every <= len(self.adapt):
                res = self.adapt[(i + 1) // self.adapt_every - 1](res, pair)
        res = self.conv_after_body(res) + x
        return self.conv_last(self.upsample(res, pair)) / self.img_range + mean
