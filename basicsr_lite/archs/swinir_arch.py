"""SwinIR (Liang et al., ICCV-W 2021), BasicSR's / the authors' state-dict keys.

Upsamplers: 'pixelshuffle' (classical SR), 'pixelshuffledirect' (lightweight SR),
'nearest+conv' (real-world SR), '' (denoising / JPEG: same size). Inputs of any size are padded
(reflect) to a multiple of ``window_size`` and the output is cropped back.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from basicsr_lite.archs.window_attention import (DropPath, Mlp, WindowAttention, image_to_tokens,
                                                 pad_to_multiple, run_blocks,
                                                 shifted_window_mask, tokens_to_image,
                                                 window_partition, window_reverse)
from basicsr_lite.archs.sr_shell import (build_reconstruction, check_upsampler, shell_needs,
                                        init_transformer_weights, reconstruct)
from basicsr_lite.registry import ARCH_REGISTRY


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int,
                 window_size: int = 7, shift_size: int = 0, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        if min(input_resolution) <= window_size:  # the window covers the whole image
            shift_size, window_size = 0, min(input_resolution)
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        mask = shifted_window_mask(*input_resolution, window_size, shift_size) \
            if shift_size > 0 else None
        self.register_buffer('attn_mask', mask)  # in the released weights, hence persistent

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, shift = self.window_size, self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
        if not shift:
            mask = None
        elif tuple(x_size) == tuple(self.input_resolution):
            mask = self.attn_mask
        else:
            mask = shifted_window_mask(h, w, ws, shift).to(x)
        y = self.attn(window_partition(y, ws).view(-1, ws * ws, c), mask)
        y = window_reverse(y.view(-1, ws, ws, c), ws, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    def __init__(self, dim, input_resolution, depth, num_heads, window_size, mlp_ratio,
                 qkv_bias, drop, attn_drop, drop_path: Sequence[float],
                 use_checkpoint: bool = False) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size,
                                 0 if i % 2 == 0 else window_size // 2, mlp_ratio, qkv_bias,
                                 drop, attn_drop, drop_path[i]) for i in range(depth)])

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        return run_blocks(self.blocks, x, x_size, use_checkpoint=self.use_checkpoint)


def residual_conv(dim: int, resi_connection: str) -> nn.Module:
    if resi_connection == '1conv':
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if resi_connection == '3conv':  # fewer parameters and memory
        return nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, True),
            nn.Conv2d(dim // 4, dim, 3, 1, 1))
    raise ValueError(f"resi_connection must be '1conv' or '3conv'; got '{resi_connection}'.")


class RSTB(nn.Module):
    """Residual Swin Transformer block: Swin blocks, then a conv, plus the input."""

    def __init__(self, dim, input_resolution, depth, num_heads, window_size, mlp_ratio,
                 qkv_bias, drop, attn_drop, drop_path, resi_connection,
                 use_checkpoint: bool = False) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim, input_resolution, depth, num_heads, window_size,
                                         mlp_ratio, qkv_bias, drop, attn_drop, drop_path,
                                         use_checkpoint)
        self.conv = residual_conv(dim, resi_connection)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        y = self.conv(tokens_to_image(self.residual_group(x, x_size), x_size))
        return image_to_tokens(y) + x


class PatchEmbed(nn.Module):
    """Image to token sequence (patch size 1), with an optional LayerNorm (``patch_norm``)."""

    def __init__(self, dim: int, norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = image_to_tokens(x)
        return self.norm(x) if self.norm is not None else x


@ARCH_REGISTRY.register()
class SwinIR(nn.Module):
    """Inputs in [0, 1] (``img_range`` 1 for the released models). ``img_size`` is the training
    patch size: it fixes the size of the stored ``attn_mask`` buffers, so loading official
    weights needs the value they were trained with (48 or 64, see the option files).
    ``use_checkpoint`` (the authors' name): recompute each Swin block in backward instead of
    keeping its activations (gradient checkpointing: less memory, about a third more time)."""

    needs = classmethod(shell_needs)

    def __init__(self, img_size: int = 64, patch_size: int = 1, in_chans: int = 3,
                 embed_dim: int = 96, depths: Sequence[int] = (6, 6, 6, 6),
                 num_heads: Sequence[int] = (6, 6, 6, 6), window_size: int = 7,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, ape: bool = False,
                 patch_norm: bool = True, upscale: int = 2, img_range: float = 1.0,
                 upsampler: str = '', resi_connection: str = '1conv',
                 use_checkpoint: bool = False) -> None:
        super().__init__()
        if patch_size != 1:
            raise ValueError('Only patch_size 1 is used by SwinIR for restoration.')
        check_upsampler(upsampler, upscale)
        self.img_range, self.upscale, self.upsampler = img_range, upscale, upsampler
        self.window_size = window_size
        mean = (0.4488, 0.4371, 0.4040) if in_chans == 3 else (0.0,) * in_chans
        self.mean = torch.tensor(mean).view(1, in_chans, 1, 1)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        self.absolute_pos_embed = nn.Parameter(torch.zeros(1, img_size**2, embed_dim)) \
            if ape else None
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList([
            RSTB(embed_dim, (img_size, img_size), depth, heads, window_size, mlp_ratio,
                 qkv_bias, drop_rate, attn_drop_rate,
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
        scale = self.upscale if self.upsampler else 1
        return (x / self.img_range + mean)[..., :h * scale, :w * scale]
