"""The speed options of ``train.*``, applied in one place.

- ``channels_last``: networks and their 4-D inputs in NHWC memory order (faster convolutions on
  tensor cores and on recent CPUs; the same maths, so fp32 results agree to float tolerance).
- ``amp`` / ``channels_last`` that would make this machine slower (and their ``auto`` values)
  are decided at start-up by ``runtime.speed_probe`` (``train.speed_policy``).
- ``compile``: ``torch.compile`` per trained network (``true`` or torch.compile's arguments:
  ``backend``, ``mode``, ``dynamic``, ``fullgraph``). The backend is tried once at start-up on a
  tiny network; if it cannot compile on this machine, the run says why and trains uncompiled.
- ``optimizer_impl``: ``auto`` (fused when torch has a fused kernel for the optimizer: one kernel
  per step, and the step can be dropped on the device without a host sync), ``fused``,
  ``foreach`` or ``for_loop``. A ``fused`` / ``foreach`` written in ``optim_*`` wins.
- ``cudnn_benchmark``: let cuDNN time its algorithms for each input shape (fixed patch sizes).
- ``matmul_precision``: ``highest`` (fp32), ``high`` (TF32) or ``medium`` (bf16) for fp32
  matrix products and convolutions on GPUs that have them.

None of them changes a saved state: checkpoints hold the plain networks' state dicts, so a run
resumes with any of them switched on or off.
"""
from __future__ import annotations

import itertools
import logging
from typing import Any

import torch
from torch import nn

from basicsr_lite.errors import closest_match, first_line

logger = logging.getLogger('basicsr_lite')

OPTIMIZER_IMPLS = ('auto', 'fused', 'foreach', 'for_loop')
MATMUL_PRECISIONS = ('highest', 'high', 'medium')
COMPILE_KEYS = ('backend', 'mode', 'dynamic', 'fullgraph')
COMPILE_MODES = (None, 'default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')


def compile_problems(value: Any) -> str | None:
    """Why ``train.compile`` is not valid, or None."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, dict):
        return f'expected true, false or a mapping of {", ".join(COMPILE_KEYS)}; got {value!r}'
    unknown = sorted(set(value) - set(COMPILE_KEYS))
    if unknown:
        return f'unknown key(s) {unknown}; expected some of {list(COMPILE_KEYS)}'
    if value.get('mode') not in COMPILE_MODES:
        return f"mode: {value['mode']!r} is not one of {list(COMPILE_MODES)}"
    for key in ('dynamic', 'fullgraph'):
        if not isinstance(value.get(key, False), (bool, type(None))):
            return f'{key}: expected true, false or null; got {value[key]!r}'
    if not isinstance(value.get('backend', ''), str):
        return f"backend: expected a backend name; got {value['backend']!r}"
    if 'backend' in value:
        return unknown_backend_problem(value['backend'])
    return None


def unknown_backend_problem(backend: str) -> str | None:
    """A backend name torch.compile does not know (a typo on any machine), or None. A known
    backend that fails here is only found when tried (:func:`compile_backend_error`)."""
    known = torch.compiler.list_backends(exclude_tags=())
    if backend in known:
        return None
    close = closest_match(backend, known)
    debug = [name for name in ('eager', 'aot_eager') if name in known]
    hint = f'; did you mean {close!r}?' if close is not None else '.'
    return (f"backend: {backend!r} is not a torch.compile backend"
            f"{hint} torch {torch.__version__} has: "
            f"{', '.join(torch.compiler.list_backends())} (for debugging also "
            f"{', '.join(debug)}).")


def compile_kwargs(value: bool | dict) -> dict | None:
    """torch.compile's arguments for ``train.compile`` (None: off)."""
    if value is False:
        return None
    return {} if value is True else dict(value)


def set_backend_flags(train_opt: dict) -> None:
    """Process-wide switches: cuDNN autotuning and the fp32 matmul precision."""
    torch.backends.cudnn.benchmark = bool(train_opt.get('cudnn_benchmark', False))
    torch.set_float32_matmul_precision(train_opt.get('matmul_precision', 'highest'))


def optimizer_impl_kwargs(optim_opt: dict, impl: str) -> dict:
    """The ``fused`` / ``foreach`` arguments for ``train.optimizer_impl`` (none when the option
    file's ``optim_*`` sets one itself)."""
    if 'fused' in optim_opt or 'foreach' in optim_opt:
        return {}
    if impl in ('auto', 'fused'):
        return {'fused': True}
    return {'foreach': impl == 'foreach'}


def fused_kernel_applies(params: list) -> bool:
    """Whether torch's fused optimizer kernels take these parameters (tensors or param groups):
    floating point, on a device that has the kernels."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    devices = _get_fused_kernels_supported_devices()
    tensors = [t for p in params for t in (p['params'] if isinstance(p, dict) else [p])]
    return all(t.is_floating_point() and t.device.type in devices for t in tensors)


def build_with_impl(build, params: list, optim_opt: dict, impl: str) -> torch.optim.Optimizer:
    """``build(params, extra_kwargs)`` with the implementation of ``train.optimizer_impl``;
    ``auto`` uses torch's default where the fused kernel does not apply."""
    extra = optimizer_impl_kwargs(optim_opt, impl)
    if impl == 'auto' and extra and not fused_kernel_applies(params):
        extra = {}
    return build(params, extra)


def is_fused(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` runs a fused kernel that can skip a step on the device
    (``found_inf``), which :class:`OptimizerStepper` uses to avoid a host sync per step."""
    return bool(getattr(optimizer, '_step_supports_amp_scaling', False)) and all(
        group.get('fused') for group in optimizer.param_groups)


def network_to_channels_last(net: nn.Module) -> nn.Module:
    """``net`` with its 4-D parameters and buffers in NHWC order. (``net.to(memory_format=...)``
    refuses networks that hold tensors of other ranks, e.g. ArbSR's per-expert 1x1 filters.)"""
    for tensor in itertools.chain(net.parameters(), net.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return net


def to_memory_format(tensor: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if channels_last and tensor.dim() == 4:
        return tensor.contiguous(memory_format=torch.channels_last)
    return tensor


_backend_errors: dict[str, str | None] = {}


def compile_backend_error(kwargs: dict) -> str | None:
    """Compile and run (forward and backward) a tiny network with ``kwargs`` once per process;
    the first line of the error if that fails, else None."""
    key = repr(sorted(kwargs.items()))
    if key not in _backend_errors:
        probe = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.1))
        try:
            torch.compile(probe, **kwargs)(torch.rand(1, 3, 8, 8)).sum().backward()
            _backend_errors[key] = None
        except Exception as err:  # any backend failure means: do not compile
            _backend_errors[key] = first_line(err)
    return _backend_errors[key]


def maybe_compile(net: nn.Module, label: str, kwargs: dict | None) -> nn.Module:
    """``torch.compile(net, **kwargs)``, or ``net`` (with a message saying why) when the backend
    cannot compile here. The compiled wrapper shares the network's parameters; saving unwraps it
    (``runtime.dist.unwrap``)."""
    if kwargs is None:
        return net
    error = compile_backend_error(kwargs)
    if error is not None:
        logger.warning(f"train.compile: torch.compile({kwargs or ''}) does not work on this "
                       f'machine ({error}); {label} trains uncompiled.')
        return net
    logger.info(f'train.compile: {label} compiled with torch.compile({kwargs or ""}); the first '
                f'iterations include compilation.')
    return torch.compile(net, **kwargs)
