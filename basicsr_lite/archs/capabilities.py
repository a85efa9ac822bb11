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
from dataclasses import dataclass, fields, replace
from typing import Any

from basicsr_lite.archs.constraints import constructor_args
from basicsr_lite.registry import ARCH_REGISTRY

ANY_SCALE = None  # any positive integer scale (a pixel-shuffle or transposed-conv tail)
SCALES_2N_3 = (2, 3, 4, 8)  # BasicSR's Upsample: powers of two and 3


@dataclass(frozen=True)
class Capability:
    """``fp16`` / ``bf16``: autocast in that precision is safe (no overflow in trained weights);
    ``channels_last``: 'helps' / 'hurts' / 'neutral' for speed on the CPU, as measured by
    ``tools/benchmark_archs.py`` ('unmeasured' until it is); ``scales``: the upscaling factors
    it builds (``ANY_SCALE``: any integer; ``()``: not an upscaler, e.g. a discriminator);
    ``size_multiple``: input sides must be multiples of it (inference pads to it; an arch's
    ``needs()`` may raise it from its arguments);
    ``min_size``: the smallest input side; ``tiles_exactly``: tiled inference with an overlap
    covering the receptive field equals untiled inference (no image-global statistics);
    ``deploy_form``: it has a re-parameterised inference form that loads as well;
    ``checkpointing``: ``use_checkpoint`` (gradient checkpointing) is available;
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
    facts_from: str = ''


def _swinir_scales(args: dict) -> tuple[int, ...] | None:
    return {'pixelshuffle': SCALES_2N_3, 'pixelshuffledirect': ANY_SCALE,
            'nearest+conv': (4,), '': (1,)}[args['upsampler']]


SPANDREL = 'spandrel 0.4.2'
DISCRIMINATOR = dict(scales=(), tiles_exactly=False)

CAPABILITIES: dict[str, Capability] = {
    'ArbSR': Capability(fp16=True, scales=ANY_SCALE, facts_from='measured here'),
    'EDSR': Capability(fp16=True, scales=SCALES_2N_3, tiles_exactly=True),
    'FSRCNN': Capability(fp16=True, tiles_exactly=True),
    'IMDN': Capability(fp16=True),
    'MSRResNet': Capability(fp16=True, scales=(2, 3, 4), tiles_exactly=True),
    'NLayerDiscriminator': Capability(fp16=True, **DISCRIMINATOR),
    'PAN': Capability(fp16=True, scales=(2, 3, 4), tiles_exactly=True),
    'RCAN': Capability(fp16=False, scales=SCALES_2N_3, facts_from=SPANDREL),
    'RFDN': Capability(fp16=True),
    'RRDBNet': Capability(fp16=True, scales=(1, 2, 4), tiles_exactly=True,
                          facts_from=SPANDREL + ' (ESRGAN)'),
    'ResNetGenerator': Capability(fp16=True, scales=(1,)),
    'SFTMD': Capability(fp16=True, scales=(1, 2, 3, 4), tiles_exactly=True),
    'SPAN': Capability(fp16=True, scales=ANY_SCALE, tiles_exactly=True, deploy_form=True,
                       facts_from=SPANDREL),
    'SRVGGNetCompact': Capability(fp16=True, tiles_exactly=True,
                                  facts_from=SPANDREL + ' (Compact)'),
    'SwinIR': Capability(fp16=False, scales=_swinir_scales, facts_from=SPANDREL),
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
    resolved = {f.name: getattr(entry, f.name)(args) for f in fields(entry)
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
                     'checkpointing': cap.checkpointing})
    return rows

