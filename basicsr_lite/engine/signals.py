"""Graceful stop on SIGTERM / SIGINT (cluster pre-emption, Ctrl+C)."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import torch

from basicsr_lite.runtime.dist import is_dist

logger = logging.getLogger('basicsr_lite')

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
    """Context manager: the first SIGTERM/SIGINT asks the loop to save and stop after the current
    iteration; a second one exits at once (code 128 + signal), leaving the last checkpoint.

    ``requested()`` is a collective when distributed (every rank stops at the same iteration).
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> 'GracefulStop':
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None and is_dist() and self._previous:
            # A rank leaving on an error (typically: a peer died) races torchrun, which sends
            # SIGTERM to the survivors as soon as it sees the dead one; with the default handler
            # back, that signal could end this process before it reports why it stops. The
            # signals stay blocked: the process ends right after the report (engine.cli.leave).
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None:
            sys.stderr.write(f'\nSecond {name}: exiting now without saving; the last complete '
                             f'checkpoint is intact.\n')
            sys.stderr.flush()
            os._exit(128 + signum)
        self.signal_name = name
        sys.stderr.write(f'\n{name} received: saving a resumable state after this iteration '
                         f'(send it again to exit at once).\n')
        sys.stderr.flush()

    def requested(self, device: torch.device, poll: bool = True) -> bool:
        """Whether to stop now. Distributed, the ranks agree only when ``poll`` (a collective,
        which the loop runs every few iterations); between polls it answers False. In a single
        process the flag is read every time (it costs nothing)."""
        flag = self.signal_name is not None
        if is_dist():
            if not poll:
                return False
            tensor = torch.tensor([float(flag)], device=device)
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
            flag = bool(tensor.item())
        return flag
