"""DRCT, the Dense-residual-connected Transformer (Hsu et al., "DRCT: Saving Image
Super-resolution away from Information Bottleneck", CVPR-W 2024), with the authors' state-dict
keys (ming053l/DRCT drct/archs/DRCT_arch.py).

Each residual dense group (RDG) chains five Swin blocks densely, as RRDB chains convolutions:
block k sees the group input concatenated with the ``gc``-channel outputs of the blocks before
it (a 1x1 ``adjust`` conv after each block brings it to ``gc`` channels, the last one back to
``embed_dim``), and the group returns 0.2 * its last output + its input. The Swin blocks are
SwinIR's (their own relative position index and shift-mask buffers, as in the released files);
the widened blocks take ``num_heads - (width % num_heads)`` heads and blocks 4 and 5 an MLP of
ratio 1, as the authors wrote them. ``depths`` only sets the number of groups and the
drop-path rates (every group has five blocks, each with the first rate of its slice).

Published variants (the authors' option files; window 16, embed 180, six heads, mlp_ratio 2,
gc 32): DRCT (6 groups), DRCT-L (12 groups).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from basicsr_lite.archs.hat_blocks import HybridSRShell
from basicsr_lite.archs.sr_shell import init_transformer_weights
from basicsr_lite.archs.swinir_arch import SwinTransformerBlock
from basicsr_lite.archs.window_attention import image_to_tokens, run_checkpointed, tokens_to_image
from basicsr_lite.registry import ARCH_REGISTRY

DENSE_STEPS = 5


class RDG(nn.Module):
    """Residual dense group: swin1..5 / adjust1..5 (the authors' keys)."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int,
                 window_size: int, mlp_ratio: float, qkv_bias: bool, qk_scale: float | None,
                 drop: float, attn_drop: float, drop_path: float, gc: int,
                 use_checkpoint: bool = False) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        for k in range(1, DENSE_STEPS + 1):
            width = dim + (k - 1) * gc
            heads = num_heads if k == 1 else num_heads - width % num_heads
            block = SwinTransformerBlock(
                width, input_resolution, heads, window_size,
                0 if k % 2 else window_size // 2, mlp_ratio if k <= 3 else 1, qkv_bias, drop,
                attn_drop, drop_path)
            if qk_scale:
                block.attn.scale = qk_scale
            setattr(self, f'swin{k}', block)
            setattr(self, f'adjust{k}', nn.Conv2d(width, gc if k < DENSE_STEPS else dim, 1))
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def dense_step(self, k: int, x_size: tuple[int, int], *feats: torch.Tensor) -> torch.Tensor:
        """Block k on [input, outputs of blocks 1..k-1], then its 1x1 conv (and LeakyReLU)."""
        x = feats[0] if len(feats) == 1 else torch.cat(feats, -1)
        y = getattr(self, f'adjust{k}')(
            tokens_to_image(getattr(self, f'swin{k}')(x, x_size), x_size))
        return image_to_tokens(self.lrelu(y) if k < DENSE_STEPS else y)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        feats = [x]
        for k in range(1, DENSE_STEPS + 1):
            feats.append(run_checkpointed(self.dense_step, k, x_size, *feats,
                                          enabled=self.use_checkpoint))
        return feats[-1] * 0.2 + x


@ARCH_REGISTRY.register()
class DRCT(HybridSRShell):
    """Inputs in [0, 1] (``img_range`` 1), any size (padded to ``window_size`` inside).
    ``img_size`` is the training patch: it fixes the size of the stored shift-mask buffers, so
    loading the released weights needs the value they were trained with (64).
    ``use_checkpoint`` (the authors' name; their code accepts it and does nothing): recompute
    each dense step (Swin block + 1x1 conv) in backward instead of keeping its activations.

    ``compress_ratio``, ``squeeze_factor``, ``conv_scale`` and ``overlap_ratio`` are accepted
    because the authors' option files (copied from HAT's) set them; DRCT builds nothing from
    them. Defaults are the authors', except ``upsampler`` ('pixelshuffle', the only tail they
    build; their default '' returns the input unchanged)."""

    contiguous_unembed = False

    def __init__(self, img_size: int = 64, patch_size: int = 1, in_chans: int = 3,
                 embed_dim: int = 96, depths: Sequence[int] = (6, 6, 6, 6),
                 num_heads: Sequence[int] = (6, 6, 6, 6), window_size: int = 7,
                 compress_ratio: int = 3, squeeze_factor: int = 30, conv_scale: float = 0.01,
                 overlap_ratio: float = 0.5, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: float | None = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, ape: bool = False,
                 patch_norm: bool = True, use_checkpoint: bool = False, upscale: int = 2,
                 img_range: float = 1.0, upsampler: str = 'pixelshuffle',
                 resi_connection: str = '1conv', gc: int = 32) -> None:
        super().__init__(img_size, patch_size, in_chans, embed_dim, window_size, drop_rate, ape,
                         patch_norm, upscale, img_range, upsampler, resi_connection)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        for i in range(len(depths)):
            rates = dpr[sum(depths[:i]):sum(depths[:i + 1])]
            self.layers.append(RDG(embed_dim, (img_size, img_size), num_heads[i], window_size,
                                   mlp_ratio, qkv_bias, qk_scale, drop_rate, attn_drop_rate,
                                   rates[0] if rates else 0.0, gc, use_checkpoint))
        self.apply(init_transformer_weights)

    def run_layers(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, x_size)
        return x
