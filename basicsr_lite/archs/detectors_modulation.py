"""Detectors (``detect(state) -> options | None``, see archs/detection.py) for the networks with
feature modulation / parameter-free attention (the SAFMN family, SPAN) and for the
spectral-norm PatchGAN discriminators.

The SAFMN family shares ``to_feat`` / ``feats.N`` / ``to_img``; each member has block keys no
other member has (``norm1``, the GRN ``norm``, ``conv1.proj`` with ``conv2.conv1`` or
``conv2.conv.0``, ``conv1.conv3``), so at most one detector answers. Our code, written from our
arch files' key layouts.
"""
from __future__ import annotations

import re

import torch

from basicsr_lite.archs.detectors import seq_len
from basicsr_lite.archs.detectors_distill import scale_of

State = dict[str, torch.Tensor]


def hidden_ratio(hidden: int, dim: int) -> float:
    """A ``ffn_scale`` with ``int(dim * ffn_scale) == hidden`` (the authors' truncation)."""
    for ratio in (round(hidden / dim, 4), hidden / dim, (hidden + 0.5) / dim):
        if int(dim * ratio) == hidden:
            return ratio
    raise ValueError(f'no ratio gives {hidden} hidden channels from {dim}')


def _safmn_common(state: State, block_key: str, hidden_key: str) -> dict | None:
    """dim, block count, ffn_scale and scale of a family member whose block 0 has
    ``block_key``; ``hidden_key``: the first conv of its channel mixer."""
    if f'feats.0.{block_key}' not in state or 'to_img.0.weight' not in state:
        return None
    dim = state['to_feat.weight'].shape[0]
    return {'dim': dim, 'n_blocks': seq_len(state, 'feats'),
            'ffn_scale': hidden_ratio(state[f'feats.0.{hidden_key}'].shape[0], dim),
            'upscaling_factor': scale_of(state['to_img.0.weight'].shape[0], 3)}


def _safmn(state: State) -> dict | None:
    found = _safmn_common(state, 'norm1.weight', 'ccm.ccm.0.weight')
    return None if found is None else {'type': 'SAFMN', **found}


def _safmn_ntire23(state: State) -> dict | None:
    if 'norm.gamma' not in state:
        return None
    found = _safmn_common(state, 'safm.mfr.0.weight', 'ccm.ccm.0.weight')
    return None if found is None else {'type': 'SAFMN_NTIRE23', **found}


def _safmnpp(state: State) -> dict | None:
    if 'feats.0.conv2.conv1.weight' not in state:
        return None
    found = _safmn_common(state, 'conv1.proj.weight', 'conv2.conv1.weight')
    return None if found is None else {'type': 'SAFMNPP', **found}


def _safmn_vis24(state: State) -> dict | None:
    found = _safmn_common(state, 'conv1.proj.weight', 'conv2.conv.0.weight')
    return None if found is None else {'type': 'SAFMN_VIS24', **found}


def _safmn_ntire25(state: State) -> dict | None:
    found = _safmn_common(state, 'conv1.conv3.weight', 'conv2.conv1.weight')
    if found is None:
        return None
    found['num_blocks'] = found.pop('n_blocks')  # the authors' name in this one
    return {'type': 'SAFMN_NTIRE25', **found}


def _span(state: State) -> dict | None:
    """Either form: trained (``sk`` / ``conv.*`` beside ``eval_conv``) or deploy (``eval_conv``
    only, as the NTIRE files): ``deploy`` says which. ``cat_channels`` only when it is not
    ``feature_channels`` (None, the official topology, builds that)."""
    if 'conv_cat.weight' not in state or 'block_1.c1_r.eval_conv.weight' not in state:
        return None
    first = state['conv_1.eval_conv.weight']
    feature_channels, in_ch = first.shape[:2]
    options = {'type': 'SPAN', 'num_in_ch': in_ch, 'num_out_ch': in_ch,
               'feature_channels': feature_channels,
               'upscale': scale_of(state['upsampler.0.weight'].shape[0], in_ch),
               'deploy': not any(re.search(r'\.sk\.weight$', k) for k in state)}
    cat_channels = state['conv_cat.weight'].shape[0]
    if cat_channels != feature_channels:
        options['cat_channels'] = cat_channels
    return options


def _patchgan_convs(state: State, prefix: str) -> dict:
    convs = sorted(int(m.group(1)) for k in state
                   if (m := re.fullmatch(re.escape(prefix) + r'\.(\d+)\.weight_orig', k)))
    first = state[f'{prefix}.{convs[0]}.weight_orig']
    return {'input_nc': first.shape[1], 'ndf': first.shape[0], 'n_layers': len(convs) - 2}


def _patchgan(state: State) -> dict | None:
    if 'model.0.weight_orig' not in state:
        return None
    return {'type': 'PatchGANDiscriminatorSN', **_patchgan_convs(state, 'model')}


def _multiscale_patchgan(state: State) -> dict | None:
    if 'layers.0.0.weight_orig' not in state:
        return None
    return {'type': 'MultiscalePatchGANDiscriminatorSN', **_patchgan_convs(state, 'layers.0'),
            'num_d': seq_len(state, 'layers')}


MODULATION_DETECTORS = {
    'MultiscalePatchGANDiscriminatorSN': _multiscale_patchgan,
    'PatchGANDiscriminatorSN': _patchgan,
    'SAFMN': _safmn,
    'SAFMNPP': _safmnpp,
    'SAFMN_NTIRE23': _safmn_ntire23,
    'SAFMN_NTIRE25': _safmn_ntire25,
    'SAFMN_VIS24': _safmn_vis24,
    'SPAN': _span,
}
