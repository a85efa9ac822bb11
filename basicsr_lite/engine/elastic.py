"""Runs over several nodes and torchrun's elastic restarts: after a restart every rank resumes by
itself, and all ranks start from the same training state."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from basicsr_lite.errors import CheckpointError
from basicsr_lite.runtime.dist import all_gather_objects

logger = logging.getLogger('basicsr_lite')


def agree_on_auto_resume(opt: dict) -> list[int] | None:
    """Whether this worker group is one torchrun restarted: then it resumes as with
    ``--auto_resume`` on every rank. Returns ``[count, max]`` of the highest restart any rank
    saw, or None (also under ``--fast_dev_run``).

    Each agent counts its own restarts: the agent of a healthy node restarts its workers for a
    failed peer node without counting one, so its ranks see ``TORCHELASTIC_RESTART_COUNT=0``.
    The ranks share what they saw (a collective: call it after the process group is up); one
    restarted rank is enough."""
    seen = [r for r in all_gather_objects(opt.get('elastic_restart')) if r]
    return max(seen) if seen and not opt.get('fast_dev_run') else None


def check_same_state(found: tuple[Path, dict] | None) -> None:
    """Refuse ranks that would start from different states (a collective): each looks the state
    up in its own view of the experiment folder, which must be one folder shared by all nodes."""
    iters = all_gather_objects(None if found is None else found[1]['iter'])
    if len(set(iters)) > 1:
        seen = ', '.join(f'rank {rank}: {"none" if it is None else f"iteration {it}"}'
                         for rank, it in enumerate(iters))
        raise CheckpointError(f'The ranks found different training states to start from '
                              f'({seen}): path.experiments_root must be a folder every node '
                              f'shares (the same files on every node).')


def log_elastic_resume(restart: list[int] | None, found: tuple[Path, dict] | None) -> None:
    """One line after a torchrun restart (``restart``: from :func:`agree_on_auto_resume`):
    which restart, and where the run goes on from."""
    if restart is None:
        return
    count, most = restart
    where = (f"resuming from iteration {found[1]['iter']} ({found[0]})" if found is not None
             else 'no loadable training state: starting from iteration 0')
    logger.warning(f'torchrun restarted the workers (restart {count} of max {most}): {where}, '
                   f'as with --auto_resume.')


def warn_shared_store_restarts() -> None:
    """torchrun's c10d rendezvous shares its TCPStore with the workers by default; the workers
    of a restarted group can then read a previous round's addresses and fail to connect
    (pytorch/pytorch#135712, seen here about one restart in three). Said once, by rank 0."""
    if int(os.environ.get('TORCHELASTIC_MAX_RESTARTS') or 0) > 0 \
            and os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == 'True':
        logger.warning('torchrun --max-restarts is set with the shared rendezvous store: a '
                       'restarted group may fail to connect (pytorch/pytorch#135712). Start '
                       'torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment.')
