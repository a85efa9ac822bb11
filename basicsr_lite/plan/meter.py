"""Bytes of tensor memory allocated on a device over a stretch of code, with its peak.

On CUDA, the caching allocator's own counters (``memory_allocated`` / ``max_memory_allocated``).
On the CPU, where torch keeps no such counters, the allocation and free events that
``torch.profiler`` records with ``profile_memory=True``, summed in time order: every tensor
allocation of torch's CPU allocator is one event, so the running sum is the allocated bytes and
its maximum the peak. Marks (:meth:`MemoryMeter.mark`) are profiler ranges in the same clock.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch._C._autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

MARK_PREFIX = 'memory_plan::'


class MemoryMeter:
    """``with meter.recording(): ... with meter.mark('x'): ...``; then ``meter.at_start('x')``
    (bytes allocated when the mark began) and ``meter.peak('x')`` (the most allocated during it),
    both counted from the start of the recording."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._cuda: dict[str, tuple[int, int]] = {}
        self._cuda_base = 0
        self._events: list[tuple[int, int]] = []  # (time ns, +/- bytes)
        self._marks: dict[str, tuple[int, int]] = {}

    @contextmanager
    def recording(self) -> Iterator['MemoryMeter']:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self._cuda_base = torch.cuda.memory_allocated(self.device)
            yield self
            return
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            yield self
        events = prof.profiler.kineto_results.events()
        self._events = sorted((e.start_ns(), e.nbytes()) for e in events
                              if e.name() == '[memory]' and e.device_type() == DeviceType.CPU)
        self._marks = {e.name()[len(MARK_PREFIX):]: (e.start_ns(), e.end_ns())
                       for e in events if e.name().startswith(MARK_PREFIX)}

    @contextmanager
    def mark(self, name: str) -> Iterator[None]:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            start = torch.cuda.memory_allocated(self.device) - self._cuda_base
            torch.cuda.reset_peak_memory_stats(self.device)
            yield
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) - self._cuda_base
            self._cuda[name] = (start, peak)
            return
        with record_function(MARK_PREFIX + name):
            yield

    def at_start(self, name: str) -> int:
        return self._window(name)[0]

    def peak(self, name: str) -> int:
        return self._window(name)[1]

    def _window(self, name: str) -> tuple[int, int]:
        if self.device.type == 'cuda':
            return self._cuda[name]
        begin, end = self._marks[name]
        total, start, peak = 0, None, None
        for time_ns, nbytes in self._events:
            if time_ns > end:
                break
            if time_ns >= begin and start is None:
                start = peak = total
            total += nbytes
            if start is not None:
                peak = max(peak, total)
        if start is None:
            start = peak = total
        return start, peak
