"""Weight files: safe (weights-only) reads and atomic writes of PyTorch and safetensors files,
and loading weights (every form users have) into a network."""
from __future__ import annotations

import logging
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

# CheckpointError is also importable from here (its home before errors.py).
from basicsr_lite.errors import CheckpointError
from basicsr_lite.runtime.dist import unwrap
from basicsr_lite.utils.files import atomic_write

logger = logging.getLogger('basicsr_lite')


def save_torch(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f), CheckpointError)


def load_torch(path: str | Path, map_location: Any = 'cpu') -> Any:
    """``torch.load(weights_only=True)``: tensors, containers and numbers only, never code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'Checkpoint {path} does not exist.')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses objects by their global name (a class or function the file
        # would call); any other unpickling error means the bytes are not a checkpoint at all.
        code = [line for line in str(err).splitlines() if 'GLOBAL' in line]
        if code:
            raise CheckpointError(
                f'Refusing to load {path}: it holds objects other than tensors and plain '
                f'containers (loading it could run code from the file). Details: {code[0]}'
            ) from err
        raise _unreadable(path, err) from err
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as err:
        raise _unreadable(path, err) from err


# Lines of torch.load's errors that say nothing about the file.
_BOILERPLATE = ('Weights only load failed', 'Please file an issue', 'Check the documentation')


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    lines = [line.strip() for line in str(err).splitlines()
             if line.strip() and not line.startswith(_BOILERPLATE)]
    detail = lines[0].split('. ')[0] if lines else type(err).__name__
    return CheckpointError(f'{path} is not a readable checkpoint (truncated, damaged or not a '
                           f'PyTorch file): {detail}.')


def load_weights(path: str | Path) -> dict:
    """A weights file: ``.safetensors`` (nested back into ``params`` / ``params_ema`` when its
    keys carry those prefixes, as ``tools/convert_weights.py`` writes them) or a PyTorch file
    (weights-only)."""
    path = Path(path)
    if path.suffix != '.safetensors':
        return load_torch(path)
    try:
        from safetensors.torch import load_file
    except ImportError as err:
        raise CheckpointError(f'{path} is a .safetensors file: pip install safetensors '
                              f'(or basicsr_lite[safetensors]).') from err
    if not path.is_file():
        raise CheckpointError(f'Checkpoint {path} does not exist.')
    try:
        flat = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f'Cannot read {path}: {err}') from err
    return nest_param_keys(flat)


PARAM_GROUPS = ('params', 'params_ema')


def save_safetensors(weights: dict, path: str | Path, metadata: dict[str, str]) -> None:
    """Write ``weights`` (a bare state dict or BasicSR's ``{'params': ..., 'params_ema': ...}``,
    stored flat as ``params.<key>`` / ``params_ema.<key>``) with string ``metadata``,
    atomically. Tensors are copied contiguous (safetensors refuses shared storage)."""
    try:
        from safetensors.torch import save
    except ImportError as err:
        raise CheckpointError(f'Writing {path} needs: pip install safetensors') from err
    flat = {k: v.detach().cpu().contiguous().clone()
            for k, v in flatten_param_keys(weights).items()}
    atomic_write(path, lambda f: f.write(save(flat, metadata=metadata)), CheckpointError)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (empty for other files or without the
    safetensors package)."""
    if Path(path).suffix != '.safetensors' or not Path(path).is_file():
        return {}
    try:
        from safetensors import safe_open
        with safe_open(str(path), 'pt') as f:
            return dict(f.metadata() or {})
    except Exception:  # not installed, or not a safetensors file: no metadata to use
        return {}


def flatten_param_keys(checkpoint: dict) -> dict:
    """``{'params': {k: v}}`` -> ``{'params.k': v}`` (safetensors files are flat)."""
    flat = {}
    for key, value in checkpoint.items():
        if key in PARAM_GROUPS and isinstance(value, dict):
            flat.update({f'{key}.{k}': v for k, v in value.items()})
        elif isinstance(value, torch.Tensor):
            flat[key] = value
        else:
            raise CheckpointError(f"Entry '{key}' is not a tensor (type {type(value).__name__}); "
                                  f'only weights can be stored in safetensors.')
    return flat


def nest_param_keys(flat: dict) -> dict:
    groups = {key.split('.', 1)[0] for key in flat}
    if not groups <= set(PARAM_GROUPS):
        return flat
    nested: dict = {group: {} for group in PARAM_GROUPS if group in groups}  # BasicSR's order
    for key, value in flat.items():
        group, name = key.split('.', 1)
        nested[group][name] = value
    return nested


# ---- weights into a network -------------------------------------------------------------------

# What other training codes wrap their weights in (BasicSR's params_ema / params come first).
WRAPPER_KEYS = ('params_ema', 'params', 'state_dict', 'model', 'net', 'netG', 'net_g',
                'generator')
# Key prefixes of wrapped networks: DataParallel / DDP, and torch.compile's OptimizedModule.
WRAPPER_PREFIXES = ('module.', '_orig_mod.')
THOP_BUFFERS = ('total_ops', 'total_params')  # thop.profile's per-module counters


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(v, torch.Tensor) for v in value.values())


def describe_checkpoint(checkpoint: Any) -> str:
    """What a file holds, for errors: its top-level keys and a few parameter names."""
    if not isinstance(checkpoint, dict):
        return f'a {type(checkpoint).__name__}, not a dict'
    tensors = [k for k, v in checkpoint.items() if isinstance(v, torch.Tensor)]
    others = [f'{k} ({type(v).__name__})' for k, v in checkpoint.items()
              if not isinstance(v, torch.Tensor)]
    parts = []
    if others:
        parts.append('top-level keys ' + ', '.join(others[:8])
                     + (f' ... {len(others) - 8} more' if len(others) > 8 else ''))
    if tensors:
        parts.append(f'{len(tensors)} tensors, e.g. ' + ', '.join(tensors[:4]))
    for key, value in checkpoint.items():
        if _is_state_dict(value):
            parts.append(f"'{key}' holds {len(value)} tensors, e.g. "
                         + ', '.join(map(str, list(value)[:3])))
        elif isinstance(value, dict) and value:
            parts.append(f"'{key}' holds keys " + ', '.join(map(str, list(value)[:6])))
    return '; '.join(parts) or 'an empty dict'


def _unwrap(checkpoint: dict, param_key: str | None, path: str) -> dict:
    """The state dict in ``checkpoint``: ``param_key`` when there, else a bare state dict,
    else the one wrapper of :data:`WRAPPER_KEYS` it has (nested wrappers are followed)."""
    if param_key and isinstance(checkpoint.get(param_key), dict):
        return checkpoint[param_key]
    if param_key == 'params_ema' and isinstance(checkpoint.get('params'), dict):
        logger.warning(f"{path} has no 'params_ema'; loading 'params'.")
        return checkpoint['params']
    if _is_state_dict(checkpoint):
        return checkpoint
    if param_key and any(isinstance(checkpoint.get(k), dict) for k in PARAM_GROUPS):
        # a BasicSR file without the group asked for: BasicSR's error, not a silent swap
        raise CheckpointError(f"{path} has no '{param_key}' entry; its top-level keys are "
                              f'{sorted(checkpoint)}. Set path.param_key_g accordingly.')
    found = [k for k in WRAPPER_KEYS if isinstance(checkpoint.get(k), dict)]
    if not found:
        raise CheckpointError(
            f"{path} holds no state dict that is recognised (no '{param_key}' entry, not a "
            f'bare state dict, none of the wrappers {", ".join(WRAPPER_KEYS)}); it has '
            f'{describe_checkpoint(checkpoint)}. Set path.param_key_g to its key.')
    if len(found) > 1 and not set(found) <= {'params', 'params_ema'}:
        raise CheckpointError(
            f'{path} is ambiguous: it has several weight wrappers ({", ".join(found)}); set '
            f'path.param_key_g to the one to load. It has {describe_checkpoint(checkpoint)}.')
    inner = checkpoint[found[0]]
    return inner if _is_state_dict(inner) else _unwrap(inner, None, path)


def strip_prefixes(state: dict) -> dict:
    """Remove the prefixes of :data:`WRAPPER_PREFIXES` that every key has (in any order and
    number: ``module._orig_mod.``)."""
    keys = list(state)
    changed = True
    while changed and keys:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in keys):
                keys = [k[len(prefix):] for k in keys]
                changed = True
    return OrderedDict(zip(keys, state.values()))


def extract_state_dict(checkpoint: Any, param_key: str | None, path: str) -> dict:
    """The state dict inside a checkpoint, in the forms users have: BasicSR's
    ``{param_key: ...}`` (``params_ema`` falls back to ``params`` with a warning), a bare state
    dict, or one of the wrappers of :data:`WRAPPER_KEYS` (``state_dict``, ``model``, ``net``,
    ``netG``, ...). The prefixes of DataParallel / DDP (``module.``) and torch.compile
    (``_orig_mod.``) are removed, and so are the ``total_ops`` / ``total_params`` buffers that
    profiling with thop leaves on modules it has no counter for (spandrel drops them from
    OmniSR files, whose released sizes fit them)."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{path} does not hold a state dict '
                              f'(got {type(checkpoint).__name__}).')
    state = _unwrap(checkpoint, param_key, path)
    state = OrderedDict((k, v) for k, v in state.items()
                        if isinstance(v, torch.Tensor) and not k.endswith(THOP_BUFFERS))
    if not state:
        raise CheckpointError(f'{path} holds no tensors where its weights should be; it has '
                              f'{describe_checkpoint(checkpoint)}.')
    return strip_prefixes(state)


def adapt_layout(net: nn.Module | type, state: dict) -> dict:
    """``state`` in ``net``'s own key layout: an architecture whose weights circulate in
    another layout too (RCAN: the authors' / spandrel's keys) converts them with its
    ``adapt_state_dict`` classmethod."""
    adapt = getattr(net if isinstance(net, type) else type(net), 'adapt_state_dict', None)
    return adapt(state) if adapt is not None else state


def describe_mismatch(net: nn.Module, state: dict) -> str:
    """Missing / unexpected keys and shape differences between ``net`` and ``state``."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f'{k}: checkpoint {tuple(state[k].shape)} vs network {tuple(own[k].shape)}'
              for k in sorted(set(own) & set(state)) if own[k].shape != state[k].shape]
    parts = []
    for title, items in (('missing keys', missing), ('unexpected keys', unexpected),
                         ('shape mismatches', shapes)):
        if items:
            shown = items[:10] + ([f'... {len(items) - 10} more'] if len(items) > 10 else [])
            parts.append(f'{title} ({len(items)}): ' + ', '.join(shown))
    return '; '.join(parts)


def load_weights_into(net: nn.Module, load_path: str, strict: bool = True,
                      param_key: str | None = 'params') -> None:
    """Load a weights file into ``net``; mismatches are reported key by key (an error when
    ``strict``, else a warning and only the matching tensors are loaded). The file's layout is
    adapted to the network's (``adapt_layout``), and a network with
    ``match_state_dict_form(state)`` first switches to the form the file holds (trained or
    deploy), so that either loads strictly."""
    bare = unwrap(net)
    state = adapt_layout(bare, extract_state_dict(load_weights(load_path), param_key, load_path))
    match_form = getattr(bare, 'match_state_dict_form', None)
    if match_form is not None:  # a re-parameterisable network takes the file's form (SPAN)
        match_form(state)
    mismatch = describe_mismatch(bare, state)
    if mismatch and strict:
        raise CheckpointError(f'{load_path} does not match {bare.__class__.__name__} '
                              f'(strict_load is true): {mismatch}')
    if mismatch:
        own, found = bare.state_dict(), state
        state = {k: v for k, v in found.items() if k in own and own[k].shape == v.shape}
        if not state:  # nothing would be loaded: the wrong file, network or param_key
            raise CheckpointError(
                f'{load_path} has no weight that fits {bare.__class__.__name__} (strict_load is '
                f'false, but 0 of its tensors match a key and shape of the network). The network '
                f'expects e.g. {few(own)}; the file [{param_key}] has e.g. {few(found)}.')
        logger.warning(f'Loading {load_path} non-strictly: {mismatch}')
    bare.load_state_dict(state, strict=strict)


def few(state: dict, count: int = 3) -> str:
    """The first ``count`` keys of ``state`` with their shapes: ``conv.weight (8, 3, 3, 3)``."""
    items = [f'{k} {tuple(v.shape)}' for k, v in list(state.items())[:count]]
    return ', '.join(items) + (f' ({len(state)} in all)' if len(state) > count else '') \
        if items else 'no tensors'
