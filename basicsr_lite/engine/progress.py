"""A training progress bar (iterations, ETA, the last logged losses) on an interactive terminal;
log lines are printed above it. Not a terminal (CI, nohup, a pipe): plain log lines only."""
from __future__ import annotations

import logging
import sys
from typing import Any

from basicsr_lite.engine.hooks import Hook, Run
from basicsr_lite.engine.logger import LOGGER_NAME


class BarSafeHandler(logging.Handler):
    """Console log records written through ``tqdm.write``, so the bar stays below them."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging's contract: never raise from emit
            self.handleError(record)


class ProgressBar(Hook):
    """``logger.progress_bar``: 'auto' (on a terminal), true or false; rank 0 only."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.swapped: list[tuple[logging.Handler, logging.Handler]] = []

    @staticmethod
    def wanted(opt: dict) -> bool:
        setting = opt['logger']['progress_bar']
        if opt.get('rank', 0) != 0 or setting is False:
            return False
        return setting is True or sys.stderr.isatty()

    def on_train_start(self, run: Run) -> None:
        from tqdm import tqdm
        total = run.opt['train']['total_iter']
        self.bar = tqdm(total=total, initial=run.loop.current_iter, unit='it', file=sys.stderr,
                        dynamic_ncols=True, desc=run.opt['name'][:20])
        logger = logging.getLogger(LOGGER_NAME)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:  # the console (not the log file)
                replacement = BarSafeHandler(handler.level)
                replacement.setFormatter(handler.formatter)
                logger.removeHandler(handler)
                logger.addHandler(replacement)
                self.swapped.append((handler, replacement))

    def on_iter_end(self, run: Run, it: int, log: dict[str, Any] | None) -> None:
        if self.bar is None:
            return
        self.bar.update(it - self.bar.n)
        if log is not None:
            losses = {k: f'{v:.3e}' for k, v in log.items()
                      if k not in ('epoch', 'iter', 'lrs', 'time', 'data_time')}
            self.bar.set_postfix(losses, refresh=False)

    def on_train_end(self, run: Run, finished: bool) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        logger = logging.getLogger(LOGGER_NAME)
        for original, replacement in self.swapped:
            logger.removeHandler(replacement)
            logger.addHandler(original)
        self.swapped = []
