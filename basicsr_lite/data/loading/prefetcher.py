"""Prefetchers: ``next()`` returns the next batch (on the target device) or None at the end of
the epoch; ``reset()`` starts a new pass. CPU and CUDA versions share this interface."""
from __future__ import annotations

import logging
from typing import Any, Iterable

import torch


def _to_device(batch: Any, device: torch.device, non_blocking: bool) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: _to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device, non_blocking) for v in batch)
    return batch


class CPUPrefetcher:
    """Iterates a loader; the loader's workers do the prefetching."""

    def __init__(self, loader: Iterable) -> None:
        self.loader = loader
        self.iterator = iter(loader)

    def next(self) -> Any:
        return next(self.iterator, None)

    def reset(self) -> None:
        self.iterator = iter(self.loader)


class CUDAPrefetcher(CPUPrefetcher):
    """Copies the next batch to the GPU on a side stream while the current one is computed.

    Without CUDA it behaves exactly like :class:`CPUPrefetcher` (batches stay on the CPU), so a
    config with ``prefetch_mode: cuda`` still runs on a CPU-only machine.
    """

    def __init__(self, loader: Iterable, device: torch.device | None = None) -> None:
        self.device = device or torch.device('cuda')
        self.enabled = self.device.type == 'cuda' and torch.cuda.is_available()
        self.stream = torch.cuda.Stream(device=self.device) if self.enabled else None
        self.batch: Any = None
        super().__init__(loader)
        self._preload()

    def _preload(self) -> None:
        self.batch = next(self.iterator, None)
        if self.batch is None or not self.enabled:
            return
        with torch.cuda.stream(self.stream):
            self.batch = _to_device(self.batch, self.device, non_blocking=True)

    def next(self) -> Any:
        if self.enabled:
            torch.cuda.current_stream(self.device).wait_stream(self.stream)
            self._record_on_current_stream(self.batch)
        batch = self.batch
        self._preload()
        return batch

    def _record_on_current_stream(self, batch: Any) -> None:
        # Tell the caching allocator the tensors are used on the compute stream too, so their
        # memory is not reused by the side stream too early.
        if isinstance(batch, torch.Tensor) and batch.is_cuda:
            batch.record_stream(torch.cuda.current_stream(self.device))
        elif isinstance(batch, dict):
            for value in batch.values():
                self._record_on_current_stream(value)

    def reset(self) -> None:
        super().reset()
        self._preload()


def build_prefetcher(loader: Iterable, prefetch_mode: str | None,
                     device: torch.device) -> CPUPrefetcher:
    """``prefetch_mode``: None or 'cpu' -> CPUPrefetcher; 'cuda' -> CUDAPrefetcher (on a run
    without CUDA: a warning, and the CPU prefetcher)."""
    if prefetch_mode == 'cuda':
        if device.type == 'cuda':
            return CUDAPrefetcher(loader, device)
        logging.getLogger('basicsr_lite').warning(
            f'prefetch_mode: cuda needs a CUDA device; this run is on {device}: prefetching with '
            f'the loader workers only (prefetch_mode: cpu).')
    return CPUPrefetcher(loader)
