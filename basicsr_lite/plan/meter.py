"""Bytes of tensor memory allocated on a device over a stretch of code, with its peaks.

On CUDA, the caching allocator's own counters (``memory_allocated`` / ``max_memory_allocated``).
On the CPU, where torch keeps no such counters, the allocation and free events that
``torch.profiler`` records with ``profile_memory=True``, summed in time order: every tensor
allocation of torch's CPU allocator is one event, so the running sum is the allocated bytes and
its maximum the peak.

A measured stretch (:meth:`MemoryMeter.mark`) may contain *update phases* (:meth:`phase`: the
optimizer steps and EMA updates), whose memory does not grow with the batch's pixels; the peak
inside them and the peak outside them (forward and backward) are kept apart, so that each can be
fitted on its own.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

import torch
from torch._C._autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

MARK_PREFIX = 'memory_plan::'
PHASE = 'memory_plan_phase'


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null: lines native code prints there (no Python setting turns
    kineto's 'profiler_start' lines off)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, 'w') as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class MemoryMeter:
    """``with meter.recording(): with meter.mark('x'): ... with meter.phase(): ...``; then
    ``meter.peaks('x')``: (peak outside phases, peak inside phases), bytes counted from the start
    of the recording (0 inside when there was no phase)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._cuda_base = 0
        self._cuda_peaks: dict[str, list[int]] = {}
        self._current: str | None = None
        self._events: list[tuple[int, int]] = []  # (time ns, +/- bytes)
        self._ranges: list[tuple[str, int, int]] = []  # (name, begin ns, end ns)

    @property
    def cuda(self) -> bool:
        return self.device.type == 'cuda'

    @contextmanager
    def recording(self) -> Iterator['MemoryMeter']:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self._cuda_base = torch.cuda.memory_allocated(self.device)
            yield self
            return
        prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        with native_stderr_silenced():  # the profiler's start / stop lines (kineto's own log)
            prof.start()
        try:
            yield self
        finally:
            with native_stderr_silenced():
                prof.stop()
        events = prof.profiler.kineto_results.events()
        self._events = sorted((e.start_ns(), e.nbytes()) for e in events
                              if e.name() == '[memory]' and e.device_type() == DeviceType.CPU)
        self._ranges = sorted((e.name(), e.start_ns(), e.end_ns()) for e in events
                              if e.name().startswith(MARK_PREFIX) or e.name() == PHASE)

    def _cuda_max(self) -> int:
        torch.cuda.synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device) - self._cuda_base
        torch.cuda.reset_peak_memory_stats(self.device)
        return peak

    @contextmanager
    def mark(self, name: str) -> Iterator[None]:
        if not self.cuda:
            with record_function(MARK_PREFIX + name):
                yield
            return
        self._cuda_max()
        self._cuda_peaks[name], self._current = [0, 0], name
        try:
            yield
        finally:
            self._cuda_peaks[name][0] = max(self._cuda_peaks[name][0], self._cuda_max())
            self._current = None

    @contextmanager
    def phase(self) -> Iterator[None]:
        if not self.cuda:
            with record_function(PHASE):
                yield
            return
        peaks = self._cuda_peaks[self._current]
        peaks[0] = max(peaks[0], self._cuda_max())
        try:
            yield
        finally:
            peaks[1] = max(peaks[1], self._cuda_max())

    def peaks(self, name: str) -> tuple[int, int]:
        if self.cuda:
            outside, inside = self._cuda_peaks[name]
            return outside, inside
        (begin, end), = [(b, e) for n, b, e in self._ranges if n == MARK_PREFIX + name]
        phases = [(b, e) for n, b, e in self._ranges if n == PHASE and begin <= b <= end]
        total, outside, inside = 0, 0, 0
        for time_ns, nbytes in self._events:
            if time_ns > end:
                break
            total += nbytes
            if time_ns >= begin:
                if any(b <= time_ns <= e for b, e in phases):
                    inside = max(inside, total)
                else:
                    outside = max(outside, total)
        return outside, inside
