"""ATD (Zhang et al., CVPR 2024, "Transcending the Limit of Local Window: Advanced
Super-Resolution Transformer with Adaptive Token Dictionary"), the authors' state-dict keys
(LabShuHangGU/Adaptive-Token-Dictionary, basicsr/archs/atd_arch.py); blocks in atd_blocks.py.

A SwinIR-shaped network (conv, residual groups of transformer layers, conv, upsampler) whose
layers add to the window attention a cross-attention to a learned token dictionary and an
attention among tokens of the same dictionary category across the whole image. Inputs of any
size are padded at the bottom / right with their mirror to a multiple of ``window_size`` and the
output is cropped back. Published variants (the authors' option files):

- ATD: ``embed_dim 210, depths / num_heads [6] * 6, window_size 16, category_size 256,
  num_tokens 128, reducted_dim 20, convffn_kernel_size 5, mlp_ratio 2, upsampler
  'pixelshuffle'`` (20.26M parameters at x4);
- ATD-light: ``embed_dim 48, depths [6] * 4, num_heads [4] * 4, window_size 16, category_size
  128, num_tokens 64, reducted_dim 8, convffn_kernel_size 7, mlp_ratio 1, upsampler
  'pixelshuffledirect'`` (769K at x4).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from basicsr_lite.archs.atd_blocks import ATDB, symmetric_pad
from basicsr_lite.archs.sr_shell import (build_reconstruction, check_upsampler, shell_needs,
                                        init_transformer_weights, reconstruct)
from basicsr_lite.archs.swinir_arch import PatchEmbed, residual_conv
from basicsr_lite.archs.window_attention import (relative_position_index, shifted_window_mask,
                                                 tokens_to_image)
from basicsr_lite.registry import ARCH_REGISTRY



@ARCH_REGISTRY.register()
class ATD(nn.Module):
    """Inputs in [0, 1] (``img_range`` 1 for the released models). ``category_size`` (tokens
    per AC-MSA group) and ``img_size`` leave no trace in the weights; ``img_size`` only sizes
    the absolute position embedding (``ape``), which no released model uses.
    ``use_checkpoint`` (the authors' name): recompute each transformer layer in backward
    instead of keeping its activations (the same gradients, less memory, more time)."""

    needs = classmethod(shell_needs)

    def __init__(self, img_size: int = 64, patch_size: int = 1, in_chans: int = 3,
                 embed_dim: int = 90, depths: Sequence[int] = (6, 6, 6, 6),
                 num_heads: Sequence[int] = (6, 6, 6, 6), window_size: int = 8,
                 category_size: int = 128, num_tokens: int = 64, reducted_dim: int = 4,
                 convffn_kernel_size: int = 5, mlp_ratio: float = 2.0, qkv_bias: bool = True,
                 ape: bool = False, patch_norm: bool = True, use_checkpoint: bool = False,
                 upscale: int = 2, img_range: float = 1.0, upsampler: str = '',
                 resi_connection: str = '1conv') -> None:
        super().__init__()
        if patch_size != 1:
            raise ValueError('Only patch_size 1 is used by ATD.')
        check_upsampler(upsampler, upscale)
        if len(depths) != len(num_heads):
            raise ValueError(f'depths {list(depths)} and num_heads {list(num_heads)} differ in '
                             f'length (one entry per residual group).')
        self.img_range, self.upscale, self.upsampler = img_range, upscale, upsampler
        self.window_size = window_size
        mean = (0.4488, 0.4371, 0.4040) if in_chans == 3 else (0.0,) * in_chans
        self.mean = torch.tensor(mean).view(1, in_chans, 1, 1)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        self.absolute_pos_embed = nn.Parameter(torch.zeros(1, img_size**2, embed_dim)) \
            if ape else None
        if ape:
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        # one index for every layer's window attention (in the released weights)
        self.register_buffer('relative_position_index_SA', relative_position_index(window_size))
        self.layers = nn.ModuleList([
            ATDB(embed_dim, depth, heads, window_size, category_size, num_tokens, reducted_dim,
                 convffn_kernel_size, mlp_ratio, qkv_bias, resi_connection, use_checkpoint)
            for depth, heads in zip(depths, num_heads)])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)
        build_reconstruction(self, upsampler, upscale, embed_dim, in_chans)
        self.apply(init_transformer_weights)

    def forward_features(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        if self.absolute_pos_embed is not None:
            x = x + self.absolute_pos_embed
        for layer in self.layers:
            x = layer(x, x_size, attn_mask, self.relative_position_index_SA)
        return tokens_to_image(self.norm(x), x_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ws = self.window_size
        x = symmetric_pad(x, ws)
        mean = self.mean.to(x)
        x = (x - mean) * self.img_range
        attn_mask = shifted_window_mask(x.shape[2], x.shape[3], ws, ws // 2).to(x)
        x = reconstruct(self, x, lambda f: self.forward_features(f, attn_mask))
        scale = self.upscale if self.upsampler else 1
        return (x / self.img_range + mean)[..., :h * scale, :w * scale]
