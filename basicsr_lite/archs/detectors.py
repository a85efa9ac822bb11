"""The per-architecture detectors of ``archs/detection.py``: ``detect(state) -> options | None``
from key names and tensor shapes (in the spirit of spandrel's loaders: our own code, for our
key layouts). A detector returns None for weights that are not its architecture."""
from __future__ import annotations

import math
import re
from typing import Callable

import torch

from basicsr_lite.archs.rcan_arch import RCAN

State = dict[str, torch.Tensor]


def seq_len(state: State, prefix: str) -> int:
    """1 + the highest N of keys ``<prefix>.N.*`` (0 when there is none)."""
    pattern = re.compile(re.escape(prefix) + r'\.(\d+)\.')
    found = [int(m.group(1)) for k in state if (m := pattern.match(k))]
    return max(found) + 1 if found else 0


def shuffle_scale(out_channels: int, image_channels: int) -> int:
    """The pixel-shuffle factor of a conv with ``out_channels`` before the shuffle."""
    return math.isqrt(out_channels // image_channels)


def _upsample_scale(state: State, prefix: str, num_feat: int) -> int:
    """BasicSR's ``Upsample``: one conv to 9 * num_feat (x3) or n convs to 4 * num_feat (2^n)."""
    if state[f'{prefix}.0.weight'].shape[0] == 9 * num_feat:
        return 3
    return 2 ** sum(1 for k in state if re.fullmatch(re.escape(prefix) + r'\.\d+\.weight', k))


def _edsr(state: State) -> dict | None:
    if not {'conv_first.weight', 'body.0.conv1.weight', 'conv_after_body.weight',
            'upsample.0.weight', 'conv_last.weight'} <= set(state):
        return None
    nf = state['conv_first.weight'].shape[0]
    return {'type': 'EDSR', 'num_in_ch': state['conv_first.weight'].shape[1],
            'num_out_ch': state['conv_last.weight'].shape[0], 'num_feat': nf,
            'num_block': seq_len(state, 'body'), 'upscale': _upsample_scale(state, 'upsample', nf)}


def _rcan(state: State) -> dict | None:
    options = {}
    if 'sub_mean.bias' in state and 'head.0.weight' in state:  # the authors' layout
        scale = state['sub_mean.weight'][0, 0, 0, 0].item() * 255.0
        options = {'img_range': round(scale, 4),
                   'rgb_mean': [round(v, 6) for v in (-state['sub_mean.bias'] / scale).tolist()]}
    state = RCAN.adapt_state_dict(state)
    if 'body.0.residual_group.0.rcab.0.weight' not in state:
        return None
    nf = state['conv_first.weight'].shape[0]
    return {'type': 'RCAN', 'num_in_ch': state['conv_first.weight'].shape[1],
            'num_out_ch': state['conv_last.weight'].shape[0], 'num_feat': nf,
            'num_group': seq_len(state, 'body'),
            'num_block': seq_len(state, 'body.0.residual_group'),
            'squeeze_factor': nf // state['body.0.residual_group.0.rcab.3.attention.1.weight'].shape[0],
            'upscale': _upsample_scale(state, 'upsample', nf), **options}


def _msrresnet(state: State) -> dict | None:
    if 'upconv1.weight' not in state or 'body.0.conv1.weight' not in state:
        return None
    nf = state['conv_first.weight'].shape[0]
    upscale = 4 if 'upconv2.weight' in state else (
        3 if state['upconv1.weight'].shape[0] == 9 * nf else 2)
    return {'type': 'MSRResNet', 'num_in_ch': state['conv_first.weight'].shape[1],
            'num_out_ch': state['conv_last.weight'].shape[0], 'num_feat': nf,
            'num_block': seq_len(state, 'body'), 'upscale': upscale}


def _rrdbnet(state: State) -> dict | None:
    if 'body.0.rdb1.conv1.weight' not in state:
        return None
    first, out_ch = state['conv_first.weight'], state['conv_last.weight'].shape[0]
    scale = {16 * out_ch: 1, 4 * out_ch: 2}.get(first.shape[1], 4)  # pixel-unshuffled inputs
    return {'type': 'RRDBNet', 'num_in_ch': first.shape[1] // {1: 16, 2: 4, 4: 1}[scale],
            'num_out_ch': out_ch, 'scale': scale, 'num_feat': first.shape[0],
            'num_block': seq_len(state, 'body'),
            'num_grow_ch': state['body.0.rdb1.conv1.weight'].shape[0]}


def _srvgg(state: State) -> dict | None:
    if 'body.0.weight' not in state or state['body.0.weight'].dim() != 4 or \
            any(not k.startswith('body.') for k in state):
        return None
    last = seq_len(state, 'body') - 1
    in_ch = state['body.0.weight'].shape[1]
    return {'type': 'SRVGGNetCompact', 'num_in_ch': in_ch, 'num_out_ch': in_ch,
            'num_feat': state['body.0.weight'].shape[0], 'num_conv': (last - 2) // 2,
            'upscale': shuffle_scale(state[f'body.{last}.weight'].shape[0], in_ch),
            'act_type': 'prelu' if 'body.1.weight' in state else 'relu'}


def _concat_fusion(name: str, block_key: str) -> Callable[[State], dict | None]:
    """IMDN / RFDN: fea_conv, blocks ``<prefix>1..N``, a pixel-shuffle tail."""
    def detect(state: State) -> dict | None:
        if block_key not in state:
            return None
        prefix = block_key.split('1.', 1)[0]
        blocks = {k.split('.', 1)[0] for k in state if re.match(re.escape(prefix) + r'\d+\.', k)}
        in_ch = state['fea_conv.weight'].shape[1]
        out_ch = in_ch  # the tail's conv holds out_ch * scale^2: the same channels assumed
        return {'type': name, 'num_in_ch': in_ch, 'num_out_ch': out_ch,
                'num_feat': state['fea_conv.weight'].shape[0], 'num_block': len(blocks),
                'upscale': shuffle_scale(state['upsampler.0.weight'].shape[0], out_ch)}
    return detect


def _pan(state: State) -> dict | None:
    if 'SCPA_trunk.0.conv1_a.weight' not in state:
        return None
    return {'type': 'PAN', 'num_in_ch': state['conv_first.weight'].shape[1],
            'num_out_ch': state['conv_last.weight'].shape[0],
            'num_feat': state['conv_first.weight'].shape[0],
            'unf': state['upconv1.weight'].shape[0], 'num_block': seq_len(state, 'SCPA_trunk'),
            'upscale': 4 if 'upconv2.weight' in state else 2}  # 2 and 3 look alike


def _fsrcnn(state: State) -> dict | None:
    if 'first_part.0.weight' not in state:
        return None
    return {'type': 'FSRCNN', 'num_in_ch': state['first_part.0.weight'].shape[1],
            'd': state['first_part.0.weight'].shape[0], 's': state['mid_part.0.weight'].shape[0],
            'm': sum(1 for k in state if re.fullmatch(r'mid_part\.\d+\.weight', k)
                     and state[k].dim() == 4) - 2}


def _omnisr(state: State) -> dict | None:
    if 'input.weight' not in state or 'up.0.weight' not in state:
        return None
    in_ch = state['input.weight'].shape[1]
    pe_key = 'residual_layer.0.residual_layer.0.layer.2.fn.rel_pos_bias.weight'
    options = {'type': 'OmniSR', 'num_in_ch': in_ch, 'num_out_ch': in_ch,
               'num_feat': state['input.weight'].shape[0], 'bias': 'input.bias' in state,
               'res_num': seq_len(state, 'residual_layer'),
               'block_num': seq_len(state, 'residual_layer.0.residual_layer') - 1,
               'upsampling': shuffle_scale(state['up.0.weight'].shape[0], in_ch),
               'pe': pe_key in state}
    if options['pe']:
        options['window_size'] = (math.isqrt(state[pe_key].shape[0]) + 1) // 2
    return options


def _plksr_common(state: State, name: str, extra_layers: int) -> dict:
    dim = state['feats.0.weight'].shape[0]
    layers = seq_len(state, 'feats')
    return {'type': name, 'dim': dim, 'n_blocks': layers - extra_layers,
            'upscaling_factor': shuffle_scale(state[f'feats.{layers - 1}.weight'].shape[0], 3),
            'use_ea': 'feats.1.attn.f.0.weight' in state}


def _plksr(state: State) -> dict | None:
    """PLKSR (its ``channe_mixer`` spelling); SparsePLK's kernels cannot be told apart."""
    if 'feats.1.channe_mixer.0.weight' not in state:
        return None
    options = _plksr_common(state, 'PLKSR', 2)
    dim = options['dim']
    k0 = state['feats.1.channe_mixer.0.weight'].shape[2]
    k2 = state['feats.1.channe_mixer.2.weight'].shape[2]
    options['ccm_type'] = {(3, 1): 'CCM', (3, 3): 'DCCM', (1, 3): 'ICCM'}[(k0, k2)]
    for lk_type, key in (('PLK', 'feats.1.lk.conv.weight'),
                         ('RectSparsePLK', 'feats.1.lk.mn_conv.weight'),
                         ('SparsePLK', 'feats.1.lk.convs.0.weight')):
        if key in state:
            options['lk_type'] = lk_type
            options['split_ratio'] = state[key].shape[0] / dim
            if lk_type != 'SparsePLK':
                options['kernel_size'] = state[key].shape[2]
            return options
    return None


def _realplksr(state: State) -> dict | None:
    if 'feats.1.channel_mixer.0.weight' not in state:
        return None
    options = _plksr_common(state, 'RealPLKSR', 3)  # + the dropout layer before the last conv
    return {**options, 'kernel_size': state['feats.1.lk.conv.weight'].shape[2],
            'split_ratio': state['feats.1.lk.conv.weight'].shape[0] / options['dim'],
            'dysample': 'to_img.init_pos' in state,
            'layer_norm': 'feats.1.layer_norm.weight' in state}


def _swinir(state: State) -> dict | None:
    key = 'layers.0.residual_group.blocks.0.attn.relative_position_bias_table'
    # SRFormer's attention has q and kv instead of qkv; HAT has SwinIR's keys and more
    if key not in state or 'conv_first.weight' not in state or \
            'layers.0.residual_group.blocks.0.attn.qkv.weight' not in state \
            or 'relative_position_index_SA' in state:
        return None
    embed_dim, in_chans = state['conv_first.weight'].shape[:2]
    layers = seq_len(state, 'layers')
    options = {'type': 'SwinIR', 'in_chans': in_chans, 'embed_dim': embed_dim,
               'depths': [seq_len(state, f'layers.{i}.residual_group.blocks')
                          for i in range(layers)],
               'num_heads': [state[f'layers.{i}.residual_group.blocks.0.attn.'
                                   f'relative_position_bias_table'].shape[1]
                             for i in range(layers)],
               'window_size': (math.isqrt(state[key].shape[0]) + 1) // 2,
               'mlp_ratio': state['layers.0.residual_group.blocks.0.mlp.fc1.weight'].shape[0]
               / embed_dim,
               'qkv_bias': 'layers.0.residual_group.blocks.0.attn.qkv.bias' in state,
               'ape': 'absolute_pos_embed' in state,
               'patch_norm': 'patch_embed.norm.weight' in state,
               'resi_connection': '1conv' if 'layers.0.conv.weight' in state else '3conv'}
    if options['ape']:  # the absolute position embedding has img_size^2 rows
        options['img_size'] = math.isqrt(state['absolute_pos_embed'].shape[1])
    options.update(sr_shell_tail(state, in_chans))
    return options


def sr_shell_tail(state: State, in_chans: int) -> dict:
    """``upsampler`` and ``upscale`` of a network with archs/sr_shell.py's reconstruction tail
    (SwinIR, SRFormer, ATD), read back from the keys it builds."""
    if 'conv_up1.weight' in state:
        return {'upsampler': 'nearest+conv', 'upscale': 4}
    if 'conv_before_upsample.0.weight' in state:
        num_feat = state['conv_before_upsample.0.weight'].shape[0]
        return {'upsampler': 'pixelshuffle',
                'upscale': _upsample_scale(state, 'upsample', num_feat)}
    if 'upsample.0.weight' in state:
        return {'upsampler': 'pixelshuffledirect',
                'upscale': shuffle_scale(state['upsample.0.weight'].shape[0], in_chans)}
    return {'upsampler': '', 'upscale': 1}


def _sftmd(state: State) -> dict | None:
    if 'sft_mid.scale_conv1.weight' not in state:
        return None
    nf = state['head.0.weight'].shape[0]
    ups = sorted(int(k.split('.')[1]) for k in state
                 if re.fullmatch(r'upsample\.\d+\.weight', k))
    scale = 1 if not ups else (2 ** len(ups) if len(ups) > 1
                               else shuffle_scale(state['upsample.0.weight'].shape[0], nf))
    return {'type': 'SFTMD', 'num_in_ch': state['head.0.weight'].shape[1],
            'num_out_ch': state['conv_last.weight'].shape[0], 'num_feat': nf,
            'num_block': seq_len(state, 'body'), 'upscale': scale,
            'num_meta': state['sft_mid.scale_conv1.weight'].shape[1] - nf,
            'sft_hidden': state['sft_mid.scale_conv1.weight'].shape[0]}


def _vgg_discriminator(state: State) -> dict | None:
    if 'conv0_0.weight' not in state or 'linear2.weight' not in state:
        return None
    return {'type': 'VGGStyleDiscriminator', 'num_in_ch': state['conv0_0.weight'].shape[1],
            'num_feat': state['conv0_0.weight'].shape[0],
            'input_size': 256 if 'conv5_0.weight' in state else 128}


def _unet_discriminator(state: State) -> dict | None:
    if 'conv0.weight' not in state or 'conv9.weight' not in state or \
            'conv1.weight_orig' not in state:
        return None
    return {'type': 'UNetDiscriminatorSN', 'num_in_ch': state['conv0.weight'].shape[1],
            'num_feat': state['conv0.weight'].shape[0]}


DETECTORS: dict[str, Callable[[State], dict | None]] = {
    'EDSR': _edsr,
    'FSRCNN': _fsrcnn,
    'IMDN': _concat_fusion('IMDN', 'IMDB1.c1.weight'),
    'MSRResNet': _msrresnet,
    'OmniSR': _omnisr,
    'PAN': _pan,
    'PLKSR': _plksr,
    'RCAN': _rcan,
    'RealPLKSR': _realplksr,
    'RFDN': _concat_fusion('RFDN', 'B1.c1_d.weight'),
    'RRDBNet': _rrdbnet,
    'SFTMD': _sftmd,
    'SRVGGNetCompact': _srvgg,
    'SwinIR': _swinir,
    'UNetDiscriminatorSN': _unet_discriminator,
    'VGGStyleDiscriminator': _vgg_discriminator,
}
