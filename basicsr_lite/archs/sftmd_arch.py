"""SFTMD: super-resolution conditioned on per-image metadata through spatial feature transform
layers. The structure of the SFTMD network of IKC (Gu et al., "Blind Super-Resolution With
Iterative Kernel Correction", CVPR 2019), whose metadata is a degradation code: three head
convolutions, residual blocks with two SFT layers each, a global skip, then an SFT layer and a
convolution, pixel-shuffle upsampling and a 9x9 output convolution. SFT: Wang et al.,
"Recovering Realistic Texture in Image Super-Resolution by Deep Spatial Feature Transform",
CVPR 2018.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.registry import ARCH_REGISTRY


class SFTLayer(nn.Module):
    """``features * sigmoid(scale(f, c)) + shift(f, c)``: a per-pixel affine transform of the
    features computed from them and the condition maps ``c``."""

    def __init__(self, num_feat: int = 64, num_cond: int = 1, hidden: int = 32) -> None:
        super().__init__()
        self.scale_conv1 = nn.Conv2d(num_feat + num_cond, hidden, 3, 1, 1)
        self.scale_conv2 = nn.Conv2d(hidden, num_feat, 3, 1, 1)
        self.shift_conv1 = nn.Conv2d(num_feat + num_cond, hidden, 3, 1, 1)
        self.shift_conv2 = nn.Conv2d(hidden, num_feat, 3, 1, 1)

    def forward(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        joint = torch.cat([features, cond], dim=1)
        scale = torch.sigmoid(self.scale_conv2(F.leaky_relu(self.scale_conv1(joint), 0.2)))
        shift = self.shift_conv2(F.leaky_relu(self.shift_conv1(joint), 0.2))
        return features * scale + shift


class SFTResidualBlock(nn.Module):
    """x + conv2(relu(sft2(conv1(relu(sft1(x, c))), c)))."""

    def __init__(self, num_feat: int = 64, num_cond: int = 1, hidden: int = 32) -> None:
        super().__init__()
        self.sft1 = SFTLayer(num_feat, num_cond, hidden)
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.sft2 = SFTLayer(num_feat, num_cond, hidden)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.sft1(x, cond)))
        return x + self.conv2(F.relu(self.sft2(out, cond)))


@ARCH_REGISTRY.register()
class SFTMD(nn.Module):
    """``forward(x, meta)``: ``x`` (N, num_in_ch, H, W), ``meta`` (N, num_meta), one vector per
    image (blur sigma, noise level, JPEG quality, kernel code ...) stretched over the image.
    ``upscale``: 1 (restoration at the same size), 2, 3 or 4."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 16, upscale: int = 4, num_meta: int = 1,
                 sft_hidden: int = 32) -> None:
        super().__init__()
        if upscale not in (1, 2, 3, 4):
            raise ValueError(f'upscale must be 1, 2, 3 or 4; got {upscale}.')
        if num_meta < 1:
            raise ValueError(f'num_meta must be >= 1; got {num_meta}.')
        self.num_meta = num_meta
        self.head = nn.Sequential(
            nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.body = nn.ModuleList(SFTResidualBlock(num_feat, num_meta, sft_hidden)
                                  for _ in range(num_block))
        self.sft_mid = SFTLayer(num_feat, num_meta, sft_hidden)
        self.conv_mid = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        stages = [2, 2] if upscale == 4 else ([] if upscale == 1 else [upscale])
        layers: list[nn.Module] = []
        for factor in stages:
            layers += [nn.Conv2d(num_feat, num_feat * factor * factor, 3, 1, 1),
                       nn.PixelShuffle(factor), nn.LeakyReLU(0.2, inplace=True)]
        self.upsample = nn.Sequential(*layers)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 9, 1, 4)

    def forward(self, x: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        if meta.dim() != 2 or meta.shape != (x.size(0), self.num_meta):
            raise ValueError(f'SFTMD takes metadata of shape (batch, num_meta) = '
                             f'({x.size(0)}, {self.num_meta}); got {tuple(meta.shape)}.')
        cond = meta.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        head = self.head(x)
        out = head
        for block in self.body:
            out = block(out, cond)
        out = self.conv_mid(self.sft_mid(out + head, cond))
        return self.conv_last(self.upsample(out))
