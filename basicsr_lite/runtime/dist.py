"""Distributed set-up from torchrun's (or SLURM's) environment, and small collectives."""
from __future__ import annotations

import datetime
import io
import logging
import os
import subprocess
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from basicsr_lite.errors import OptionError


def init_dist(launcher: str, backend: str | None = None, port: int | None = None,
              timeout_s: float = 1800) -> None:
    """Join the process group described by the environment.

    ``launcher``: 'pytorch' (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) or
    'slurm' (srun sets SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST). The backend defaults to NCCL
    with CUDA and gloo without; each process uses the GPU of its local rank.
    """
    if launcher == 'slurm':
        _env_from_slurm(port)
    elif launcher != 'pytorch':
        raise OptionError(f"--launcher must be 'none', 'pytorch' or 'slurm'; got '{launcher}'.")
    required = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
    missing = [k for k in required if k not in os.environ]
    if missing:
        raise OptionError(f'--launcher {launcher} needs the environment variables {missing}; '
                          f'start the run with torchrun (or srun for slurm).')
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
    if backend == 'nccl' and not use_cuda:
        # Every BasicSR option file says nccl; on a CPU machine that can only be meant as gloo.
        logging.getLogger('basicsr_lite').warning(
            'dist_params.backend is nccl but CUDA is not available: using gloo.')
        backend = 'gloo'
    backend = backend or ('nccl' if use_cuda else 'gloo')
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))


def _env_from_slurm(port: int | None) -> None:
    node_list = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
    num_gpus = max(torch.cuda.device_count(), 1)
    os.environ.setdefault('MASTER_ADDR', addr)
    os.environ.setdefault('MASTER_PORT', str(port or 29500))
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    # The task's index on its node (several nodes: SLURM_PROCID counts over all of them).
    local = os.environ.get('SLURM_LOCALID')
    os.environ['LOCAL_RANK'] = local if local is not None else \
        str(int(os.environ['SLURM_PROCID']) % num_gpus)


def elastic_restart() -> list[int] | None:
    """``[restart count, max restarts]`` when torchrun restarted this process's worker group
    (``TORCHELASTIC_RESTART_COUNT`` > 0, with ``--max-restarts``); None otherwise. The count is
    the local agent's: an agent that restarts its healthy workers because a peer node's failed
    counts no restart (see :func:`basicsr_lite.engine.elastic.agree_on_auto_resume`)."""
    count = int(os.environ.get('TORCHELASTIC_RESTART_COUNT') or 0)
    if count <= 0:
        return None
    return [count, int(os.environ.get('TORCHELASTIC_MAX_RESTARTS') or count)]


TORCHRUN_NAMES = ('torchrun', 'torch.distributed.run', 'torch.distributed.launch')


def torchrun_options(script: str) -> list[str] | None:
    """The options of the torchrun that started this process (``--nnodes=2 --rdzv_backend=c10d
    ...``), read from the parent's command line (Linux ``/proc``): the arguments between
    torchrun's name and ``script``. None when not under torchrun or not readable."""
    argv = parent_argv() if 'TORCHELASTIC_RUN_ID' in os.environ else None
    if argv is None:
        return None
    starts = [i for i, arg in enumerate(argv) if arg.endswith(TORCHRUN_NAMES)]
    if not starts or script not in argv[starts[0] + 1:]:
        return None
    return argv[starts[0] + 1:argv.index(script, starts[0] + 1)]


def parent_argv() -> list[str] | None:
    """The parent process's command line (None where /proc cannot tell)."""
    try:
        with open(f'/proc/{os.getppid()}/cmdline', 'rb') as file:
            return file.read().decode().split('\0')
    except (OSError, UnicodeDecodeError):
        return None


def get_dist_info() -> tuple[int, int]:
    """(rank, world_size); (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_dist() -> bool:
    return get_dist_info()[1] > 1


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (just ``[obj]`` when not distributed)."""
    if not is_dist():
        return [obj]
    gathered: list[Any] = [None] * get_dist_info()[1]
    dist.all_gather_object(gathered, obj)
    return gathered


def all_gather_tensor_state(obj: Any) -> list[Any]:
    """Like :func:`all_gather_objects` for objects holding tensors (e.g. RNG states): they travel
    as ``torch.save`` bytes and are read back with ``weights_only=True``. Not distributed:
    ``[obj]`` itself (no copy through bytes: a model's state may be large)."""
    if not is_dist():
        return [obj]
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return [torch.load(io.BytesIO(data), weights_only=True)
            for data in all_gather_objects(buffer.getvalue())]


def reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar values over ranks (for logging the losses of all ranks)."""
    if not is_dist() or not values:
        return values
    tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    tensor /= get_dist_info()[1]
    return dict(zip(values, tensor.tolist()))


def destroy_dist() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def unwrap(net: nn.Module) -> nn.Module:
    """The plain network inside DDP and torch.compile wrappers (or the network itself)."""
    while True:
        if isinstance(net, DistributedDataParallel):
            net = net.module
        elif isinstance(getattr(net, '_orig_mod', None), nn.Module):  # torch.compile's wrapper
            net = net._orig_mod
        else:
            return net
