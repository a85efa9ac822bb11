"""What a network needs of its input, stated by the network from its constructor options, so that
a mismatch with the data is found at start-up instead of in the first batch.

An arch declares it with an optional classmethod ``needs(args) -> NetworkNeeds`` (``args``: its
constructor options, defaults filled in). Archs without one follow BasicSR's names: ``num_in_ch``
/ ``num_out_ch`` channels, ``upscale`` (or ``scale``) the integer upscaling factor, and the
input multiple of their row in the capability table (``archs/capabilities.py``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from basicsr_lite.registry import ARCH_REGISTRY


@dataclass(frozen=True)
class NetworkNeeds:
    """``None``: anything goes. ``scale``: output size / input size (None: given per batch, as
    ArbSR's); ``input_size``: the one square input size accepted; ``input_multiple``: height and
    width must be multiples of it; ``*_key``: the option that decides it, for messages."""
    in_ch: int | None = None
    out_ch: int | None = None
    scale: int | None = None
    input_size: int | None = None
    input_multiple: int = 1
    in_key: str = 'num_in_ch'
    out_key: str = 'num_out_ch'
    scale_key: str = 'upscale'
    size_key: str = ''


def constructor_args(cls: type, options: dict) -> dict[str, Any]:
    """``options`` (minus ``type``) over the defaults of ``cls``'s constructor."""
    args = {name: p.default for name, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}
    args.update({k: v for k, v in options.items() if k != 'type'})
    return args


def network_needs(options: dict) -> NetworkNeeds:
    """What the network of ``options`` (``{type: Name, ...}``) needs of its input."""
    cls = ARCH_REGISTRY.get(options['type'])
    args = constructor_args(cls, options)
    declared = getattr(cls, 'needs', None)
    if declared is not None:
        return declared(args)
    from basicsr_lite.archs.capabilities import capability  # it builds on this module
    scale_key = 'upscale' if 'upscale' in args else 'scale'
    return NetworkNeeds(in_ch=args.get('num_in_ch'), out_ch=args.get('num_out_ch'),
                        scale=args.get(scale_key), scale_key=scale_key,
                        input_multiple=capability(options).size_multiple)
