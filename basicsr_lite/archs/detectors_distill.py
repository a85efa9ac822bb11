"""Detectors (``detect(state) -> options | None``, see archs/detection.py) for the distillation
networks on RFDN's skeleton: BSRN, BSRN-S, LKDN, and bytedance's RLFN family.

Each one first checks a key only its architecture has, then reads channel counts from weight
shapes, block counts from the ``B<i>`` / ``block_<i>`` names and the scale from the upsampler's
output channels. Our code, written from our arch files' key layouts.
"""
from __future__ import annotations

import math
import re

import torch

State = dict[str, torch.Tensor]


def numbered_blocks(state: State, prefix: str) -> int:
    """How many of ``<prefix>1``, ``<prefix>2``, ... have keys (``B1.`` / ``block_1.``)."""
    pattern = re.compile(re.escape(prefix) + r'(\d+)\.')
    return len({m.group(1) for k in state if (m := pattern.match(k))})


def image_channels(up_channels: int, *divisible: int) -> int:
    """The image channels of a network whose tail makes ``up_channels = c * scale^2`` and whose
    other inputs are multiples of ``c``: 3 (RGB) where it fits, else 1."""
    for c in (3, 1):
        square = up_channels // c
        if up_channels % c == 0 and math.isqrt(square) ** 2 == square and \
                all(d % c == 0 for d in divisible):
            return c
    raise ValueError(f'{up_channels} upsampler channels: no image channel count fits')


def scale_of(up_channels: int, channels: int) -> int:
    scale = math.isqrt(up_channels // channels)
    if scale * scale * channels != up_channels:
        raise ValueError(f'{up_channels} channels are not {channels} * scale^2')
    return scale


def _bsconvs_p(mids: list[tuple[int, int]]) -> float:
    """A BSConvS ``p`` that gives every (in, mid) pair: the default 0.25 when it fits, else
    the first mid / in that fits them all (the weights show p only up to that interval)."""
    def fits(p: float) -> bool:
        return all(mid == min(c_in, max(4, math.ceil(p * c_in))) for c_in, mid in mids)
    for p in (0.25, *sorted({round(mid / c_in, 6) for c_in, mid in mids})):
        if fits(p):
            return p
    raise ValueError(f'no BSConvS p gives the mid channels {mids}')


def _bsrn_conv(state: State, num_feat: int) -> dict:
    """BSRN's ``conv``: nn.Conv2d has plain weights; BSConvS two pointwise steps; BSConvU and
    DepthWiseConv share key names and differ in the depthwise step's width on ``c4``
    (num_feat -> num_feat / 2): BSConvU filters the output, DepthWiseConv the input."""
    if 'B1.c1_r.weight' in state:
        return {'conv': 'Conv2d'}
    if 'B1.c1_r.pw1.weight' in state:
        mids = [(state[f'{name}.pw1.weight'].shape[1], state[f'{name}.pw1.weight'].shape[0])
                for name in ('fea_conv', 'B1.c1_r', 'B1.c4', 'c2')]
        return {'conv': 'BSConvS', 'p': _bsconvs_p(mids)}
    depthwise = state['B1.c4.dw.weight'].shape[0]
    return {'conv': 'BSConvU' if depthwise == num_feat // 2 else 'DepthWiseConv'}


def _bsrn(state: State) -> dict | None:
    if 'B1.cca.conv_du.0.weight' not in state or \
            'upsampler.upsampleOneStep.0.weight' not in state:
        return None
    num_feat = state['c1.weight'].shape[0]
    conv = _bsrn_conv(state, num_feat)
    first = {'Conv2d': 'fea_conv.weight', 'BSConvS': 'fea_conv.pw1.weight'}.get(
        conv['conv'], 'fea_conv.pw.weight')  # the 1x1 step of both BSConvU and DepthWiseConv
    in_ch = state[first].shape[1] // 4  # the input is stacked 4 times
    up = state['upsampler.upsampleOneStep.0.weight'].shape[0]
    out_ch = image_channels(up)
    return {'type': 'BSRN', 'num_in_ch': in_ch, 'num_feat': num_feat,
            'num_block': numbered_blocks(state, 'B'), 'num_out_ch': out_ch,
            'upscale': scale_of(up, out_ch), **conv}


def _bsrn_s(state: State) -> dict | None:
    """BSRN-S, registered twice (``BSRN_S`` and the authors' ``RFDNFINALB5``, one class):
    detected as ``BSRN_S`` always."""
    if 'B1.cw' not in state or 'upsampler.upsampleOneStep.0.weight' not in state:
        return None
    up = state['upsampler.upsampleOneStep.0.weight'].shape[0]
    out_ch = image_channels(up)
    return {'type': 'BSRN_S', 'num_in_ch': state['fea_conv.pw.weight'].shape[1] // 4,
            'num_feat': state['c1.weight'].shape[0], 'num_block': numbered_blocks(state, 'B'),
            'num_out_ch': out_ch, 'upscale': scale_of(up, out_ch)}


def _lkdn(state: State) -> dict | None:
    if 'B1.atten.depthwise_dilated.weight' not in state or 'fea_conv.pw.weight' not in state:
        return None
    if 'upsampler.conv3x3.weight' in state:
        upsampler, up = 'pixelshuffle_rep', state['upsampler.conv3.weight'].shape[0]
    else:
        upsampler, up = 'pixelshuffledirect', state['upsampler.0.weight'].shape[0]
    stacked = state['fea_conv.pw.weight'].shape[1]  # num_in_ch * num_in
    channels = image_channels(up, stacked)
    return {'type': 'LKDN', 'num_in_ch': channels, 'num_out_ch': channels,
            'num_feat': state['c1.weight'].shape[0],
            'num_atten': state['B1.c5.weight'].shape[0],
            'num_block': numbered_blocks(state, 'B'), 'upscale': scale_of(up, channels),
            'num_in': stacked // channels,
            'conv': 'BSConvU_rep' if 'B1.c1_r.rep1x1.weight' in state else 'BSConvU',
            'upsampler': upsampler}


RLFN_S_WIDTH = 48  # RLFN and RLFN_S are one network; this width (RLFN-S's) reads as RLFN_S


def _rlfn_common(state: State) -> dict | None:
    if 'block_1.esa.conv_f.weight' not in state or 'block_1.c1_r.weight' not in state:
        return None
    in_ch = state['conv_1.weight'].shape[1]
    return {'in_channels': in_ch, 'out_channels': in_ch,
            'feature_channels': state['conv_1.weight'].shape[0],
            'upscale': scale_of(state['upsampler.0.weight'].shape[0], in_ch),
            'blocks': numbered_blocks(state, 'block_'),
            'mid': state['block_1.c1_r.weight'].shape[0]}


def _rlfn_six(name: str):
    """RLFN and RLFN_S: six blocks of one width. Their layouts are identical (only the default
    width differs), so the width decides: 48 is RLFN_S, any other RLFN."""
    def detect(state: State) -> dict | None:
        found = _rlfn_common(state)
        if found is None or found.pop('blocks') != 6 or found.pop('mid') != \
                found['feature_channels']:
            return None
        is_s = found['feature_channels'] == RLFN_S_WIDTH
        return {'type': name, **found} if is_s == (name == 'RLFN_S') else None
    return detect


def _rlfn_prune(state: State) -> dict | None:
    found = _rlfn_common(state)
    if found is None or found.pop('blocks') != 4:
        return None
    mid = found.pop('mid')
    return {'type': 'RLFN_Prune', **found, 'mid_channels': mid}


DISTILL_DETECTORS = {
    'BSRN': _bsrn,
    'BSRN_S': _bsrn_s,
    'LKDN': _lkdn,
    'RLFN': _rlfn_six('RLFN'),
    'RLFN_Prune': _rlfn_prune,
    'RLFN_S': _rlfn_six('RLFN_S'),
}
