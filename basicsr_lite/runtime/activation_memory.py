"""Bytes a forward pass keeps alive for backward, counted device-independently with
``torch.autograd.graph.saved_tensors_hooks``: every tensor autograd saves is seen once, by its
storage (views of one storage count once), parameters and buffers left out. This is the memory
that gradient checkpointing trades for recomputation, and it works on the CPU where there is no
allocator statistic to read.

Gradient checkpointing hides the tensors saved inside a checkpointed region (they are recomputed
in backward) but keeps the region's inputs: :func:`basicsr_lite.archs.window_attention.
run_checkpointed` reports those through :func:`note_checkpoint_inputs`, so the count stays the
memory really held."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import torch
from torch import nn

_ACTIVE: list['SavedTensorCounter'] = []


class SavedTensorCounter:
    """Running total of the unique storages saved for backward (``bytes``, ``tensors``)."""

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self._excluded = {_storage_key(t) for t in exclude}
        self._seen: set[tuple[str, int]] = set()
        self.bytes = 0
        self.tensors = 0

    def exclude(self, tensors: Iterable[torch.Tensor]) -> None:
        """Leave ``tensors`` (weights) out of the count."""
        self._excluded.update(_storage_key(t) for t in tensors)

    def add(self, tensor: torch.Tensor) -> None:
        if tensor.layout != torch.strided or tensor.device.type == 'meta':
            return
        key = _storage_key(tensor)
        if key in self._excluded or key in self._seen:
            return
        self._seen.add(key)
        self.bytes += tensor.untyped_storage().nbytes()
        self.tensors += 1


def _storage_key(tensor: torch.Tensor) -> tuple[str, int]:
    return str(tensor.device), tensor.untyped_storage().data_ptr()


@contextmanager
def count_saved_tensors(module: nn.Module | None = None) -> Iterator[SavedTensorCounter]:
    """Count what autograd saves inside the block; ``module``'s parameters and buffers are not
    activations and are left out."""
    exclude = [] if module is None else [*module.parameters(), *module.buffers()]
    counter = SavedTensorCounter(exclude)

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        counter.add(tensor)
        return tensor

    _ACTIVE.append(counter)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            yield counter
    finally:
        _ACTIVE.remove(counter)


def note_checkpoint_inputs(args: Iterable[Any]) -> None:
    """Called by the checkpointing helper: the inputs of a checkpointed region stay alive until
    its backward, so they count as saved."""
    for counter in _ACTIVE:
        for arg in args:
            if isinstance(arg, torch.Tensor):
                counter.add(arg)


def saved_activation_bytes(net: nn.Module, *inputs: torch.Tensor) -> int:
    """Bytes of activations one training forward of ``net`` on ``inputs`` keeps for backward
    (the graph is freed afterwards)."""
    with torch.enable_grad(), count_saved_tensors(net) as counter:
        out = net(*inputs)
    del out
    return counter.bytes
