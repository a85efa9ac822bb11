"""SRFormer (Zhou et al., "SRFormer: Permuted Self-Attention for Single Image Super-Resolution",
ICCV 2023), with the authors' state-dict keys (HVision-NKU/SRFormer
``basicsr/archs/srformer_arch.py``; the blocks are in srformer_blocks.py).

SwinIR's skeleton (shallow conv, residual groups of transformer blocks, conv, upsampler) with
permuted self-attention in windows of 24 (classical, released with 22) or 16 (lightweight)
and a depthwise conv inside the MLP. Inputs of any size are padded (reflect) to a multiple of
``window_size`` and the output is cropped back.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from basicsr_lite.archs.srformer_blocks import PSAGroup
from basicsr_lite.archs.sr_shell import (build_reconstruction, check_upsampler, shell_needs,
                                        init_transformer_weights, reconstruct)
from basicsr_lite.archs.swinir_arch import PatchEmbed, residual_conv
from basicsr_lite.archs.window_attention import pad_to_multiple, tokens_to_image
from basicsr_lite.registry import ARCH_REGISTRY



@ARCH_REGISTRY.register()
class SRFormer(nn.Module):
    """Inputs in [0, 1] (``img_range`` 1). ``img_size`` is the training patch size rounded up
    to a multiple of ``window_size``: it fixes the shape of the stored ``attn_mask`` buffers, so
    loading released weights needs the value of the authors' test option files (64; window 22
    for the classical models, 16 for the light ones). Upsamplers as SwinIR: 'pixelshuffle'
    (classical), 'pixelshuffledirect' (light), 'nearest+conv' (real-world x4), '' (same size).
    ``use_checkpoint`` (the authors' name): recompute each PSA block in backward instead of
    keeping its activations."""

    needs = classmethod(shell_needs)

    def __init__(self, img_size: int = 64, patch_size: int = 1, in_chans: int = 3,
                 embed_dim: int = 96, depths: Sequence[int] = (6, 6, 6, 6),
                 num_heads: Sequence[int] = (6, 6, 6, 6), window_size: int = 7,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, ape: bool = False, patch_norm: bool = True,
                 use_checkpoint: bool = False, upscale: int = 2, img_range: float = 1.0,
                 upsampler: str = '', resi_connection: str = '1conv') -> None:
        super().__init__()
        if patch_size != 1:
            raise ValueError('Only patch_size 1 is used by SRFormer for restoration.')
        check_upsampler(upsampler, upscale)
        if embed_dim % 4 or any(embed_dim % heads for heads in num_heads):
            raise ValueError(f'embed_dim ({embed_dim}) must be a multiple of 4 (PSA folds 2x2 '
                             f'keys of embed_dim / 4 channels) and of every num_heads.')
        self.img_range, self.upscale, self.upsampler = img_range, upscale, upsampler
        self.window_size = window_size
        mean = (0.4488, 0.4371, 0.4040) if in_chans == 3 else (0.0,) * in_chans
        self.mean = torch.tensor(mean).view(1, in_chans, 1, 1)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        side = -(-img_size // window_size) * window_size  # the authors round img_size up
        self.patches_resolution = (side, side)
        if ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, side * side, embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        else:
            self.absolute_pos_embed = None
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.layers = nn.ModuleList([
            PSAGroup(embed_dim, self.patches_resolution, depth, heads, window_size, mlp_ratio,
                     qkv_bias, qk_scale, drop_rate, attn_drop_rate,
                     dpr[sum(depths[:i]):sum(depths[:i + 1])], resi_connection, use_checkpoint)
            for i, (depth, heads) in enumerate(zip(depths, num_heads))])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)
        build_reconstruction(self, upsampler, upscale, embed_dim, in_chans)
        self.apply(init_transformer_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        if self.absolute_pos_embed is not None:
            x = x + self.absolute_pos_embed
        x = self.pos_drop(x)
        for layer in self.layers:
            x = layer(x, x_size)
        return tokens_to_image(self.norm(x), x_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.window_size)
        mean = self.mean.to(x)
        x = (x - mean) * self.img_range
        x = reconstruct(self, x, self.forward_features)
        scale = self.upscale if self.upsampler else 1  # the authors crop by upscale even here
        return (x / self.img_range + mean)[..., :h * scale, :w * scale]
