"""What a self-describing network file (``logger.save_format: safetensors``) says about itself,
so that the file alone is enough for ``test.py`` (``network_g: {type: auto}``), the upscaling
tools' ``--pretrained`` and ``check_interop.py``.

The safetensors metadata (strings only) of ``models/<label>_<tag>.safetensors``::

    format      'basicsr_lite'
    label       'net_g' / 'net_d' (the file's network)
    arch        the registered architecture name (network_g.type)
    network_g   JSON of the constructor options as the option file gives them, every other
                constructor default filled in ('network_d' in a net_d file): the key that
                archs/detection.py reads
    scale       the option file's scale
    iteration   the training iteration the weights are from
    param_keys  the tensor sets it holds, e.g. 'params,params_ema'

The tensors are BasicSR's two sets kept apart by key prefixes, ``params.<key>`` and
``params_ema.<key>`` (what tools/convert_weights.py writes); runtime/weights.py nests them back
into ``{'params': ..., 'params_ema': ...}``, so ``path.param_key_g`` works as with a .pth.
"""
from __future__ import annotations

import inspect
import json
from typing import Any

from basicsr_lite.registry import ARCH_REGISTRY

FORMAT_NAME = 'basicsr_lite'


def option_key(label: str) -> str:
    """The option section of a network file label: ``net_g`` -> ``network_g``."""
    return f"network_{label.split('_', 1)[1]}"


def _json_value(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def constructor_options(options: dict) -> dict:
    """``options`` (``{'type': name, **args}``) with every constructor default the option file
    leaves out filled in (defaults JSON cannot hold, e.g. a class, are left to the
    constructor)."""
    filled = dict(options)
    if options['type'] not in ARCH_REGISTRY:
        return filled
    params = inspect.signature(ARCH_REGISTRY.get(options['type'])).parameters.values()
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.name in filled:
            continue
        if param.default is not param.empty and _json_value(param.default):
            filled[param.name] = param.default
    return filled


def network_metadata(opt: dict, label: str, iteration: int, param_keys: list[str]
                     ) -> dict[str, str]:
    """The metadata of ``label``'s file saved at ``iteration`` (see the module docstring)."""
    meta = {'format': FORMAT_NAME, 'label': label, 'scale': str(opt.get('scale', 1)),
            'iteration': str(iteration), 'param_keys': ','.join(param_keys)}
    options = opt.get(option_key(label))
    if isinstance(options, dict) and options.get('type'):
        meta['arch'] = str(options['type'])
        meta[option_key(label)] = json.dumps(constructor_options(options))
    return meta
