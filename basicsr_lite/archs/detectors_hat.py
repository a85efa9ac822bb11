"""Detectors (``detect(state) -> options | None``, see archs/detection.py) for HAT and DRCT, read
from our key layouts (the authors'), in the spirit of spandrel's HAT / DRCT loaders.

HAT is told by its network-level ``relative_position_index_SA`` and the OCAB keys, DRCT by its
``swin1`` / ``adjust5`` keys. What the weights cannot show stays at the constructor default:
HAT's ``img_size`` (nothing stored depends on it unless ``ape``), DRCT's ``depths`` (each group
has five blocks whatever the value; the published 6 per group is returned), ``conv_scale``,
``qk_scale``, ``img_range`` and the drop rates (detection.UNDETECTABLE).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from basicsr_lite.archs.detectors import _upsample_scale, seq_len
from basicsr_lite.archs.detectors_modulation import hidden_ratio

State = dict[str, torch.Tensor]


def _divisor(dim: int, reduced: int) -> int:
    """The ratio ``r`` of ``dim // r == reduced`` (CAB's compress_ratio, squeeze_factor); of
    several, the largest (HAT-S: 144 // 24 == 6)."""
    ratio = dim // reduced
    if ratio < 1 or dim // ratio != reduced:
        raise ValueError(f'no integer ratio gives {reduced} channels from {dim}')
    return ratio


def _shell(state: State, embed_dim: int) -> dict:
    """Arguments of the shared shell (hat_blocks.HybridSRShell) and the image size if ``ape``."""
    options = {'in_chans': state['conv_first.weight'].shape[1], 'embed_dim': embed_dim,
               'ape': 'absolute_pos_embed' in state,
               'patch_norm': 'patch_embed.norm.weight' in state,
               'resi_connection': '1conv' if 'conv_after_body.weight' in state else 'identity',
               'upsampler': 'pixelshuffle',
               'upscale': _upsample_scale(state, 'upsample',
                                          state['conv_before_upsample.0.weight'].shape[0])}
    if options['ape']:  # the absolute position embedding has img_size^2 rows
        options['img_size'] = math.isqrt(state['absolute_pos_embed'].shape[1])
    return options


def _hat(state: State) -> dict | None:
    oca = 'layers.0.residual_group.overlap_attn.relative_position_bias_table'
    if 'relative_position_index_SA' not in state or oca not in state:
        return None
    embed_dim = state['conv_first.weight'].shape[0]
    layers = seq_len(state, 'layers')
    window = math.isqrt(state['relative_position_index_SA'].shape[0])
    overlap = math.isqrt(state['relative_position_index_OCA'].shape[1])
    block = 'layers.0.residual_group.blocks.0'
    return {'type': 'HAT', **_shell(state, embed_dim),
            'depths': [seq_len(state, f'layers.{i}.residual_group.blocks') for i in range(layers)],
            'num_heads': [state[f'layers.{i}.residual_group.overlap_attn.'
                                f'relative_position_bias_table'].shape[1] for i in range(layers)],
            'window_size': window,
            'overlap_ratio': hidden_ratio(overlap - window, window),
            'compress_ratio': _divisor(embed_dim,
                                       state[f'{block}.conv_block.cab.0.weight'].shape[0]),
            'squeeze_factor': _divisor(
                embed_dim, state[f'{block}.conv_block.cab.3.attention.1.weight'].shape[0]),
            'mlp_ratio': hidden_ratio(state[f'{block}.mlp.fc1.weight'].shape[0], embed_dim),
            'qkv_bias': f'{block}.attn.qkv.bias' in state}


def _drct(state: State) -> dict | None:
    table = 'layers.0.swin1.attn.relative_position_bias_table'
    if table not in state or 'layers.0.adjust5.weight' not in state:
        return None
    embed_dim = state['conv_first.weight'].shape[0]
    layers = seq_len(state, 'layers')
    window = (math.isqrt(state[table].shape[0]) + 1) // 2
    options = {'type': 'DRCT', **_shell(state, embed_dim), 'depths': [6] * layers,
               'num_heads': [state[f'layers.{i}.swin1.attn.relative_position_bias_table'].shape[1]
                             for i in range(layers)],
               'window_size': window,
               'mlp_ratio': hidden_ratio(state['layers.0.swin1.mlp.fc1.weight'].shape[0],
                                         embed_dim),
               'qkv_bias': 'layers.0.swin1.attn.qkv.bias' in state,
               'gc': state['layers.0.adjust1.weight'].shape[0]}
    mask = state.get('layers.0.swin2.attn_mask')
    if 'img_size' not in options:  # the shift masks are stored for the training patch
        # no mask: no block shifts, so the patch was not larger than one window
        options['img_size'] = window if mask is None else math.isqrt(mask.shape[0]) * window
    return options


HAT_DETECTORS: dict[str, Callable[[State], dict | None]] = {'DRCT': _drct, 'HAT': _hat}
