"""The blocks of ATD (Zhang et al., CVPR 2024, "Transcending the Limit of Local Window: Advanced
Super-Resolution Transformer with Adaptive Token Dictionary"; the authors' code is
basicsr/archs/atd_arch.py of LabShuHangGU/Adaptive-Token-Dictionary). Attribute names are the
authors' (the released weights load strictly); the arithmetic follows their order of operations.

Every transformer layer mixes three attentions computed from one LayerNorm'd input:
window attention (Swin's, on a shared ``wqkv`` projection), cross-attention to a learned token
dictionary (``ATD_CA``), and attention inside categories of tokens sorted by their most similar
dictionary entry (``AC_MSA``). The dictionary is then refined from the image (adaptive token
refinement). Both the categories and the refinement span the whole image: ATD does not tile
exactly.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.archs.swinir_arch import residual_conv
from basicsr_lite.archs.window_attention import (image_to_tokens, run_checkpointed,
                                                 tokens_to_image, window_partition,
                                                 window_reverse)

# AC-MSA clamps its learned temperature at log(1 / 0.01), computed in float32 by the authors.
_MAX_LOGIT_SCALE = torch.tensor(1.0 / 0.01).log().item()


def symmetric_pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (N, C, H, W) at the bottom / right to multiples of ``multiple`` with the image's
    mirror that repeats the edge row (the authors append the flipped image and crop). A pad
    larger than the image mirrors again (the authors' single flip fails there)."""
    h, w = x.shape[-2:]
    h_to, w_to = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    while x.shape[-2] < h_to:
        x = torch.cat([x, x.flip(-2)], dim=-2)
    while x.shape[-1] < w_to:
        x = torch.cat([x, x.flip(-1)], dim=-1)
    return x[..., :h_to, :w_to]


def inverse_permutation(index: torch.Tensor) -> torch.Tensor:
    """(B, N) permutations -> their inverses: ``out[b, index[b, j]] = j``."""
    positions = torch.arange(index.shape[-1], device=index.device).expand_as(index)
    return torch.empty_like(index).scatter_(-1, index, positions)


def category_order(category: torch.Tensor) -> torch.Tensor:
    """The permutation sorting (B, N) category ids, equal ids in token order (a stable sort).

    The authors call ``torch.sort(stable=False)``: on CUDA, where the released models were
    trained and measured, that sort keeps equal ids in token order (seen on an H200, torch 2.11),
    on the CPU it does not, and which tokens share an attention group changes the output. Unique
    keys (id * N + position) give the CUDA order on every device, and export to ONNX (TopK)."""
    n = category.shape[-1]
    keys = category * n + torch.arange(n, device=category.device)
    return torch.sort(keys, dim=-1)[1]


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, N, C) tokens reordered by (B, N) ``index`` along N."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand_as(x))


class dwconv(nn.Module):  # noqa: N801 (the authors' name; the key is convffn.dwconv.*)
    """Depthwise k x k conv + GELU on the token sequence seen as an image."""

    def __init__(self, hidden_features: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.depthwise_conv = nn.Sequential(
            nn.Conv2d(hidden_features, hidden_features, kernel_size, 1, (kernel_size - 1) // 2,
                      groups=hidden_features), nn.GELU())

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        # contiguous (NCHW) as the authors: the conv then runs the same kernel as theirs
        return image_to_tokens(self.depthwise_conv(tokens_to_image(x, x_size).contiguous()))


class ConvFFN(nn.Module):
    """fc1 -> GELU -> (+ depthwise conv branch) -> fc2."""

    def __init__(self, in_features: int, hidden_features: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.dwconv = dwconv(hidden_features, kernel_size)
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        x = self.act(self.fc1(x))
        return self.fc2(x + self.dwconv(x, x_size))


class WindowAttention(nn.Module):
    """Swin's window attention on an already projected ``qkv`` (B * windows, N, 3C): only the
    bias table and the output projection are its own (the layer's ``wqkv`` feeds all three
    attentions); the relative-position index is the network's ``relative_position_index_SA``."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads)**-0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1)**2, num_heads))
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, qkv: torch.Tensor, rpi: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        b_, n, c3 = qkv.shape
        c = c3 // 3
        q, k, v = qkv.reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[rpi.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b_, n, c)
        return self.proj(x)


class ATD_CA(nn.Module):  # noqa: N801 (the authors' name)
    """Token-dictionary cross-attention: image tokens (queries, reduced to ``reducted_dim``)
    attend to the M dictionary tokens with cosine similarity and a learned per-token
    temperature ``1 + clamp(scale, 0, 1) * log M``. Returns the output and the (B, N, M)
    similarity map that categorises the tokens."""

    def __init__(self, dim: int, num_tokens: int = 64, reducted_dim: int = 10,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.wq = nn.Linear(dim, reducted_dim, bias=qkv_bias)
        self.wk = nn.Linear(dim, reducted_dim, bias=qkv_bias)
        self.wv = nn.Linear(dim, dim, bias=qkv_bias)
        self.scale = nn.Parameter(torch.ones(num_tokens) * 0.5)

    def forward(self, x: torch.Tensor, td: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = self.wq(x), self.wk(td), self.wv(td)
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * (1 + torch.clamp(self.scale, 0, 1) * math.log(self.num_tokens))
        attn = attn.softmax(dim=-1)
        return attn @ v, attn


class AC_MSA(nn.Module):  # noqa: N801 (the authors' name)
    """Adaptive category-based attention: tokens sorted by their most similar dictionary token,
    cut into groups of ``category_size`` (the last group filled up with the mirrored tail of the
    sorted sequence), multi-head attention inside each group with a learned temperature, then
    put back in place. Groups span the whole image."""

    def __init__(self, dim: int, num_heads: int = 4, category_size: int = 128,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads, self.category_size = num_heads, category_size
        self.proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones((1, 1))))

    def forward(self, qkv: torch.Tensor, sim: torch.Tensor) -> torch.Tensor:
        b, n, c3 = qkv.shape
        c = c3 // 3
        gs = min(n, self.category_size)
        ng = -(-n // gs)
        order = category_order(sim.argmax(dim=-1))
        shuffled = gather_tokens(qkv, order)
        pad_n = ng * gs - n
        padded = torch.cat((shuffled, shuffled[:, n - pad_n:n].flip(1)), dim=1)
        q, k, v = padded.reshape(b, ng, gs, 3, self.num_heads,
                                 c // self.num_heads).permute(3, 0, 1, 4, 2, 5)
        attn = q @ k.transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=_MAX_LOGIT_SCALE).exp()
        y = (attn.softmax(dim=-1) @ v).permute(0, 1, 3, 2, 4).reshape(b, n + pad_n, c)[:, :n]
        return self.proj(gather_tokens(y, inverse_permutation(order)))


class ATDTransformerLayer(nn.Module):
    """x + SW-MSA + ATD-CA + AC-MSA, then x + ConvFFN; all but a group's last layer refine the
    dictionary: ``td = s td + (1 - s) softmax(InstanceNorm(sim^T)) x`` with ``s = sigmoid(sigma)``
    per dictionary token."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int,
                 category_size: int, num_tokens: int, reducted_dim: int,
                 convffn_kernel_size: int, mlp_ratio: float, qkv_bias: bool = True,
                 is_last: bool = False) -> None:
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        # the refinement's norm and mixing weights (None in a group's last layer)
        self.norm3 = None if is_last else nn.InstanceNorm1d(num_tokens, affine=True)
        self.sigma = None if is_last else nn.Parameter(torch.zeros([num_tokens, 1]))
        self.wqkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_win = WindowAttention(dim, window_size, num_heads)
        self.attn_atd = ATD_CA(dim, num_tokens, reducted_dim, qkv_bias)
        self.attn_aca = AC_MSA(dim, num_heads, category_size, qkv_bias)
        self.convffn = ConvFFN(dim, int(dim * mlp_ratio), convffn_kernel_size)

    def forward(self, x: torch.Tensor, td: torch.Tensor, x_size: tuple[int, int],
                attn_mask: torch.Tensor, rpi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (h, w), (b, n, c) = x_size, x.shape
        ws, shift = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x)
        qkv = self.wqkv(x)
        x_atd, sim = self.attn_atd(x, td)
        x_aca = self.attn_aca(qkv, sim)
        qkv = qkv.reshape(b, h, w, 3 * c)
        if shift:
            qkv = torch.roll(qkv, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(qkv, ws).view(-1, ws * ws, 3 * c)
        y = self.attn_win(windows, rpi, attn_mask if shift else None)
        y = window_reverse(y.view(-1, ws, ws, c), ws, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = shortcut + y.reshape(b, n, c) + x_atd + x_aca
        x = x + self.convffn(self.norm2(x), x_size)
        if self.sigma is not None:  # adaptive token refinement
            weights = self.norm3(sim.transpose(-1, -2)).softmax(dim=-1)
            s = torch.sigmoid(self.sigma)
            td = s * td + (1 - s) * torch.einsum('btn,bnc->btc', weights, x)
        return x, td


class BasicBlock(nn.Module):
    """``depth`` ATD layers (shift 0 and window_size // 2 alternating) sharing one learned token
    dictionary ``td`` that each layer refines. ``use_checkpoint``: each layer recomputed in
    backward (the authors checkpoint the layers of the first four groups only; every group
    here)."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int,
                 category_size: int, num_tokens: int, reducted_dim: int,
                 convffn_kernel_size: int, mlp_ratio: float, qkv_bias: bool = True,
                 use_checkpoint: bool = False) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.layers = nn.ModuleList([
            ATDTransformerLayer(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                                category_size, num_tokens, reducted_dim, convffn_kernel_size,
                                mlp_ratio, qkv_bias, is_last=i == depth - 1)
            for i in range(depth)])
        self.td = nn.Parameter(torch.randn([num_tokens, dim]))

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], attn_mask: torch.Tensor,
                rpi: torch.Tensor) -> torch.Tensor:
        td = self.td.repeat([x.shape[0], 1, 1])
        for layer in self.layers:
            x, td = run_checkpointed(layer, x, td, x_size, attn_mask, rpi,
                                     enabled=self.use_checkpoint)
        return x


class ATDB(nn.Module):
    """Residual adaptive-token-dictionary block: the layers, a conv, plus the input."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int,
                 category_size: int, num_tokens: int, reducted_dim: int,
                 convffn_kernel_size: int, mlp_ratio: float, qkv_bias: bool = True,
                 resi_connection: str = '1conv', use_checkpoint: bool = False) -> None:
        super().__init__()
        self.residual_group = BasicBlock(dim, depth, num_heads, window_size, category_size,
                                         num_tokens, reducted_dim, convffn_kernel_size,
                                         mlp_ratio, qkv_bias, use_checkpoint)
        self.conv = residual_conv(dim, resi_connection)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], attn_mask: torch.Tensor,
                rpi: torch.Tensor) -> torch.Tensor:
        y = self.residual_group(x, x_size, attn_mask, rpi)
        return image_to_tokens(self.conv(tokens_to_image(y, x_size))) + x
