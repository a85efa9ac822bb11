"""Detectors (``detect(state) -> options | None``, see archs/detection.py) for DAT and RGT, from
our dat_arch.py / rgt_arch.py key layouts (the authors' keys). Our code, in the spirit of
spandrel's DAT / RGT loaders.

DAT blocks have ``ffn``, RGT blocks ``mlp`` and ``gamma``, so at most one of the two answers.
``split_size`` is read from the values of the stored ``rpe_biases`` buffer (its last row is the
largest offset, split - 1), ``img_size`` from the size of a stored shifted-window mask (DAT;
RGT stores 64 x 64 masks whatever its ``img_size``).
"""
from __future__ import annotations

import math
import re

import torch

from basicsr_lite.archs.detectors import seq_len, shuffle_scale
from basicsr_lite.archs.detectors_modulation import hidden_ratio

State = dict[str, torch.Tensor]

_MASK = re.compile(r'layers\.\d+\.blocks\.\d+\.attn\.attn_mask_0')


def _common(state: State) -> dict:
    """The arguments both share: channels, groups, windows, qkv bias, residual conv."""
    embed_dim, in_chans = state['conv_first.weight'].shape[:2]
    groups = seq_len(state, 'layers')
    last = state['layers.0.blocks.0.attn.attns.0.rpe_biases'][-1]
    return {'in_chans': in_chans, 'embed_dim': embed_dim,
            'depth': [seq_len(state, f'layers.{i}.blocks') for i in range(groups)],
            'split_size': [int(last[0]) + 1, int(last[1]) + 1],
            'qkv_bias': 'layers.0.blocks.0.attn.qkv.bias' in state,
            'resi_connection': '1conv' if 'conv_after_body.weight' in state else '3conv'}


def _branch_heads(state: State, group: int) -> int:
    """Heads of one window branch of the group's first block (half the block's heads)."""
    return state[f'layers.{group}.blocks.0.attn.attns.0.pos.pos3.2.weight'].shape[0]


def _pixelshuffle_scale(state: State) -> int:
    """BasicSR's Upsample after ``conv_before_upsample``: none (x1), n convs to 4 * num_feat
    (2^n) or one to 9 * num_feat (x3)."""
    num_feat = state['conv_before_upsample.0.weight'].shape[0]
    convs = [k for k in state if re.fullmatch(r'upsample\.\d+\.weight', k)]
    if not convs:
        return 1
    return 3 if state['upsample.0.weight'].shape[0] == 9 * num_feat else 2 ** len(convs)


def _dat(state: State) -> dict | None:
    if 'layers.0.blocks.0.ffn.sg.conv.weight' not in state or \
            'layers.0.blocks.0.attn.attns.0.rpe_biases' not in state:
        return None
    options = {'type': 'DAT', **_common(state)}
    options['num_heads'] = [  # a channel block (the second) stores one temperature per head
        state[f'layers.{i}.blocks.1.attn.temperature'].shape[0] if d > 1
        else 2 * _branch_heads(state, i) for i, d in enumerate(options['depth'])]
    options['expansion_factor'] = hidden_ratio(
        state['layers.0.blocks.0.ffn.fc1.weight'].shape[0], options['embed_dim'])
    mask = next((v for k, v in state.items() if _MASK.fullmatch(k)), None)
    if mask is not None:  # (windows, N, N) with windows * N = img_size^2
        options['img_size'] = math.isqrt(mask.shape[0] * mask.shape[1])
    if 'conv_before_upsample.0.weight' in state:
        options.update(upsampler='pixelshuffle', upscale=_pixelshuffle_scale(state))
    else:
        options.update(upsampler='pixelshuffledirect',
                       upscale=shuffle_scale(state['upsample.0.weight'].shape[0],
                                             options['in_chans']))
    return options


def _rgt(state: State) -> dict | None:
    if 'layers.0.blocks.0.gamma' not in state or \
            'layers.0.blocks.0.mlp.sg.conv.weight' not in state:
        return None
    options = {'type': 'RGT', **_common(state)}
    dim = options['embed_dim']
    # RG-SA keeps no per-head tensor: twice the window branch's heads, plus one if that does
    # not divide the width (as spandrel reads it)
    options['num_heads'] = [2 * h if dim % (2 * h) == 0 else 2 * h + 1
                            for h in (_branch_heads(state, i)
                                      for i in range(len(options['depth'])))]
    options['mlp_ratio'] = hidden_ratio(state['layers.0.blocks.0.mlp.fc1.weight'].shape[0], dim)
    second = next((f'layers.{i}.blocks.1.attn.conv.weight'
                   for i, d in enumerate(options['depth']) if d > 1), None)
    if second is not None:  # RG-SA's 1x1 conv to int(dim * c_ratio) channels
        options['c_ratio'] = hidden_ratio(state[second].shape[0], dim)
    options['upscale'] = _pixelshuffle_scale(state)
    return options


DAT_DETECTORS = {'DAT': _dat, 'RGT': _rgt}
