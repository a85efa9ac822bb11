"""The capability table: what each architecture can do, in one place.

The framework acts on it: ``train.amp: fp16`` with an fp16-unsafe network is a start-up error,
a scale the network cannot build is refused by the option check, and validation, test and
tiled inference pad inputs to ``size_multiple``. The registry-wide contract tests
(``tests/test_arch_contract.py``) check the claims that can be checked on a CPU (scales,
exact tiling, deploy form); the fp16 / bf16 facts are the ones the upscaling tools' loader
(spandrel) keeps for the same networks, where it has them.

An entry's field may be a function of the network's constructor arguments (defaults filled in),
for facts that depend on them (SwinIR's scales depend on its upsampler).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, fields, replace
from typing import Any

from basicsr_lite.archs.constraints import constructor_args
from basicsr_lite.registry import ARCH_REGISTRY

ANY_SCALE = None  # any positive integer scale (a pixel-shuffle or transposed-conv tail)
SCALES_2N_3 = (2, 3, 4, 8)  # BasicSR's Upsample: powers of two and 3


@dataclass(frozen=True)
class Capability:
    """``fp16`` / ``bf16``: autocast in that precision is safe (no overflow in trained weights);
    ``channels_last``: 'helps' / 'hurts' / 'neutral' for inference speed on CUDA, as measured
    by ``tools/benchmark_archs.py`` (filled in from ``CHANNELS_LAST_ON_CUDA``; 'unmeasured'
    for networks it does not time, e.g. discriminators); ``scales``: the upscaling factors
    it builds (``ANY_SCALE``: any integer; ``()``: not an upscaler, e.g. a discriminator);
    ``size_multiple``: input sides must be multiples of it (inference pads to it; an arch's
    ``needs()`` may raise it from its arguments);
    ``min_size``: the smallest input side; ``tiles_exactly``: tiled inference with an overlap
    covering the receptive field equals untiled inference (no image-global statistics);
    ``deploy_form``: it has a re-parameterised inference form that loads as well;
    ``checkpointing``: ``use_checkpoint`` (gradient checkpointing) is available;
    ``pads_to``: the network pads its input internally to a multiple of this (its attention
    window): other sizes run, but pay for the padding (the memory planner offers multiples);
    ``facts_from``: where the precision facts come from."""
    fp16: bool
    bf16: bool = True
    channels_last: str = 'unmeasured'
    scales: tuple[int, ...] | None = ANY_SCALE
    size_multiple: int = 1
    min_size: int = 1
    tiles_exactly: bool = False
    deploy_form: bool = False
    checkpointing: bool = False
    pads_to: int = 1
    facts_from: str = ''


def _window(args: dict) -> int:
    return args['window_size']


def _split_windows(args: dict) -> int:
    # DAT / RGT: rectangular windows split_size[0] x split_size[1], turned every other block
    return math.lcm(*args['split_size'])


def _realplksr_fp16(args: dict) -> bool:
    return bool(args['layer_norm'])  # spandrel: GroupNorm models overflow in fp16


def _realplksr_tiles(args: dict) -> bool:
    # GroupNorm pools the whole image; DySample's learned offsets are unbounded.
    return bool(args['layer_norm']) and not args['dysample']


def _swinir_scales(args: dict) -> tuple[int, ...] | None:
    return {'pixelshuffle': SCALES_2N_3, 'pixelshuffledirect': ANY_SCALE,
            'nearest+conv': (4,), '': (1,)}[args['upsampler']]


def _srformer_min_size(args: dict) -> int:
    """SRFormer reflect-pads to ``window_size``: the padding must be shorter than the side."""
    return args['window_size'] // 2 + 1
def _dat_scales(args: dict) -> tuple[int, ...] | None:
    # BasicSR's Upsample, or none at x1 (the authors' Upsample builds nothing there)
    return ANY_SCALE if args['upsampler'] == 'pixelshuffledirect' else (1, *SCALES_2N_3)


def _omnisr_min_size(args: dict) -> int:
    """OmniSR pads to ``window_size``; its ESA (stride-2 3x3 conv, 7x7 max pool) needs 15."""
    ws = args['window_size']
    return (-(-15 // ws) - 1) * ws + 1


def _bsrn_min_size(args: dict) -> int:
    # ESA: a stride-2 3x3 conv, a 7x7/3 max pool, then three 3x3 convs that pad only when
    # they are blueprint / depthwise convs (conv 'Conv2d' takes nn.Conv2d's padding 0).
    return 51 if args['conv'] == 'Conv2d' else 15


def _window_pad_min_size(args: dict) -> int:
    """HAT / DRCT pad (reflect) to ``window_size``: the padding must be shorter than the side."""
    return args['window_size'] // 2 + 1


def _patchgan_min_size(args: dict) -> int:
    """``n_layers`` halvings and two 4x4 stride-1 convs (each -1) leave >= 1 logit, so the
    coarsest scale needs 3 * 2^n_layers; each further scale (multiscale D) halves, rounding up."""
    return (3 * 2 ** args['n_layers'] - 1) * 2 ** (args.get('num_d', 1) - 1) + 1


SPANDREL = 'spandrel 0.4.2'
# Measured here (CPU autocast, released weights, Set5; spandrel 0.4.2 has neither network):
# BSRN / BSRN-S within 0.001 dB of fp32 in fp16 (peak activations < 100) and 0.03-0.08 dB in
# bf16; LKDN's pre-LayerNorm activations reach 3e10, so fp16 gives NaN (bf16: -0.04 dB).
MEASURED_HERE = 'measured here (CPU autocast, released weights, Set5)'
SRFORMER_FACTS = ('spandrel_extra_arches 0.2.0 (SRFormer: supports_half False, supports_bfloat16 '
                  'True; spandrel 0.4.2 itself lacks it)')
# spandrel 0.4.2 has no RLFN. Convs, LeakyReLU and a sigmoid gate on 0..255 values (as RFDN).
RLFN_FACTS = ('measured here: released RLFN x4 / x2 on Set5, peak activation 1.8e3, fp16 '
              'output within 1/255 of fp32; RLFN_S / RLFN_Prune judged from the same ops')
PATCHGAN_FACTS = 'judged from the ops (spectral-normed convs, no sums over positions)'
DISCRIMINATOR = dict(scales=(), tiles_exactly=False)
# The SAFMN family pools to grids that are fractions of the image (h // 8 ...), so it does not
# tile exactly. spandrel asks for multiples of 8, but any side >= the pooling factor runs, and
# padding moves the authors' Set5 numbers (by up to 0.015 dB): no multiple here, only a minimum.
SAFMN_FAMILY = dict(min_size=8, tiles_exactly=False)
# Measured here with the released weights (CPU): fp16 autocast and .half() stay within 60 dB
# of fp32 on Set5, and no activation exceeds 61 on 576x720 inputs (fp16 overflows at 65504).
SAFMN_FP16_FROM = 'measured here (released weights, CPU fp16 vs fp32)'

# tools/benchmark_archs.py --device cuda --size 128 (NVIDIA H200, torch 2.11, 2026-12-04): NCHW
# time / NHWC time of one 128x128 inference, 'helps' >= 1.10, 'hurts' <= 0.91. BSRN-S measured
# 1.02 and 1.16 in two configurations of the same network: differences under ~0.15 are noise.
CHANNELS_LAST_ON_CUDA = {
    'ArbSR': 'neutral', 'BSRN': 'hurts', 'BSRN_S': 'neutral', 'EDSR': 'helps', 'FSRCNN': 'neutral',
    'IMDN': 'helps', 'LKDN': 'hurts', 'MSRResNet': 'helps', 'OmniSR': 'neutral', 'PAN': 'neutral',
    'PLKSR': 'helps', 'RCAN': 'neutral', 'RFDN': 'neutral', 'RFDNFINALB5': 'neutral',
    'RLFN': 'neutral', 'RLFN_Prune': 'hurts', 'RLFN_S': 'neutral', 'RRDBNet': 'neutral',
    'RealPLKSR': 'neutral', 'ResNetGenerator': 'neutral', 'SAFMN': 'hurts', 'SAFMNPP': 'hurts',
    'SAFMN_NTIRE23': 'hurts', 'SAFMN_NTIRE25': 'hurts', 'SAFMN_VIS24': 'neutral',
    'SFTMD': 'neutral', 'SPAN': 'neutral', 'SRVGGNetCompact': 'helps', 'SwinIR': 'neutral',
    # transformers of part 2 (H200, 128 x 128 LQ, one run each)
    'ATD': 'neutral', 'DAT': 'neutral', 'DRCT': 'neutral', 'HAT': 'helps', 'RGT': 'neutral',
    'SRFormer': 'helps',
    'UNetGenerator': 'helps',
}

CAPABILITIES: dict[str, Capability] = {
    # ATD pads to its window inside (any size runs); its dictionary refinement and category
    # attention span the whole image. Same upsamplers as SwinIR.
    'ATD': Capability(fp16=False, scales=_swinir_scales, tiles_exactly=False,
                      checkpointing=True, pads_to=_window, facts_from=SPANDREL),
    'ArbSR': Capability(fp16=True, scales=ANY_SCALE, facts_from='measured here'),
    'BSRN': Capability(fp16=True, min_size=_bsrn_min_size, facts_from=MEASURED_HERE),
    'BSRN_S': Capability(fp16=True, min_size=15, facts_from=MEASURED_HERE),
    # DAT / RGT: channel attention (DAT) and RG-SA (RGT) span the whole image; both pad to their
    # windows internally (with zeros, inside attention). RGT's RG-SA needs 16 pixels in eval.
    'DAT': Capability(fp16=False, scales=_dat_scales, checkpointing=True,
                      pads_to=_split_windows,
                      facts_from=SPANDREL + " (supports_half False: 'too much weirdness')"),
    'DRCT': Capability(fp16=False, scales=SCALES_2N_3, min_size=_window_pad_min_size,
                       checkpointing=True, pads_to=_window, facts_from=SPANDREL),
    'EDSR': Capability(fp16=True, scales=SCALES_2N_3, tiles_exactly=True),
    'FSRCNN': Capability(fp16=True, tiles_exactly=True),
    'HAT': Capability(fp16=False, scales=SCALES_2N_3, min_size=_window_pad_min_size,
                      checkpointing=True, pads_to=_window, facts_from=SPANDREL),
    'IMDN': Capability(fp16=True),
    'LKDN': Capability(fp16=False, tiles_exactly=True, facts_from=MEASURED_HERE),
    'MSRResNet': Capability(fp16=True, scales=(2, 3, 4), tiles_exactly=True),
    'MultiscalePatchGANDiscriminatorSN': Capability(
        fp16=True, min_size=_patchgan_min_size, facts_from=PATCHGAN_FACTS, **DISCRIMINATOR),
    'NLayerDiscriminator': Capability(fp16=True, **DISCRIMINATOR),
    'OmniSR': Capability(fp16=True, min_size=_omnisr_min_size,
                         facts_from=SPANDREL + " (supports_half, marked 'TODO: Test this')"),
    'PAN': Capability(fp16=True, scales=(2, 3, 4), tiles_exactly=True),
    'PatchGANDiscriminatorSN': Capability(
        fp16=True, min_size=_patchgan_min_size, facts_from=PATCHGAN_FACTS, **DISCRIMINATOR),
    'PLKSR': Capability(fp16=True, tiles_exactly=True, facts_from=SPANDREL + ' (PLKSR)'),
    'RCAN': Capability(fp16=False, scales=SCALES_2N_3, facts_from=SPANDREL),
    'RFDN': Capability(fp16=True),
    'RFDNFINALB5': Capability(fp16=True, min_size=15, facts_from=MEASURED_HERE),  # = BSRN_S
    'RGT': Capability(fp16=False, scales=(1, *SCALES_2N_3), min_size=16, checkpointing=True,
                      pads_to=_split_windows,
                      facts_from=SPANDREL + " (supports_half False, 'TODO: verify')"),
    'RLFN': Capability(fp16=True, min_size=15, facts_from=RLFN_FACTS),
    'RLFN_Prune': Capability(fp16=True, min_size=15, facts_from=RLFN_FACTS),
    'RLFN_S': Capability(fp16=True, min_size=15, facts_from=RLFN_FACTS),
    'RRDBNet': Capability(fp16=True, scales=(1, 2, 4), tiles_exactly=True,
                          facts_from=SPANDREL + ' (ESRGAN)'),
    'RealPLKSR': Capability(fp16=_realplksr_fp16, tiles_exactly=_realplksr_tiles,
                            facts_from=SPANDREL + ' (PLKSR, RealPLKSR)'),
    'ResNetGenerator': Capability(fp16=True, scales=(1,)),
    'SAFMN': Capability(fp16=False, facts_from=SPANDREL, **SAFMN_FAMILY),
    'SAFMNPP': Capability(fp16=True, facts_from=SAFMN_FP16_FROM, **SAFMN_FAMILY),
    'SAFMN_NTIRE23': Capability(fp16=True, facts_from=SAFMN_FP16_FROM,
                                **{**SAFMN_FAMILY, 'min_size': 16}),
    'SAFMN_NTIRE25': Capability(fp16=True, facts_from=SAFMN_FP16_FROM, **SAFMN_FAMILY),
    'SAFMN_VIS24': Capability(fp16=True, facts_from=SAFMN_FP16_FROM, **SAFMN_FAMILY),
    'SFTMD': Capability(fp16=True, scales=(1, 2, 3, 4), tiles_exactly=True),
    'SPAN': Capability(fp16=True, scales=ANY_SCALE, tiles_exactly=True, deploy_form=True,
                       facts_from=SPANDREL),
    'SRFormer': Capability(fp16=False, scales=_swinir_scales, min_size=_srformer_min_size,
                           checkpointing=True, pads_to=_window, facts_from=SRFORMER_FACTS),
    'SRVGGNetCompact': Capability(fp16=True, tiles_exactly=True,
                                  facts_from=SPANDREL + ' (Compact)'),
    'SwinIR': Capability(fp16=False, scales=_swinir_scales, checkpointing=True,
                         pads_to=_window, facts_from=SPANDREL),
    'UNetDiscriminatorSN': Capability(fp16=True, **DISCRIMINATOR),
    'UNetGenerator': Capability(fp16=True, scales=(1,)),
    'VGGStyleDiscriminator': Capability(fp16=True, **DISCRIMINATOR),
}


def capability(options: dict) -> Capability:
    """The capability of the network of ``options`` (``{type: Name, ...}``), fields that depend
    on constructor arguments resolved."""
    name = options['type']
    entry = CAPABILITIES.get(name)
    if entry is None:
        raise KeyError(f"Architecture '{name}' has no entry in the capability table "
                       f'(basicsr_lite/archs/capabilities.py).')
    args = constructor_args(ARCH_REGISTRY.get(name), options)
    resolved = {} if entry.channels_last != 'unmeasured' or name not in CHANNELS_LAST_ON_CUDA \
        else {'channels_last': CHANNELS_LAST_ON_CUDA[name]}
    resolved |= {f.name: getattr(entry, f.name)(args) for f in fields(entry)
                if callable(getattr(entry, f.name))}
    declared = getattr(ARCH_REGISTRY.get(name), 'needs', None)
    # An arch's own needs() may state a multiple too (U-Net depth); it reads required
    # arguments, absent when the table is listed without options.
    if declared is not None and _has_required(ARCH_REGISTRY.get(name), args):
        resolved['size_multiple'] = max(entry.size_multiple, declared(args).input_multiple)
    return replace(entry, **resolved) if resolved else entry


def _has_required(cls: type, args: dict) -> bool:
    return all(name in args for name, p in inspect.signature(cls).parameters.items()
               if p.default is inspect.Parameter.empty
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def supports_scale(cap: Capability, scale: int) -> bool:
    return cap.scales is ANY_SCALE or scale in cap.scales


def describe_scales(cap: Capability) -> str:
    return 'any' if cap.scales is ANY_SCALE else ', '.join(map(str, cap.scales)) or '-'


def table_rows() -> list[dict[str, Any]]:
    """One row per registered architecture (defaults for argument-dependent fields), for docs."""
    rows = []
    for name in ARCH_REGISTRY.keys():
        cap = capability({'type': name})
        rows.append({'arch': name, 'fp16': cap.fp16, 'bf16': cap.bf16,
                     'channels_last': cap.channels_last, 'scales': describe_scales(cap),
                     'size_multiple': cap.size_multiple, 'min_size': cap.min_size,
                     'tiles_exactly': cap.tiles_exactly, 'deploy_form': cap.deploy_form,
                     'checkpointing': cap.checkpointing, 'pads_to': cap.pads_to})
    return rows



def capability_problems(options: dict, where: str, amp: str | None = None) -> list[str]:
    """What the capability table refuses in the network options ``options`` (option key
    ``where``): a scale the network cannot build, an autocast precision it is unsafe in."""
    if options.get('type') not in CAPABILITIES:
        return []  # an unknown type is reported by the registry check
    from basicsr_lite.archs.constraints import network_needs  # it reads this module
    name, cap, needs = options['type'], capability(options), network_needs(options)
    problems = []
    if needs.scale is not None and cap.scales and not supports_scale(cap, needs.scale):
        problems.append(f'{where}.{needs.scale_key}: {name} builds scales '
                        f'{describe_scales(cap)}; got {needs.scale}.')
    if amp == 'fp16' and not cap.fp16:
        other = 'bf16' if cap.bf16 else 'null (fp32)'
        problems.append(f'train.amp: fp16 is unsafe for {name} ({where}; it overflows in fp16'
                        f'{", per " + cap.facts_from if cap.facts_from else ""}); use amp: '
                        f'{other}.')
    if amp == 'bf16' and not cap.bf16:
        problems.append(f'train.amp: bf16 is unsafe for {name} ({where}); use amp: null.')
    return problems
