"""Run set-up shared by train.py and test.py: device, processes, folders, option copy; the
command that resumes a run."""
from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path

import torch

from basicsr_lite.engine.logger import attach_log_file
from basicsr_lite.errors import OptionError, UserError
from basicsr_lite.runtime.dist import barrier, get_dist_info, init_dist, torchrun_options
from basicsr_lite.utils.files import atomic_write, remove_stale_temp_files
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
    if num_gpu == 0:
        return torch.device('cpu')
    return torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0)) % available)


def start_processes(opt: dict) -> torch.device:
    """Launcher check, device, process group (after them: a config error is never a hang); the
    process group must agree with the ``rank`` and ``world_size`` that parsing read from the
    launcher's environment (the options are read-only from here on)."""
    check_launcher(opt)
    device = select_device(opt)
    if opt['dist']:
        params = opt['dist_params']
        init_dist(opt['launcher'], params['backend'], params['port'], params['timeout'])
    if get_dist_info() != (opt['rank'], opt['world_size']):
        raise OptionError(f"This process is rank {get_dist_info()[0]} of {get_dist_info()[1]}, "
                          f"but its environment said rank {opt['rank']} of "
                          f"{opt['world_size']} (RANK / WORLD_SIZE, or SLURM_PROCID / "
                          f"SLURM_NTASKS): start it with torchrun or srun.")
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


def resume_command(opt: dict) -> str:
    """The command that continues this run as it was started: the same script and arguments plus
    ``--auto_resume``, under torchrun with the same world size (or srun) when distributed. Over
    several nodes: this node's torchrun command with all its options (rendezvous included), and
    what to run on the other nodes."""
    script = sys.argv[0] if Path(sys.argv[0]).name in ('train.py', 'basicsr-train') else 'train.py'
    args = [a for a in opt['command_args'] if a != '--auto_resume'] + ['--auto_resume']
    command = shlex.join([script, *args])
    python = 'python ' if script.endswith('.py') else ''
    if opt['launcher'] == 'pytorch':
        nodes = int(os.environ.get('GROUP_WORLD_SIZE', 1))
        per_node = int(os.environ.get('LOCAL_WORLD_SIZE', opt['world_size']))
        if nodes > 1:
            options = torchrun_options(sys.argv[0])
            launcher = (shlex.join(['torchrun', *options]) if options is not None else
                        f'torchrun --nnodes={nodes} --nproc_per_node={per_node} <the same '
                        f'rendezvous options>')
            return (f'{launcher} {command}  (the command of the node of rank 0: on every node, '
                    f'rerun the command that node was started with, plus --auto_resume)')
        return f'torchrun --nproc_per_node={per_node} {command}'
    if opt['launcher'] == 'slurm':
        return f"srun <the same job options: {opt['world_size']} tasks> {python}{command}"
    return f'{python}{command}'
