"""Detector (``detect(state) -> options | None``, see archs/detection.py) for SRFormer
(archs/srformer_arch.py), read from its key names and tensor shapes.

PSA's bias table covers the compressed window: (ws - 1)^2 rows, so ``window_size`` is
sqrt(rows) + 1. ``img_size`` shows only through the shifted blocks' ``attn_mask`` buffers
(windows of the training patch rounded up to the window): the authors' 64 or 48 when they
round up to it, else the rounded side itself (it builds the same buffers). Written from our
arch file's key layout; spandrel_extra_arches reads the same facts the same way.
"""
from __future__ import annotations

import math

import torch

from basicsr_lite.archs.detectors import seq_len, sr_shell_tail

State = dict[str, torch.Tensor]
BLOCK = 'layers.0.residual_group.blocks.0'
AUTHORS_IMG_SIZES = (64, 48)  # the authors' test (64) and classical training (48) patches


def _img_size(state: State, window_size: int) -> int | None:
    mask = state.get('layers.0.residual_group.blocks.1.attn_mask')
    if mask is not None:
        side = math.isqrt(mask.shape[0]) * window_size
    elif 'absolute_pos_embed' in state:
        side = math.isqrt(state['absolute_pos_embed'].shape[1])
    else:
        return None  # no shifted block: nothing in the weights depends on it
    for size in AUTHORS_IMG_SIZES:
        if -(-size // window_size) * window_size == side:
            return size
    return side


def _srformer(state: State) -> dict | None:
    if f'{BLOCK}.attn.aligned_relative_position_index' not in state or \
            'conv_first.weight' not in state:
        return None
    embed_dim, in_chans = state['conv_first.weight'].shape[:2]
    layers = seq_len(state, 'layers')
    table = state[f'{BLOCK}.attn.relative_position_bias_table']
    window_size = math.isqrt(table.shape[0]) + 1
    options = {'type': 'SRFormer', 'in_chans': in_chans, 'embed_dim': embed_dim,
               'depths': [seq_len(state, f'layers.{i}.residual_group.blocks')
                          for i in range(layers)],
               'num_heads': [state[f'layers.{i}.residual_group.blocks.0.attn.'
                                   f'relative_position_bias_table'].shape[1]
                             for i in range(layers)],
               'window_size': window_size,
               'mlp_ratio': state[f'{BLOCK}.mlp.fc1.weight'].shape[0] / embed_dim,
               'qkv_bias': f'{BLOCK}.attn.q.bias' in state,
               'ape': 'absolute_pos_embed' in state,
               'patch_norm': 'patch_embed.norm.weight' in state,
               'resi_connection': '1conv' if 'layers.0.conv.weight' in state else '3conv'}
    img_size = _img_size(state, window_size)
    if img_size is not None:
        options['img_size'] = img_size
    options.update(sr_shell_tail(state, in_chans))
    return options


SRFORMER_DETECTORS = {'SRFormer': _srformer}
