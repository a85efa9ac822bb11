"""Detector (``detect(state) -> options | None``, see archs/detection.py) for ATD
(atd_arch.py): the constructor arguments from the authors' key layout. Our code; spandrel's
ATD loader reads the same shapes.

``category_size`` (tokens per AC-MSA group) leaves no trace in the weights: it is taken as the
published value of the variant, 128 for ATD-light (48 channels, one-step pixel shuffle) and 256
otherwise (the authors' option files), as spandrel does.
"""
from __future__ import annotations

import math

from basicsr_lite.archs.detectors import State, seq_len, sr_shell_tail

_LAYER = 'layers.{}.residual_group.layers.0.'


def _atd(state: State) -> dict | None:
    first = _LAYER.format(0)
    if f'{first}attn_atd.scale' not in state or 'relative_position_index_SA' not in state:
        return None
    embed_dim, in_chans = state['conv_first.weight'].shape[:2]
    groups = seq_len(state, 'layers')
    options = {
        'type': 'ATD', 'in_chans': in_chans, 'embed_dim': embed_dim,
        'depths': [seq_len(state, f'layers.{i}.residual_group.layers') for i in range(groups)],
        'num_heads': [state[_LAYER.format(i) + 'attn_win.relative_position_bias_table'].shape[1]
                      for i in range(groups)],
        'window_size': math.isqrt(state['relative_position_index_SA'].shape[0]),
        'num_tokens': state['layers.0.residual_group.td'].shape[0],
        'reducted_dim': state[f'{first}attn_atd.wq.weight'].shape[0],
        'convffn_kernel_size': state[f'{first}convffn.dwconv.depthwise_conv.0.weight'].shape[2],
        'mlp_ratio': state[f'{first}convffn.fc1.weight'].shape[0] / embed_dim,
        'qkv_bias': f'{first}wqkv.bias' in state,
        'ape': 'absolute_pos_embed' in state,
        'patch_norm': 'patch_embed.norm.weight' in state,
        'resi_connection': '1conv' if 'layers.0.conv.weight' in state else '3conv'}
    if options['ape']:  # the absolute position embedding has img_size^2 rows
        options['img_size'] = math.isqrt(state['absolute_pos_embed'].shape[1])
    options.update(sr_shell_tail(state, in_chans))
    light = options['upsampler'] == 'pixelshuffledirect' and embed_dim == 48
    options['category_size'] = 128 if light else 256
    return options


ATD_DETECTORS = {'ATD': _atd}
