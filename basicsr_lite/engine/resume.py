"""What a training run saves and restores beyond the networks: the loop's position, the seed,
RNG states of every rank; and the pruning of old checkpoints."""
from __future__ import annotations

import logging
import os
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from basicsr_lite.engine.experiment import network_file_for_state
from basicsr_lite.models.protocol import TrainableModel
from basicsr_lite.runtime.checkpoint import prune_checkpoints
from basicsr_lite.runtime.dist import (all_gather_objects, all_gather_tensor_state, barrier,
                                       get_dist_info, is_dist)
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
                    'model_rank_states': model_rank_states, 'hooks': hooks_state or {}})
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


def restore(model: TrainableModel, opt: dict, state_path: Path, state: dict) -> LoopState:
    """Load every network the model saves (and its EMA copies), optimizers, schedulers, scalers,
    RNG states; return the loop position."""
    model.load_networks({label: network_file_for_state(state_path, state['iter'],
                                                       opt['path']['models'], label)
                         for label in model.networks_to_save()})
    model.resume_training(state)
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
    ``--auto_resume``, under torchrun with the same world size (or srun) when distributed."""
    script = sys.argv[0] if Path(sys.argv[0]).name in ('train.py', 'basicsr-train') else 'train.py'
    args = [a for a in opt['command_args'] if a != '--auto_resume'] + ['--auto_resume']
    command = shlex.join([script, *args])
    python = 'python ' if script.endswith('.py') else ''
    if opt['launcher'] == 'pytorch':
        nodes = int(os.environ.get('GROUP_WORLD_SIZE', 1))
        per_node = int(os.environ.get('LOCAL_WORLD_SIZE', opt['world_size']))
        if nodes > 1:
            return (f'torchrun --nnodes={nodes} --nproc_per_node={per_node} {command} (on every '
                    f'node, with the same rendezvous options)')
        return f'torchrun --nproc_per_node={per_node} {command}'
    if opt['launcher'] == 'slurm':
        return f"srun <the same job options: {opt['world_size']} tasks> {python}{command}"
    return f'{python}{command}'
