"""What a training run saves and restores beyond the networks: the loop's position, the seed,
RNG states of every rank; and the pruning of old checkpoints."""
from __future__ import annotations

import copy
import logging
import os
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from basicsr_lite.engine.experiment import network_file_for_state
from basicsr_lite.errors import CheckpointError, OptionError
from basicsr_lite.models.protocol import TrainableModel
from basicsr_lite.runtime.checkpoint import prune_checkpoints
from basicsr_lite.runtime.dist import (all_gather_objects, all_gather_tensor_state, barrier,
                                       get_dist_info, is_dist, torchrun_options)
from basicsr_lite.runtime.optim_settings import (adopt_settings, current_settings, saved_settings,
                                                 setting_changes)
from basicsr_lite.utils.misc import get_rng_state, set_rng_state

logger = logging.getLogger('basicsr_lite')


@dataclass
class LoopState:
    """Where the loop is: iteration, epoch, batches already taken from this epoch (on each rank),
    and how many corrupt training images were skipped so far."""
    current_iter: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    corrupt_skipped: int = 0


def save_checkpoint(model: TrainableModel, loop: LoopState, opt: dict,
                    hooks_state: dict | None = None) -> None:
    """Networks + training state (with every rank's RNG state, the model's per-rank state and
    the hooks' state), then pruning of old ones."""
    rng_states = all_gather_tensor_state(get_rng_state())
    model_rank_states = all_gather_tensor_state(model.rank_state())
    fingerprints = all_gather_objects(model.weights_fingerprint()) if is_dist() else []
    if get_dist_info()[0] == 0:
        logger.info(f'Saving models and training state at iter {loop.current_iter}'
                    f'{rank_agreement(fingerprints, loop.current_iter)}.')
        model.save(loop.epoch, loop.current_iter,
                   {'loop': asdict(loop), 'seed': opt['manual_seed'], 'rng_states': rng_states,
                    'model_rank_states': model_rank_states, 'hooks': hooks_state or {},
                    'speed': opt['train'].get('speed_choice'), 'run_settings': run_settings(opt)})
        keep = opt['logger']['keep_last_checkpoints']
        if keep:
            removed = prune_checkpoints(opt['path']['training_states'], opt['path']['models'], keep,
                                        tuple(model.networks_to_save()))
            if removed:
                logger.info(f'Removed old checkpoints (keep_last_checkpoints {keep}): {removed}')
    barrier()


def rank_agreement(fingerprints: list[str], current_iter: int) -> str:
    """'' when not distributed; a note that the ranks hold identical weights; or a warning (the
    checkpoint holds rank 0's weights) when they diverged."""
    if not fingerprints:
        return ''
    if len(set(fingerprints)) == 1:
        return f' (weights identical on all {len(fingerprints)} ranks)'
    differing = [rank for rank, fp in enumerate(fingerprints) if fp != fingerprints[0]]
    logger.warning(f'Iteration {current_iter}: the weights of rank(s) {differing} differ from '
                   f"rank 0's; the checkpoint holds rank 0's. Ranks diverge when a layer is "
                   f'not synchronised by DDP or an operation is not deterministic.')
    return ' (weights DIFFER between ranks)'


def adopt_saved_seed(opt: dict, state: dict) -> None:
    """A resumed run continues with the seed it started with (which shapes the data order)."""
    saved = state.get('seed')
    if saved is not None and saved != opt['manual_seed']:
        logger.warning(f'Resuming with the run\'s seed {saved} (manual_seed is '
                       f"{opt['manual_seed']}).")
        opt['manual_seed'] = saved


def run_settings(opt: dict) -> dict:
    """Settings of the loop a training state keeps, to say what a resume or branch changes."""
    return {'batch_size_per_gpu': opt['datasets']['train']['batch_size_per_gpu'],
            'warmup_iter': opt['train']['warmup_iter']}


def check_resume_state(opt: dict, model_type: str, state_path: Path, state: dict,
                       branching: bool) -> None:
    """Before anything is built or written: refuse a state of another model type or one already
    past ``train.total_iter`` (nothing to train); say when the batch size or the warm-up changed
    (both apply: the loop reads them from the option file)."""
    saved_type = state.get('model_type')
    if saved_type is not None and saved_type != model_type:
        raise CheckpointError(
            f'{state_path} is a training state of model_type {saved_type}, but this option '
            f"file trains model_type {opt['model_type']}. Resume it with its own "
            f'option file, or start a new run from its network files (path.pretrain_network_g).')
    total = opt['train']['total_iter']
    if state['iter'] > total:
        raise OptionError(
            f"train.total_iter is {total}, but the training state {state_path} is already at "
            f"iteration {state['iter']}: nothing to train. Set train.total_iter above "
            f"{state['iter']} to train on from it.")
    if state['iter'] == total:
        logger.info(f'{state_path} is at train.total_iter ({total}): nothing left to train; '
                    f'saving the final model and its validation.')
    saved = state.get('run_settings') or {}
    for key, now in run_settings(opt).items():
        was = saved.get(key)
        if was is not None and was != now:
            where = f"{'datasets.train' if key == 'batch_size_per_gpu' else 'train'}.{key}"
            (logger.info if branching else logger.warning)(
                f'{where}: {was} -> {now} (the state {state_path} was trained with {was}); the '
                f'run goes on with {now}, so it does not continue the saved run exactly.')


def check_optimizer_count(model: TrainableModel, opt: dict, state_path: Path, state: dict
                          ) -> None:
    """A state with other optimizers or schedulers than the model (of a BasicSR file, which
    does not record its model type): name the model type and the file."""
    saved = (len(state['optimizers']), len(state['schedulers']))
    if saved != (len(model.optimizers), len(model.schedulers)):
        raise CheckpointError(
            f'{state_path} holds {saved[0]} optimizer(s) and {saved[1]} scheduler(s); a '
            f"{opt['model_type']} with this option file has {len(model.optimizers)} "
            f"({', '.join(model.optimizer_keys)}) and {len(model.schedulers)}. Was it saved by "
            f'another model_type (e.g. a GAN with optim_d), or did train.scheduler change?')


def restore(model: TrainableModel, opt: dict, state_path: Path, state: dict,
            branching: bool = False) -> LoopState:
    """Load every network the model saves (and its EMA copies), optimizers, schedulers, scalers,
    RNG states; return the loop position. The option file's optimizer and scheduler settings
    replace the saved ones on a branch (each change logged); a plain resume keeps the saved ones
    and warns about each one the option file changes."""
    check_optimizer_count(model, opt, state_path, state)
    model.load_networks({label: network_file_for_state(state_path, state['iter'],
                                                       opt['path']['models'], label)
                         for label in model.networks_to_save()})
    new = current_settings(model.optimizers, model.optimizer_keys, model.schedulers)
    fresh_schedulers = [copy.deepcopy(s.state_dict()) for s in model.schedulers]
    model.resume_training(state)
    changes = setting_changes(saved_settings(state, new, model.schedulers), new)
    if branching:
        adopt_settings(model.optimizers, model.schedulers, new, fresh_schedulers,
                       state['schedulers'])
        for line in changes:
            logger.info(f'Branch: {line} (the state had the first value).')
    elif changes:
        logger.warning(f'Resuming {state_path}: the option file changes settings that a resume '
                       f'does not apply (it continues the saved run; --branch applies them): '
                       + '; '.join(changes) + '.')
    rank = get_dist_info()[0]
    if rank < len(state.get('rng_states', [])):
        set_rng_state(state['rng_states'][rank])
    if rank < len(state.get('model_rank_states', [])):
        model.load_rank_state(state['model_rank_states'][rank])
    logger.info(f"Resumed from {state_path}: epoch {state['epoch']}, iter {state['iter']}.")
    loop = state.get('loop') or {}  # BasicSR states have only epoch and iter
    return LoopState(state['iter'], state['epoch'], loop.get('batches_in_epoch', 0),
                     loop.get('corrupt_skipped', 0))


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
