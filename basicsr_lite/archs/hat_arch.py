"""HAT, the Hybrid Attention Transformer (Chen et al., "Activating More Pixels in Image
Super-Resolution Transformer", CVPR 2023), with the authors' state-dict keys
(XPixelGroup/HAT hat/archs/hat_arch.py): residual hybrid attention groups (RHAG) of hybrid
attention blocks (HAB: window self-attention + channel attention) closed by an overlapping
cross-attention block (OCAB), one relative position index of each kind for the whole network
(the ``relative_position_index_SA`` / ``_OCA`` buffers of the released files).

Published variants (the authors' option files; window 16, overlap 0.5, mlp_ratio 2, six heads):
HAT-S (embed 144, 6 groups of 6, compress_ratio 24, squeeze_factor 24), HAT (embed 180, 6 x 6,
3 / 30), HAT-L (embed 180, 12 x 6, 3 / 30; pre-trained on ImageNet).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from basicsr_lite.archs.hat_blocks import (HAB, OCAB, HybridSRShell, overlap_position_index,
                                           overlap_window_size, residual_conv)
from basicsr_lite.archs.sr_shell import init_transformer_weights
from basicsr_lite.archs.window_attention import (image_to_tokens, relative_position_index,
                                                 run_blocks, run_checkpointed,
                                                 shifted_window_mask, tokens_to_image)
from basicsr_lite.registry import ARCH_REGISTRY


class AttenBlocks(nn.Module):
    """``depth`` HABs (shifted every other one), then one OCAB."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int,
                 window_size: int, compress_ratio: int, squeeze_factor: int, conv_scale: float,
                 overlap_ratio: float, mlp_ratio: float, qkv_bias: bool,
                 qk_scale: float | None, drop: float, attn_drop: float,
                 drop_path: Sequence[float], use_checkpoint: bool = False) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList([
            HAB(dim, input_resolution, num_heads, window_size,
                0 if i % 2 == 0 else window_size // 2, compress_ratio, squeeze_factor,
                conv_scale, mlp_ratio, qkv_bias, qk_scale, drop, attn_drop, drop_path[i])
            for i in range(depth)])
        self.overlap_attn = OCAB(dim, window_size, overlap_ratio, num_heads, qkv_bias, qk_scale,
                                 mlp_ratio)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], rpi_sa: torch.Tensor,
                attn_mask: torch.Tensor, rpi_oca: torch.Tensor) -> torch.Tensor:
        x = run_blocks(self.blocks, x, x_size, rpi_sa, attn_mask,
                       use_checkpoint=self.use_checkpoint)
        return run_checkpointed(self.overlap_attn, x, x_size, rpi_oca,
                                enabled=self.use_checkpoint)


class RHAG(nn.Module):
    """Residual hybrid attention group: AttenBlocks, a conv on the image layout, plus the input."""

    def __init__(self, resi_connection: str, **blocks) -> None:
        super().__init__()
        self.residual_group = AttenBlocks(**blocks)
        self.conv = residual_conv(blocks['dim'], resi_connection)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], *index_and_mask) -> torch.Tensor:
        y = tokens_to_image(self.residual_group(x, x_size, *index_and_mask), x_size)
        return image_to_tokens(self.conv(y.contiguous())) + x


@ARCH_REGISTRY.register()
class HAT(HybridSRShell):
    """Inputs in [0, 1] (``img_range`` 1), any size (padded to ``window_size`` inside).
    ``img_size`` is the training patch; it changes the network only when it is not larger than
    ``window_size`` (then no block shifts, as in the authors' code). ``use_checkpoint`` (the
    authors' name; their code accepts it and does nothing): recompute each HAB and OCAB in
    backward instead of keeping its activations.

    Defaults are the authors' except ``window_size`` (16, every published model's; their 7
    gives an OCAB window that the unfold cannot tile) and ``upsampler`` ('pixelshuffle', the
    only tail the authors build; their default '' returns the input unchanged)."""

    def __init__(self, img_size: int = 64, patch_size: int = 1, in_chans: int = 3,
                 embed_dim: int = 96, depths: Sequence[int] = (6, 6, 6, 6),
                 num_heads: Sequence[int] = (6, 6, 6, 6), window_size: int = 16,
                 compress_ratio: int = 3, squeeze_factor: int = 30, conv_scale: float = 0.01,
                 overlap_ratio: float = 0.5, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: float | None = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, ape: bool = False,
                 patch_norm: bool = True, use_checkpoint: bool = False, upscale: int = 2,
                 img_range: float = 1.0, upsampler: str = 'pixelshuffle',
                 resi_connection: str = '1conv') -> None:
        super().__init__(img_size, patch_size, in_chans, embed_dim, window_size, drop_rate, ape,
                         patch_norm, upscale, img_range, upsampler, resi_connection)
        if img_size < window_size:
            raise ValueError(f'HAT: img_size ({img_size}) must be at least window_size '
                             f'({window_size}); the authors\' blocks then shrink their window '
                             f'below the network\'s relative position index.')
        self.register_buffer('relative_position_index_SA', relative_position_index(window_size))
        self.register_buffer('relative_position_index_OCA', overlap_position_index(
            window_size, overlap_window_size(window_size, overlap_ratio)))
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            self.layers.append(RHAG(
                resi_connection, dim=embed_dim, input_resolution=(img_size, img_size),
                depth=depth, num_heads=heads, window_size=window_size,
                compress_ratio=compress_ratio, squeeze_factor=squeeze_factor,
                conv_scale=conv_scale, overlap_ratio=overlap_ratio, mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop_rate, attn_drop=attn_drop_rate,
                drop_path=dpr[sum(depths[:i]):sum(depths[:i + 1])],
                use_checkpoint=use_checkpoint))
        self.apply(init_transformer_weights)

    def run_layers(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        ws = self.window_size
        mask = shifted_window_mask(*x_size, ws, ws // 2).to(x)  # once for all blocks
        for layer in self.layers:
            x = layer(x, x_size, self.relative_position_index_SA, mask,
                      self.relative_position_index_OCA)
        return x
