"""Pieces of HAT (Chen et al., CVPR 2023; XPixelGroup/HAT hat/archs/hat_arch.py) and the shell
that HAT and DRCT (Hsu et al., CVPR-W 2024; ming053l/DRCT, written on HAT's code) share.

- :class:`HAB`: a Swin block whose window attention reads HAT's one, network-level relative
  position index (``relative_position_index_SA``), plus a convolutional channel-attention branch
  (:class:`CAB`) scaled by ``conv_scale``;
- :class:`OCAB`: overlapping cross-attention: queries from a window, keys and values from a
  larger window around it (``overlap_ratio``), indexed by ``relative_position_index_OCA``;
- :class:`HybridSRShell`: what both networks build around their groups of blocks, in the
  authors' order (mean shift, ``conv_first``, token embedding, ..., ``norm``,
  ``conv_after_body``, the pixel-shuffle tail), with padding to the window inside ``forward``
  (the authors' HATModel / DRCTModel pad in ``test()`` the same way: reflect, bottom / right).
"""
from __future__ import annotations

import torch
from torch import nn

from basicsr_lite.archs.constraints import NetworkNeeds
from basicsr_lite.archs.rcan_arch import ChannelAttention
from basicsr_lite.archs.sr_shell import build_reconstruction
from basicsr_lite.archs.swinir_arch import PatchEmbed
from basicsr_lite.archs.window_attention import (DropPath, Mlp, WindowAttention, image_to_tokens,
                                                 pad_to_multiple, tokens_to_image,
                                                 window_partition, window_reverse)


def overlap_window_size(window_size: int, overlap_ratio: float) -> int:
    """Side of OCAB's key / value window (the authors' truncation)."""
    return int(window_size * overlap_ratio) + window_size


def overlap_position_index(window_size: int, overlap_size: int) -> torch.Tensor:
    """(ws^2, ows^2) index of each (query, key) pair's offset into OCAB's
    ((ws + ows - 1)^2, heads) bias table (HAT's ``calculate_rpi_oca``)."""
    def grid(n: int) -> torch.Tensor:
        return torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n),
                                          indexing='ij')).flatten(1)
    rel = (grid(overlap_size)[:, None, :] - grid(window_size)[:, :, None]).permute(1, 2, 0)
    rel = rel + (window_size - overlap_size + 1)
    return rel[:, :, 0] * (window_size + overlap_size - 1) + rel[:, :, 1]


class CAB(nn.Module):
    """Channel attention block: 3x3 conv down by ``compress_ratio``, GELU, 3x3 conv back, RCAN's
    channel attention (global average pooling: the image-wide statistic of HAT)."""

    def __init__(self, num_feat: int, compress_ratio: int = 3, squeeze_factor: int = 30) -> None:
        super().__init__()
        mid = num_feat // compress_ratio
        self.cab = nn.Sequential(nn.Conv2d(num_feat, mid, 3, 1, 1), nn.GELU(),
                                 nn.Conv2d(mid, num_feat, 3, 1, 1),
                                 ChannelAttention(num_feat, squeeze_factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cab(x)


class HAB(nn.Module):
    """Hybrid attention block: (shifted) window attention + ``conv_scale`` * CAB, then the MLP.
    The relative position index and the shift mask come from the network (one for all blocks)."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int,
                 window_size: int, shift_size: int, compress_ratio: int, squeeze_factor: int,
                 conv_scale: float, mlp_ratio: float, qkv_bias: bool, qk_scale: float | None,
                 drop: float, attn_drop: float, drop_path: float) -> None:
        super().__init__()
        if min(input_resolution) <= window_size:  # one window covers the training patch
            shift_size, window_size = 0, min(input_resolution)
        self.window_size, self.shift_size, self.conv_scale = window_size, shift_size, conv_scale
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, attn_drop, drop,
                                    index_buffer=False)
        if qk_scale:
            self.attn.scale = qk_scale
        self.conv_block = CAB(dim, compress_ratio, squeeze_factor)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], rpi_sa: torch.Tensor,
                attn_mask: torch.Tensor | None) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, shift = self.window_size, self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        conv_x = image_to_tokens(self.conv_block(y.permute(0, 3, 1, 2)))
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
        y = self.attn(window_partition(y, ws).view(-1, ws * ws, c),
                      attn_mask if shift else None, index=rpi_sa)
        y = window_reverse(y.view(-1, ws, ws, c), ws, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c)) + conv_x * self.conv_scale
        return x + self.drop_path(self.mlp(self.norm2(x)))


class OCAB(nn.Module):
    """Overlapping cross-attention block: each window's queries attend to the keys / values of
    an ``overlap_ratio`` larger, zero-padded window centred on it; then an MLP (no drop path)."""

    def __init__(self, dim: int, window_size: int, overlap_ratio: float, num_heads: int,
                 qkv_bias: bool = True, qk_scale: float | None = None,
                 mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = qk_scale or (dim // num_heads)**-0.5
        ows = self.overlap_win_size = overlap_window_size(window_size, overlap_ratio)
        if (ows - window_size) % 2:
            raise ValueError(f'OCAB: the overlapping window ({ows}) must exceed the window '
                             f'({window_size}) by an even number (the unfold pads it on both '
                             f'sides); change window_size or overlap_ratio.')
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.unfold = nn.Unfold(kernel_size=(ows, ows), stride=window_size,
                                padding=(ows - window_size) // 2)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((window_size + ows - 1)**2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, x_size: tuple[int, int],
                rpi: torch.Tensor) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, ows, heads = self.window_size, self.overlap_win_size, self.num_heads
        qkv = self.qkv(self.norm1(x).view(b, h, w, c)).reshape(b, h, w, 3, c)
        qkv = qkv.permute(3, 0, 4, 1, 2)  # 3, b, c, h, w
        q = window_partition(qkv[0].permute(0, 2, 3, 1), ws).view(-1, ws * ws, c)
        kv = self.unfold(torch.cat((qkv[1], qkv[2]), dim=1))  # b, 2 * c * ows^2, windows
        kv = kv.view(b, 2, c, ows * ows, -1).permute(1, 0, 4, 3, 2).reshape(2, -1, ows * ows, c)
        nw_b, d = q.shape[0], c // heads
        q = q.reshape(nw_b, ws * ws, heads, d).permute(0, 2, 1, 3)
        k, v = (t.reshape(nw_b, ows * ows, heads, d).permute(0, 2, 1, 3) for t in kv)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[rpi.view(-1)].view(ws * ws, ows * ows, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        y = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(nw_b, ws * ws, c)
        y = window_reverse(y.view(-1, ws, ws, c), ws, h, w).reshape(b, h * w, c)
        x = self.proj(y) + x
        return x + self.mlp(self.norm2(x))


def residual_conv(dim: int, resi_connection: str) -> nn.Module:
    """The conv closing each group and the body: '1conv' or 'identity' (HAT, DRCT)."""
    if resi_connection == '1conv':
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if resi_connection == 'identity':
        return nn.Identity()
    raise ValueError(f"resi_connection must be '1conv' or 'identity'; got '{resi_connection}'.")


class HybridSRShell(nn.Module):
    """Everything of HAT / DRCT around their groups (``self.layers``, filled in by the
    subclass, which also defines ``run_layers``). Inputs in [0, 1] are padded (reflect) to a
    multiple of ``window_size`` and the output is cropped back."""

    contiguous_unembed = True  # HAT's PatchUnEmbed copies; DRCT's is a view (the same values)

    @classmethod
    def needs(cls, args: dict) -> NetworkNeeds:
        """``in_chans`` in and out, ``upscale`` (only the pixel-shuffle tail is built)."""
        return NetworkNeeds(in_ch=args['in_chans'], out_ch=args['in_chans'],
                            scale=args['upscale'], in_key='in_chans', out_key='in_chans')

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int,
                 window_size: int, drop_rate: float, ape: bool, patch_norm: bool, upscale: int,
                 img_range: float, upsampler: str, resi_connection: str) -> None:
        super().__init__()
        if patch_size != 1:
            raise ValueError('Only patch_size 1 is used for restoration (HAT, DRCT).')
        if upsampler != 'pixelshuffle':
            raise ValueError(f"upsampler must be 'pixelshuffle' (the authors build no other "
                             f"tail); got '{upsampler}'.")
        self.window_size, self.img_range, self.upscale = window_size, img_range, upscale
        self.mean = torch.tensor((0.4488, 0.4371, 0.4040)).view(1, 3, 1, 1) if in_chans == 3 \
            else torch.zeros(1, 1, 1, 1)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        self.absolute_pos_embed = nn.Parameter(torch.zeros(1, img_size**2, embed_dim)) \
            if ape else None
        if ape:
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(drop_rate)
        self.layers = nn.ModuleList()  # registered here: the state-dict order is the authors'
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)
        build_reconstruction(self, upsampler, upscale, embed_dim, in_chans)

    def run_layers(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        if self.absolute_pos_embed is not None:
            x = x + self.absolute_pos_embed
        x = self.norm(self.run_layers(self.pos_drop(x), x_size))
        x = tokens_to_image(x, x_size)
        return x.contiguous() if self.contiguous_unembed else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.window_size)
        mean = self.mean.to(x)
        x = self.conv_first((x - mean) * self.img_range)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        return (x / self.img_range + mean)[..., :h * self.upscale, :w * self.upscale]
