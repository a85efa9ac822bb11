"""Running an entry point: user errors become one clear message and exit code 2."""
from __future__ import annotations

import functools
import logging
import os
import sys
import time
from typing import Callable, Sequence

from basicsr_lite.errors import UserError
from basicsr_lite.runtime.dist import barrier, destroy_dist, is_dist

OTHER_RANKS_EXIT_DELAY_S = 5.0


def user_message(err: BaseException) -> str:
    """The message of ``err``; for an error re-raised from a DataLoader worker, only its last line
    (the worker's own traceback is noise for a user error)."""
    text = str(err)
    if 'Original Traceback' in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(': ', 1)[1] if ': ' in last else last
    return text


def run_cli(pipeline: Callable[[Sequence[str] | None], None],
            argv: Sequence[str] | None = None) -> int:
    try:
        pipeline(argv)
        barrier()  # ranks leave together: tearing down gloo while a peer still works can abort
        code = 0
    except UserError as err:
        if int(os.environ.get('RANK', 0)) == 0:
            print(f'Error: {user_message(err)}', file=sys.stderr, flush=True)
        else:
            # Every rank meets the same option/data error; torchrun stops the others as soon as
            # one exits, so give rank 0 the time to print it (once) first.
            time.sleep(OTHER_RANKS_EXIT_DELAY_S)
        code = 2
    except BaseException:
        destroy_dist()
        raise
    return leave(code)


def leave(code: int) -> int:
    """``code`` for the caller; a rank of a distributed run ends its process here instead.

    Tearing the process group down (or letting interpreter finalisation do it) races with the
    peer doing the same: gloo's worker threads can then abort the process ("terminate called
    without an active exception", SIGABRT) after all work is done and saved, so torchrun reports
    a failure. Everything the run wrote is closed by now (checkpoints are atomic files, the
    TensorBoard writer is closed, loader workers are shut down with their loader); the logs are
    flushed here, then the process exits without running destructors."""
    if not is_dist():
        return code
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def tool_main(func: Callable[..., int]) -> Callable[..., int]:
    """For the ``tools/`` scripts: a user error becomes ``Error: <message>`` and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> int:
        try:
            return func(*args, **kwargs)
        except UserError as err:
            print(f'Error: {user_message(err)}', file=sys.stderr)
            return 2

    return wrapper
