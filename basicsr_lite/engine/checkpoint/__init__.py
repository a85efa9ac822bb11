"""A run's checkpoints in one place: saving, finding, restoring, branching and pruning.

A checkpoint is ``models/<label>_<iter>.pth`` per network (``{'params': ..., 'params_ema':
...}``, BasicSR's layout; ``.safetensors`` with metadata when ``logger.save_format:
safetensors``, see ``metadata``) and ``training_states/<iter>.state``, built from the
``state_dict()`` of each stateful part, the way fvcore's ``Checkpointer`` treats them all
alike::

    epoch, iter                    the loop's position (BasicSR's keys), with 'loop' (LoopState)
    model_type, optimizers, ...    BaseModel.state_dict(): optimizers, schedulers, scalers, best
                                   metrics, skipped steps (and what a model adds, e.g. g_iters)
    rng_states, model_rank_states  per rank: random generators, the model's rank_state()
    hooks                          Hooks.state_dict() (early stopping, best checkpoints, ...)
    seed, speed, run_settings      the run's seed, speed choice and loop settings
    network_files                  {label: file name} of the network files saved with it
                                   (older and BasicSR states: <label>_<iter> in either format)

Nothing else in the framework knows these paths.

Two modules: ``files`` (the file layout: network files, finding states, pruning) and ``state``
(the state_dict chain: saving, the state a run starts from, branching, restoring). Import from
here.
"""
from __future__ import annotations

from basicsr_lite.engine.checkpoint.files import (check_training_state, find_network_file,
                                                  find_resumable_state,
                                                  last_checkpoint_description, load_networks,
                                                  load_resume_state, network_file,
                                                  network_file_for_state, newest_state,
                                                  prune_checkpoints, save_format, save_networks,
                                                  save_weights, state_iterations,
                                                  weights_fingerprint, write_networks)
from basicsr_lite.engine.checkpoint.state import (check_optimizer_count, check_resume_state,
                                                  find_branch_source, find_resume_state,
                                                  is_branch_start, load_rank_states, LoopState,
                                                  rank_agreement, record_branch, restore,
                                                  resumed_seed, run_settings, save_checkpoint,
                                                  save_latest, training_state)

__all__ = [
    'check_optimizer_count',
    'check_resume_state',
    'check_training_state',
    'find_branch_source',
    'find_network_file',
    'find_resumable_state',
    'find_resume_state',
    'is_branch_start',
    'last_checkpoint_description',
    'load_networks',
    'load_rank_states',
    'load_resume_state',
    'LoopState',
    'network_file',
    'network_file_for_state',
    'newest_state',
    'prune_checkpoints',
    'rank_agreement',
    'record_branch',
    'restore',
    'resumed_seed',
    'run_settings',
    'save_checkpoint',
    'save_format',
    'save_latest',
    'save_networks',
    'save_weights',
    'state_iterations',
    'training_state',
    'weights_fingerprint',
    'write_networks',
]
