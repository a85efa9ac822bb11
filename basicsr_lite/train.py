"""Training entry point: ``python train.py -opt options/train/x.yml [--auto_resume]``."""
from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from basicsr_lite.data.loading.loaders import build_eval_loaders, build_train_loader
from basicsr_lite.engine.builtin_hooks import BranchOrigin, PixelFormats, build_hooks
from basicsr_lite.engine.checkpoint import (LoopState, check_resume_state, find_resume_state,
                                           is_branch_start, last_checkpoint_description,
                                           record_branch, restore, resumed_seed, save_latest)
from basicsr_lite.engine.cli import run_cli
from basicsr_lite.engine.constraints import check_constraints, eval_datasets_by_key
from basicsr_lite.engine.experiment import open_run_folder, start_processes
from basicsr_lite.engine.hooks import Hook, Hooks, Run
from basicsr_lite.engine.logger import FILE_ONLY, get_root_logger
from basicsr_lite.engine.loop import train_loop
from basicsr_lite.engine.signals import GracefulStop
from basicsr_lite.engine.trackers import check_trackers, init_trackers
from basicsr_lite.engine.validate import bicubic_baseline, check_metrics, format_table, validate
from basicsr_lite.errors import TrainingError, first_line
from basicsr_lite.models import MODEL_REGISTRY, build_model
from basicsr_lite.models.protocol import TrainableModel
from basicsr_lite.options import dict2str, parse_options
from basicsr_lite.runtime.dist import barrier
from basicsr_lite.runtime.speed import set_backend_flags
from basicsr_lite.runtime.speed_probe import resolve_speed_options
from basicsr_lite.utils.misc import set_random_seed

logger = logging.getLogger('basicsr_lite')


def final_report(model: TrainableModel, opt: dict, val_loaders, tb_logger,
                 current_iter: int, last_validation: tuple[int, dict] | None = None) -> None:
    """Print the final model's validation next to bicubic upsampling of the same images (next
    to the input images at scale 1).

    ``last_validation``: the loop's validation of ``current_iter`` (which every hook saw), used
    as is; the model is validated here only without one (a run resumed from its final state)."""
    if opt['val'] is None or not val_loaders:
        return
    metrics_opt = opt['val']['metrics']
    done = last_validation[1] if last_validation and last_validation[0] == current_iter else {}
    for name, val_loader in val_loaders.items():
        ours = done.get(name) or validate(model, val_loader, name, current_iter, tb_logger,
                                          opt['val']['save_img'])
        if not ours.means:  # no metrics, or no GT images to score against
            continue
        bicubic = bicubic_baseline(val_loader, name, opt['scale'], metrics_opt,
                                   opt['val']['tensor_metrics'])
        # (at scale 1, e.g. denoising, the baseline is the degraded input itself)
        baseline = 'input' if opt['scale'] == 1 else 'bicubic'
        table = format_table({'model': ours.means, baseline: bicubic.means})
        logger.info(f'Final validation on {name} ({len(ours.rows)} images):\n{table}')


PEER_FAILURE_MARKERS = ('Connection reset', 'Connection closed', 'Broken pipe', 'gloo', 'NCCL',
                        'timed out', 'Timeout')


def is_peer_failure(err: RuntimeError) -> bool:
    """Whether a RuntimeError comes from a collective whose peer died or hung."""
    dist_error = getattr(torch.distributed, 'DistError', ())
    return isinstance(err, dist_error) or any(m in str(err) for m in PEER_FAILURE_MARKERS)


def lost_peer_error(err: RuntimeError, opt: dict) -> TrainingError:
    return TrainingError(f'Another process of this distributed run stopped or became unreachable '
                         f'({first_line(err)[:200]}); exiting. Last good checkpoint: '
                         f"{last_checkpoint_description(opt['path']['training_states'])}.")


def train_pipeline(argv: Sequence[str] | None = None, hooks: list[Hook] | None = None) -> None:
    """``train.py``: parse the options and train. ``hooks``: extra hooks given in code."""
    opt, args = parse_options(argv, is_train=True)
    if args.plan is not None:  # one process plans for all (the budget is per process)
        from basicsr_lite.plan.run import run_plan
        if opt['rank'] == 0:
            run_plan(opt, args.plan, args.memory, args.effective_batch)
        return
    try:
        train_run(opt, hooks)
        if opt['fast_dev_run']:
            barrier()  # every rank is done with the folder
            if opt['rank'] == 0:
                print('--fast_dev_run: the pipeline works.', file=sys.stderr, flush=True)
    finally:
        if opt['fast_dev_run'] and opt['rank'] == 0:
            remove_fast_dev_run_folder(opt)


def train_run(opt: dict, extra_hooks: list[Hook] | None = None) -> None:
    device = start_processes(opt)
    get_root_logger(rank=opt['rank'])  # the log file starts once the folder exists
    logger.info(f'basicsr_lite, torch {torch.__version__}, device {device}, '
                f"world size {opt['world_size']}")
    logger.info(f'Options:\n{dict2str(opt)}', extra=FILE_ONLY)  # the console keeps to messages
    # Everything that can fail on the user's input (resume state, datasets, networks, weight
    # files, constructor arguments) runs before anything on disk is created or renamed.
    resume, branching = find_start(opt)
    opt = run_options(opt, resumed_seed(opt, resume[1]) if resume else opt['manual_seed'])
    set_random_seed(opt['manual_seed'] + opt['rank'])
    set_backend_flags(opt['train'])
    loader, sampler = build_train_loader(opt, device)
    val_loaders = build_eval_loaders(opt, ('val',))
    pixel_formats = check_data(opt, loader, val_loaders, resume if not branching else None)
    # amp / channels_last that would make this machine slower are dropped (or stop the run)
    resolve_speed_options(opt, device, resume[1].get('speed') if resume else None)
    model = build_model(opt, device)
    model.last_checkpoint = lambda: last_checkpoint_description(opt['path']['training_states'])
    hooks = build_hooks(opt, [pixel_formats, *(extra_hooks or [])])
    loop = restore(model, opt, *resume, branching) if resume is not None else LoopState()
    open_run_folder(opt, resuming=resume is not None and not branching)
    if branching:  # a new experiment: its hooks (best checkpoints, patience) start afresh
        hooks.load_state_dict({BranchOrigin.state_key: record_branch(opt, *resume)})
    elif resume is not None:
        hooks.load_state_dict(resume[1].get('hooks', {}))
    tb_logger = init_trackers(opt, resuming=resume is not None and not branching)
    run = Run(model, opt, loop, tb_logger, val_loaders)
    logger.info(f'Start training from epoch {loop.epoch}, iter {loop.current_iter}.')
    train_and_report(run, loader, sampler, hooks)


def run_options(opt: dict, seed: int) -> dict:
    """The options as this run applies them, a new dict: the parsed options stay as parsed
    (read-only). It holds the run's decisions where BasicSR-style code reads them: the seed
    (a resumed run's own) and a ``train`` section of its own for the speed probe's choice."""
    return {**opt, 'manual_seed': seed, 'train': dict(opt['train'])}


def find_start(opt: dict) -> tuple[tuple[Path, dict] | None, bool]:
    """The training state the run starts from (None: from scratch) and whether it is a branch,
    checked against the options."""
    model_cls = MODEL_REGISTRY.get(opt['model_type'])
    resume = find_resume_state(opt, model_cls.network_labels())
    branching = resume is not None and is_branch_start(opt, resume[0])
    if resume is not None:
        check_resume_state(opt, model_cls.__name__, *resume, branching)
    elif opt['auto_resume']:
        logger.warning(f"--auto_resume: no loadable training state in "
                       f"{opt['path']['training_states']}; starting from iteration 0.")
    return resume, branching


def check_data(opt: dict, loader, val_loaders: dict, resume: tuple[Path, dict] | None
               ) -> PixelFormats:
    """Metrics, constraints and trackers checked against the data; the datasets' pixel formats
    (the same as those of the state ``resume`` continues, if given)."""
    if opt['val'] is not None:
        check_metrics(opt['val']['metrics'], val_loaders)
    check_constraints(opt, {'train': loader.dataset, **eval_datasets_by_key(opt, val_loaders)})
    check_trackers(opt)
    pixel_formats = PixelFormats({opt['datasets']['train']['name']: loader, **val_loaders})
    if resume is not None:
        pixel_formats.check_resume(resume[1].get('hooks', {}).get(PixelFormats.state_key),
                                   resume[0])
    return pixel_formats


def train_and_report(run: Run, loader, sampler, hooks: Hooks) -> None:
    """The loop between the hooks' start and end; then the latest networks and the final
    report (unless a signal stopped it)."""
    model, opt, loop = run.model, run.opt, run.loop
    start, finished = time.time(), False
    try:
        hooks.on_train_start(run)
        with GracefulStop() as stopper:
            try:
                finished = train_loop(run, loader, sampler, stopper, hooks)
            except RuntimeError as err:
                if opt['world_size'] > 1 and is_peer_failure(err):
                    raise lost_peer_error(err, opt) from err
                raise
        if loop.corrupt_skipped:
            logger.warning(f'{loop.corrupt_skipped} corrupt training image(s) were skipped.')
        if finished:
            logger.info(f'End of training in {time.time() - start:.1f} s. Saving the latest '
                        f'model.')
            if opt['rank'] == 0:
                save_latest(model, opt, loop.current_iter)
            final_report(model, opt, run.val_loaders, run.tb_logger, loop.current_iter,
                         run.last_validation)
    finally:
        hooks.on_train_end(run, finished)
        if run.tb_logger is not None:
            run.tb_logger.close()


def remove_fast_dev_run_folder(opt: dict) -> None:
    """--fast_dev_run leaves nothing behind: its temporary folder goes, log file included."""
    root = Path(opt['path']['experiments_root'])
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            logger.removeHandler(handler)
            handler.close()
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
        print(f'--fast_dev_run: removed {root}.', file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(train_pipeline, argv)


if __name__ == '__main__':
    sys.exit(main())
