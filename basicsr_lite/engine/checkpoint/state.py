"""A run's training state on the ``state_dict()`` chain: saving it with the networks, finding
the state a run starts from (resume, torchrun restart, branch), and restoring it."""

from __future__ import annotations

import copy
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from basicsr_lite.engine.checkpoint.files import (load_networks, load_resume_state,
                                                  network_file_for_state, newest_state,
                                                  prune_checkpoints, save_networks,
                                                  weights_fingerprint)
from basicsr_lite.engine.elastic import (agree_on_auto_resume, check_same_state,
                                         log_elastic_resume, warn_shared_store_restarts)
from basicsr_lite.errors import CheckpointError, OptionError
from basicsr_lite.models.protocol import TrainableModel
from basicsr_lite.runtime.dist import (all_gather_objects, all_gather_tensor_state, barrier,
                                       get_dist_info, is_dist)
from basicsr_lite.runtime.optim_settings import (adopt_edited_schedule, adopt_settings,
                                                 current_settings, saved_settings,
                                                 scheduler_type_change, setting_changes)
from basicsr_lite.runtime.weights import save_torch
from basicsr_lite.utils.files import atomic_write
from basicsr_lite.utils.misc import get_rng_state, get_time_str, set_rng_state

logger = logging.getLogger('basicsr_lite')


@dataclass
class LoopState:
    """Where the loop is: iteration, epoch, batches already taken from this epoch (on each rank),
    and how many corrupt training images were skipped so far."""
    current_iter: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    corrupt_skipped: int = 0

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> 'LoopState':
        """From a training state (BasicSR's have only ``epoch`` and ``iter``)."""
        loop = state.get('loop') or {}
        return cls(state['iter'], state['epoch'], loop.get('batches_in_epoch', 0),
                   loop.get('corrupt_skipped', 0))


# ---- saving ----------------------------------------------------------------------------------------
def run_settings(opt: dict) -> dict:
    """Settings of the loop a training state keeps, to say what a resume or branch changes."""
    return {'batch_size_per_gpu': opt['datasets']['train']['batch_size_per_gpu'],
            'warmup_iter': opt['train']['warmup_iter']}


def training_state(model: TrainableModel, loop: LoopState, opt: dict, rank_states: dict,
                   hooks_state: dict | None = None,
                   network_files: dict[str, str] | None = None) -> dict:
    """The ``<iter>.state`` content: every stateful part's ``state_dict()`` under its key, and
    the names of the network files saved with it (``.pth`` or ``.safetensors``)."""
    return {'epoch': loop.epoch, 'iter': loop.current_iter, **model.state_dict(),
            'loop': loop.state_dict(), 'seed': opt['manual_seed'], **rank_states,
            'hooks': hooks_state or {}, 'speed': opt['train'].get('speed_choice'),
            'run_settings': run_settings(opt), 'network_files': network_files or {}}


def save_checkpoint(model: TrainableModel, loop: LoopState, opt: dict,
                    hooks_state: dict | None = None) -> None:
    """Networks + training state (with every rank's RNG state, the model's per-rank state and
    the hooks' state), then pruning of old ones. A collective: call it on every rank.
    Schedule-free optimizers are put in eval mode first: the network files hold the averaged
    weights (what validation saw), and the optimizer state records the mode."""
    model.set_weights_mode(train=False)
    rank_states = {'rng_states': all_gather_tensor_state(get_rng_state()),
                   'model_rank_states': all_gather_tensor_state(model.rank_state())}
    fingerprints = all_gather_objects(weights_fingerprint(model)) if is_dist() else []
    if get_dist_info()[0] == 0:
        logger.info(f'Saving models and training state at iter {loop.current_iter}'
                    f'{rank_agreement(fingerprints, loop.current_iter)}.')
        paths = opt['path']
        files = save_networks(model, opt, loop.current_iter, loop.current_iter)
        save_torch(training_state(model, loop, opt, rank_states, hooks_state,
                                  {label: path.name for label, path in files.items()}),
                   Path(paths['training_states']) / f'{loop.current_iter}.state')
        keep = opt['logger']['keep_last_checkpoints']
        if keep:
            removed = prune_checkpoints(paths['training_states'], paths['models'], keep,
                                        tuple(model.networks_to_save()))
            if removed:
                logger.info(f'Removed old checkpoints (keep_last_checkpoints {keep}): {removed}')
    barrier()


def save_latest(model: TrainableModel, opt: dict, current_iter: int) -> None:
    """The final networks as ``<label>_latest.pth`` (or ``.safetensors``; rank 0)."""
    save_networks(model, opt, 'latest', current_iter)


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


# ---- the state a run starts from -------------------------------------------------------------------
def find_resume_state(opt: dict, net_labels: tuple[str, ...] = ('net_g',)
                      ) -> tuple[Path, dict] | None:
    """``(path, state)`` of ``path.resume_state`` if set; else, with --auto_resume (or after a
    torchrun restart, on every rank), of the newest loadable state of this experiment (under
    ``path.experiments_root``) whose network files (``<label>_<iter>.pth`` for each of
    ``net_labels``) exist; else None. Each state file is read once. Distributed, every rank
    must find the same state (collectives: call it after the process group is up)."""
    warn_shared_store_restarts()
    restart = agree_on_auto_resume(opt)
    found = _lookup_resume_state(opt, net_labels, opt['auto_resume'] or restart is not None)
    check_same_state(found)
    log_elastic_resume(restart, found)
    return found


def _lookup_resume_state(opt: dict, net_labels: tuple[str, ...], auto_resume: bool
                         ) -> tuple[Path, dict] | None:
    if opt['path']['resume_state']:
        path = Path(opt['path']['resume_state'])
        return path, load_resume_state(path)
    if auto_resume:
        found = newest_state(opt['path']['training_states'], opt['path']['models'], net_labels)
        if found is not None:
            return found
    if opt['path'].get('branch_from'):  # (an interrupted branch resumes itself, above)
        return find_branch_source(Path(opt['path']['branch_from']), net_labels)
    return None


# ---- branching -------------------------------------------------------------------------------------
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


# ---- restoring -------------------------------------------------------------------------------------
def resumed_seed(opt: dict, state: dict) -> int:
    """The seed a resumed run continues with: the one it started with (it shapes the data
    order), whatever ``manual_seed`` says now."""
    saved = state.get('seed')
    if saved is not None and saved != opt['manual_seed']:
        logger.warning(f'Resuming with the run\'s seed {saved} (manual_seed is '
                       f"{opt['manual_seed']}).")
        return saved
    return opt['manual_seed']


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
    """Load every network the model saves (and its EMA copies), the model's state (optimizers,
    schedulers, scalers, ...), RNG states; return the loop position. The option file's
    optimizer and scheduler settings replace the saved ones on a branch (each change logged); a
    plain resume keeps the saved ones and warns about each one the option file changes, except
    that ``train.scheduler_change: adopt`` (``--new-schedule``) applies an edited scheduler from
    the saved position; a state saved with another scheduler type is refused without it."""
    check_optimizer_count(model, opt, state_path, state)
    load_networks(model, {label: network_file_for_state(state_path, state,
                                                        opt['path']['models'], label)
                          for label in model.networks_to_save()})
    new = current_settings(model.optimizers, model.optimizer_keys, model.schedulers)
    fresh_schedulers = [copy.deepcopy(s.state_dict()) for s in model.schedulers]
    retyped = scheduler_type_change(model.schedulers, state)
    if retyped and not branching and opt['train'].get('scheduler_change') != 'adopt':
        raise CheckpointError(
            f'{state_path} was trained with train.scheduler {retyped[0]}; the option file has '
            f'{retyped[1]}. A resume continues the saved schedule: restore its type, or apply '
            f'the new one from the saved position with --new-schedule (train.scheduler_change: '
            f'adopt), or start a new experiment from the state with --branch.')
    model.load_state_dict(state)
    changes = setting_changes(saved_settings(state, new, model.schedulers), new)
    if branching:
        adopt_settings(model.optimizers, model.schedulers, new, fresh_schedulers,
                       state['schedulers'])
        for line in changes:
            logger.info(f'Branch: {line} (the state had the first value).')
        changes = []
    elif opt['train'].get('scheduler_change') == 'adopt':
        adopted, changes = adopt_edited_schedule(model.schedulers, state, fresh_schedulers,
                                                 changes, retyped)
        if adopted:
            lrs = ', '.join(f'{g["lr"]:.4g}' for g in model.optimizers[0].param_groups)
            logger.info(f"New schedule from iter {state['iter']} (train.scheduler_change: "
                        f'adopt): {adopted}; lr now {lrs}.')
    if changes:
        logger.warning(f'Resuming {state_path}: the option file changes settings that a resume '
                       f'does not apply (it continues the saved run; --branch applies them): '
                       + '; '.join(changes) + '.')
    load_rank_states(model, state)
    logger.info(f"Resumed from {state_path}: epoch {state['epoch']}, iter {state['iter']}.")
    return LoopState.from_state(state)


def load_rank_states(model: TrainableModel, state: dict) -> None:
    """This rank's RNG state and the model's per-rank state, where the state has them."""
    rank = get_dist_info()[0]
    if rank < len(state.get('rng_states', [])):
        set_rng_state(state['rng_states'][rank])
    if rank < len(state.get('model_rank_states', [])):
        model.load_rank_state(state['model_rank_states'][rank])
