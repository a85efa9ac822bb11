"""Run set-up shared by train.py and test.py: device, folders, option copy, resume state."""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import torch

from basicsr_lite.engine.elastic import (agree_on_auto_resume, check_same_state,
                                         log_elastic_resume, warn_shared_store_restarts)
from basicsr_lite.engine.logger import attach_log_file
from basicsr_lite.errors import CheckpointError, OptionError, UserError
from basicsr_lite.runtime.checkpoint import (atomic_write, find_resumable_state, load_torch,
                                             remove_stale_temp_files)
from basicsr_lite.runtime.dist import barrier, get_dist_info, init_dist
from basicsr_lite.utils.misc import get_time_str

logger = logging.getLogger('basicsr_lite')


def check_launcher(opt: dict) -> None:
    """Refuse a multi-process start (torchrun sets WORLD_SIZE) without ``--launcher``: every
    process would otherwise train alone and write the same experiment folder."""
    world_size = int(os.environ.get('WORLD_SIZE', 1))
    if world_size > 1 and not opt['dist']:
        raise OptionError(f'This process is one of {world_size} (WORLD_SIZE is set, e.g. by '
                          f'torchrun) but --launcher is none; add --launcher pytorch.')


def select_device(opt: dict) -> torch.device:
    """Resolve ``num_gpu`` ('auto' or a count) into the device of this process (option
    validation has already refused a count without CUDA)."""
    available = torch.cuda.device_count()
    num_gpu = opt['num_gpu']
    if num_gpu == 'auto':
        num_gpu = 1 if available else 0
    if num_gpu > 1 and not opt['dist']:
        raise OptionError(f'num_gpu is {num_gpu}: several GPUs need a distributed launch, e.g. '
                          f'torchrun --nproc_per_node={num_gpu} train.py -opt ... --launcher '
                          f'pytorch (or set num_gpu: 1).')
    opt['num_gpu'] = num_gpu
    if num_gpu == 0:
        return torch.device('cpu')
    return torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0)) % available)


def start_processes(opt: dict) -> torch.device:
    """Launcher check, device, process group (after them: a config error is never a hang);
    records ``rank`` and ``world_size`` in ``opt``."""
    check_launcher(opt)
    device = select_device(opt)
    if opt['dist']:
        params = opt['dist_params']
        init_dist(opt['launcher'], params['backend'], params['port'], params['timeout'])
    opt['rank'], opt['world_size'] = get_dist_info()
    return device


def prepare_folder(root: str | Path, keep_existing: bool) -> None:
    """Create ``root``; an existing one is renamed ``<root>_archived_<time>`` unless kept."""
    root = Path(root)
    if root.exists() and not keep_existing:
        archived = root.with_name(f'{root.name}_archived_{get_time_str()}')
        try:
            os.rename(root, archived)
        except OSError as err:
            raise UserError(f'The output folder {root} exists and could not be renamed to '
                            f'{archived}: {err.strerror}. Nothing was changed.') from err
        print(f'Experiment folder {root} exists; renamed to {archived}', flush=True)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f'Cannot create the output folder {root}: {err.strerror}.') from err
    if not os.access(root, os.W_OK):
        raise UserError(f'The output folder {root} is not writable.')


def open_run_folder(opt: dict, resuming: bool = False) -> None:
    """Rank 0 creates the run's folder (``experiments_root`` for training, ``results_root`` for
    testing; an existing one is archived unless resuming), removes temp files of interrupted
    saves, copies the option file and starts the log file; every rank waits for it. Call it only
    once every check of the user's input has passed: before it, nothing on disk is touched."""
    paths = opt['path']
    if opt['rank'] == 0:
        prepare_folder(paths['experiments_root' if opt['is_train'] else 'results_root'],
                       keep_existing=resuming)
        for key in ('models', 'training_states') if opt['is_train'] else ():
            os.makedirs(paths[key], exist_ok=True)
            remove_stale_temp_files(paths[key])
        copy_option_file(opt, resuming)
        phase = 'train' if opt['is_train'] else 'test'
        attach_log_file(Path(paths['log']) / f"{phase}_{opt['name']}_{get_time_str()}.log")
    barrier()


def copy_option_file(opt: dict, resuming: bool) -> Path:
    """Keep the option file (and the command line) beside the run's outputs."""
    src = Path(opt['opt_path'])
    name = src.name if not resuming else f'{src.stem}_resume_{get_time_str()}{src.suffix}'
    dest = Path(opt['path']['log']) / name
    header = f'# command: {" ".join(sys.argv)}\n'.encode()
    atomic_write(dest, lambda f: f.write(header + src.read_bytes()))
    return dest


def find_resume_state(opt: dict, net_labels: tuple[str, ...] = ('net_g',)
                      ) -> tuple[Path, dict] | None:
    """``(path, state)`` of ``path.resume_state`` if set; else, with --auto_resume (or after a
    torchrun restart, on every rank), of the newest loadable state of this experiment (under
    ``path.experiments_root``) whose network files (``<label>_<iter>.pth`` for each of
    ``net_labels``) exist; else None. Each state file is read once. Distributed, every rank
    must find the same state (collectives: call it after the process group is up)."""
    warn_shared_store_restarts()
    agree_on_auto_resume(opt)
    found = _lookup_resume_state(opt, net_labels)
    check_same_state(found)
    log_elastic_resume(opt, found)
    return found


def _lookup_resume_state(opt: dict, net_labels: tuple[str, ...]) -> tuple[Path, dict] | None:
    if opt['path']['resume_state']:
        path = Path(opt['path']['resume_state'])
        return path, load_resume_state(path)
    if opt['auto_resume']:
        found = newest_state(opt['path']['training_states'], opt['path']['models'], net_labels)
        if found is not None:
            return found
    if opt['path'].get('branch_from'):  # (an interrupted branch resumes itself, above)
        return find_branch_source(Path(opt['path']['branch_from']), net_labels)
    return None


def newest_state(training_states: str | Path, models: str | Path,
                 net_labels: tuple[str, ...]) -> tuple[Path, dict] | None:
    """``(path, state)`` of the newest loadable training state with its network files, checked
    to be a training state; None if there is none."""
    found = find_resumable_state(training_states, models, net_labels)
    return None if found is None else (found[0], check_training_state(*found))


def find_branch_source(source: Path, net_labels: tuple[str, ...]) -> tuple[Path, dict]:
    """The state to branch from: ``source`` itself (a ``.state`` file), or the newest loadable
    state of the experiment folder ``source``."""
    if source.is_file():
        return source, load_resume_state(source)
    found = newest_state(source / 'training_states', source / 'models', net_labels)
    if found is None:
        raise CheckpointError(f'path.branch_from: the experiment {source} has no loadable '
                              f'training state (with its network files) to branch from.')
    return found


def is_branch_start(opt: dict, state_path: Path) -> bool:
    """Whether the run starts from ``state_path`` as a branch (a state of another experiment
    through ``path.branch_from``), not as a resume of its own."""
    own = Path(opt['path']['training_states']).resolve()
    return bool(opt['path'].get('branch_from')) and state_path.resolve().parent != own


def network_file_for_state(state_path: Path, current_iter: int, models_dir: str,
                           label: str = 'net_g') -> Path:
    """The ``<label>_<iter>.pth`` saved with a training state: beside the state's own
    experiment if there, else in this experiment's models folder."""
    sibling = state_path.parent.parent / 'models' / f'{label}_{current_iter}.pth'
    if sibling.is_file():
        return sibling
    own = Path(models_dir) / f'{label}_{current_iter}.pth'
    if own.is_file():
        return own
    raise CheckpointError(f'The network file for the training state {state_path} is missing: '
                          f'looked for {sibling} and {own}.')


def check_training_state(path: Path, state: dict) -> dict:
    for key in ('iter', 'epoch', 'optimizers', 'schedulers'):
        if key not in state:
            raise CheckpointError(f"{path} is not a training state: it has no '{key}' entry.")
    return state


def load_resume_state(path: Path) -> dict:
    return check_training_state(path, load_torch(path))


def record_branch(opt: dict, state_path: Path, state: dict) -> dict:
    """Write ``branch.json`` (where this run came from) in the new run's folder (rank 0) and
    return the record, which every training state of the branch keeps."""
    record = {'from_state': str(state_path.resolve()),
              'from_experiment': str(state_path.resolve().parent.parent),
              'iter': state['iter'], 'epoch': state['epoch'], 'time': get_time_str(),
              'command': ' '.join(sys.argv),
              'parent': (state.get('hooks') or {}).get('branched_from')}
    if opt['rank'] == 0:
        atomic_write(Path(opt['path']['experiments_root']) / 'branch.json',
                     lambda f: f.write(json.dumps(record, indent=2).encode()))
    logger.info(f"Branched from {record['from_state']} (iter {state['iter']}) as a new "
                f"experiment in {opt['path']['experiments_root']}.")
    return record
