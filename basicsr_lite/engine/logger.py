"""Console / file logging, TensorBoard, and the periodic training message."""
from __future__ import annotations

import datetime
import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Any, Callable

LOGGER_NAME = 'basicsr_lite'


FORMAT = '%(asctime)s %(levelname)s: %(message)s'

# ``logger.info(text, extra=FILE_ONLY)``: for the log file, not the console (e.g. the options
# dump, which would push a run's messages and errors off the screen).
FILE_ONLY = {'file_only': True}


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, 'file_only', False)


class PendingLogFile(logging.handlers.BufferingHandler):
    """Keeps the records logged before the run's folder exists (the checks of the user's input
    run first), for :func:`attach_log_file` to write at the top of the log file."""

    def __init__(self) -> None:
        super().__init__(capacity=0)

    def shouldFlush(self, record: logging.LogRecord) -> bool:  # noqa: N802 (logging's name)
        return False


def get_root_logger(log_file: str | Path | None = None, rank: int = 0,
                    level: int = logging.INFO) -> logging.Logger:
    """The project logger: console, plus on rank 0 the log file (or, without one yet, a buffer
    that :func:`attach_log_file` writes into it later); errors only on other ranks."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.propagate = False
    for old in list(logger.handlers):  # a new run in the same process gets fresh handlers
        logger.removeHandler(old)
        old.close()
    console = logging.StreamHandler(sys.stderr)
    console.addFilter(_not_file_only)
    handlers: list[logging.Handler] = [console]
    if rank == 0:
        handlers.append(PendingLogFile() if log_file is None else logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
    logger.setLevel(level if rank == 0 else logging.ERROR)
    return logger


def attach_log_file(log_file: str | Path) -> None:
    """Start writing the log to ``log_file``, beginning with the records kept so far."""
    logger = logging.getLogger(LOGGER_NAME)
    pending = [h for h in logger.handlers if isinstance(h, PendingLogFile)]
    if not pending:
        return  # not rank 0
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter(FORMAT))
    for record in pending[0].buffer:
        file_handler.handle(record)
    logger.removeHandler(pending[0])
    logger.addHandler(file_handler)


class MessageLogger:
    """Formats ``[name..][epoch: 1, iter: 100, lr:(1.000e-04)] [eta: 0:01:00, time (data): 0.2
    (0.004)] l_pix: 2.0e-02`` and writes the losses and learning rates to TensorBoard."""

    def __init__(self, exp_name: str, total_iter: int, start_iter: int = 0,
                 tb_logger: Any = None) -> None:
        self.exp_name = exp_name
        self.total_iter = total_iter
        self.start_iter = start_iter
        self.tb_logger = tb_logger
        self.start_time = time.time()
        self.logger = logging.getLogger(LOGGER_NAME)

    def reset_start_time(self) -> None:
        self.start_time = time.time()

    def __call__(self, log_vars: dict[str, Any]) -> str:
        log_vars = dict(log_vars)
        epoch, current_iter = log_vars.pop('epoch'), log_vars.pop('iter')
        lrs = log_vars.pop('lrs')
        message = (f'[{self.exp_name[:5]}..][epoch:{epoch:3d}, iter:{current_iter:8,d}, lr:('
                   + ','.join(f'{lr:.3e}' for lr in lrs) + ')] ')
        if 'time' in log_vars:
            iter_time, data_time = log_vars.pop('time'), log_vars.pop('data_time')
            elapsed = time.time() - self.start_time
            done = max(current_iter - self.start_iter, 1)
            eta_s = elapsed / done * (self.total_iter - current_iter)
            message += (f'[eta: {datetime.timedelta(seconds=int(eta_s))}, '
                        f'time (data): {iter_time:.3f} ({data_time:.3f})] ')
        message += ' '.join(f'{k}: {v:.4e}' for k, v in log_vars.items())
        self.logger.info(message)
        if self.tb_logger is not None:
            for k, v in log_vars.items():
                self.tb_logger.add_scalar(f'losses/{k}', v, current_iter)
            for i, lr in enumerate(lrs):
                self.tb_logger.add_scalar(f'lr/group_{i}', lr, current_iter)
        return message


class IterationTimer:
    """Time spent waiting for data and in whole iterations: averages since the last log line
    (``window()``) and over the run (``summary()``)."""

    def __init__(self) -> None:
        self.tick = time.perf_counter()
        self.window_data = self.window_iter = 0.0
        self.window_count = 0
        self.total_data = self.total_iter = 0.0
        self.total_count = 0

    def restart(self) -> None:
        """Start timing the next iteration (call after work that is not an iteration's)."""
        self.tick = time.perf_counter()

    def fetch(self, next_batch: Callable[[], Any]) -> Any:
        """``next_batch()``, its duration counted as waiting for data."""
        began = time.perf_counter()
        batch = next_batch()
        waited = time.perf_counter() - began
        self.window_data += waited
        self.total_data += waited
        return batch

    def iteration_done(self) -> None:
        spent = time.perf_counter() - self.tick
        self.window_iter += spent
        self.total_iter += spent
        self.window_count += 1
        self.total_count += 1

    def window(self) -> dict[str, float]:
        """``{'time', 'data_time'}`` averaged since the last call."""
        n = max(self.window_count, 1)
        averages = {'time': self.window_iter / n, 'data_time': self.window_data / n}
        self.window_data = self.window_iter = 0.0
        self.window_count = 0
        return averages

    def summary(self) -> str | None:
        if not self.total_count or self.total_iter <= 0:
            return None
        n = self.total_count
        return (f'Data wait: {100 * self.total_data / self.total_iter:.1f}% of iteration time '
                f'(data {self.total_data / n:.4f} s / iteration {self.total_iter / n:.4f} s on '
                f'average over {n} iterations).')
