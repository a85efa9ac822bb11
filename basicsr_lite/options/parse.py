"""Command line, option files (YAML or TOML), overrides, validation and derived paths."""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from basicsr_lite.archs.capabilities import capability_problems
from basicsr_lite.basicsr_names import not_available_message
from basicsr_lite.errors import DuplicateKeyError, OptionError, closest_match, did_you_mean
from basicsr_lite.metrics import metric_better
from basicsr_lite.options.legacy import move_legacy_keys
from basicsr_lite.utils.misc import read_user_text
from basicsr_lite.options.spec import option_spec
from basicsr_lite.options.yaml_loader import load_yaml
from basicsr_lite.registry import MODEL_REGISTRY  # loads the models package on first use
from basicsr_lite.runtime.dist import elastic_restart
from basicsr_lite.runtime.weights import read_metadata

FAST_DEV_RUN_ITERS = 4

logger = logging.getLogger('basicsr_lite')


def build_arg_parser(description: str, is_train: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('-opt', required=True, help='path to the option file (.yml or .toml)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher: torchrun -> pytorch')
    parser.add_argument('--auto_resume', action='store_true',
                        help='resume from the newest loadable training state of this experiment')
    parser.add_argument('--debug', action='store_true',
                        help='tiny frequencies and a debug_ name prefix')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help='accepted for torch.distributed.launch; torchrun uses LOCAL_RANK')
    parser.add_argument('--force_yml', nargs='+', default=None, metavar='KEY:PATH=VALUE',
                        help='override options, e.g. train:ema_decay=0.999 '
                             'datasets:train:batch_size_per_gpu=8 (values parsed as YAML)')
    if is_train:
        parser.add_argument('--branch', metavar='NEW_NAME', default=None,
                            help='start experiment NEW_NAME from a saved state of this one '
                                 '(path.resume_state, else its newest): weights, optimizers, '
                                 'loop position; the new folder records where it came from')
        parser.add_argument('--new-schedule', '--new_schedule', dest='new_schedule',
                            action='store_true',
                            help='resuming: apply an edited train.scheduler at the saved '
                                 'position (train.scheduler_change: adopt); without it a '
                                 'resume keeps the saved schedule')
        parser.add_argument('--plan', nargs='?', const='show', default=None,
                            choices=('show', 'apply', 'verify'),
                            help='measure the memory a training step needs and recommend the '
                                 'batch, patch, accumulation and checkpointing that fit (no '
                                 'training); apply: also write them into a copy of the option '
                                 'file; verify: also check the prediction with a real step at '
                                 'the chosen size')
        parser.add_argument('--memory', default=None, metavar='SIZE',
                            help='--plan: memory per process, e.g. 24GB (default: train.plan.'
                                 'memory, else the GPU\'s memory / the available RAM)')
        parser.add_argument('--effective-batch', '--effective_batch', dest='effective_batch',
                            type=int, default=None, metavar='N',
                            help='--plan: the batch per optimizer step over all processes and '
                                 'accumulated micro-batches (default: train.plan.'
                                 'effective_batch, else the option file\'s)')
        parser.add_argument('--fast_dev_run', nargs='?', type=int, const=FAST_DEV_RUN_ITERS,
                            default=None, metavar='N',
                            help=f'check the whole pipeline: N (default {FAST_DEV_RUN_ITERS}) '
                                 f'iterations, one short validation, one save, in a temporary '
                                 f'folder deleted afterwards')
    return parser


def load_option_file(path: str | Path) -> dict:
    """Read a YAML or TOML option file; syntax errors name the file and the line."""
    path = Path(path)
    text = _read_option_text(path)
    if path.suffix.lower() == '.toml':
        data = _load_toml(text, path)
    else:
        try:
            data = load_yaml(text)
        except DuplicateKeyError as err:
            raise OptionError(f'Option file {path}: key {err.key!r} is given twice, at lines '
                              f'{err.first_line} and {err.second_line} (YAML would keep only '
                              f'the last); remove one.') from err
        except yaml.YAMLError as err:
            mark = getattr(err, 'problem_mark', None)
            where = f' line {mark.line + 1}, column {mark.column + 1}' if mark else ''
            problem = getattr(err, 'problem', None) or str(err)
            raise OptionError(f'Option file {path} is not valid YAML at{where}: '
                              f'{problem}.') from err
    if not isinstance(data, dict):
        raise OptionError(f'Option file {path} must contain a mapping of options at its top level; '
                          f'got {type(data).__name__}.')
    return data


# Files given as -opt by mistake: weights, training states, exported networks.
_WEIGHT_SUFFIXES = ('.pth', '.pt', '.ckpt', '.state', '.safetensors', '.bin', '.onnx')


def _read_option_text(path: Path) -> str:
    """The text of an option file; a binary file (a checkpoint given as ``-opt``, an image) is
    one clear error instead of a decoding traceback."""
    try:
        with open(path, 'rb') as file:
            binary = b'\0' in file.read(4096)
    except OSError:
        binary = False  # read_user_text names the reason
    if not binary:
        try:
            return read_user_text(path, 'option file', OptionError)
        except UnicodeDecodeError:
            pass
    hint = (' A weight or training state file goes inside the option file, as '
            'path.pretrain_network_g (or path.resume_state).'
            if path.suffix.lower() in _WEIGHT_SUFFIXES else '')
    raise OptionError(f'Option file {path} is not a UTF-8 text file: -opt expects a YAML '
                      f'(.yml) or TOML (.toml) option file.{hint}')


def _load_toml(text: str, path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise OptionError(f'Option file {path} is not valid TOML: {err}.') from err


def apply_overrides(opt: dict, overrides: Sequence[str]) -> dict:
    """``['train:ema_decay=0.999']`` -> a copy of ``opt`` with that key set. Values are parsed
    as YAML (numbers, ``5e-5`` included, booleans, null, lists), never evaluated as code."""
    import copy
    opt = copy.deepcopy(opt)
    for item in overrides:
        if '=' not in item:
            raise OptionError(f"--force_yml '{item}': expected KEY:SUBKEY=VALUE.")
        key_path, raw = item.split('=', 1)
        keys = key_path.split(':')
        target = opt
        for depth, key in enumerate(keys[:-1]):
            node = target.get(key)
            if node is None:
                node = target[key] = {}
            if not isinstance(node, dict):
                raise OptionError(f"--force_yml '{item}': {':'.join(keys[:depth + 1])} is not a "
                                  f'mapping.')
            target = node
        try:
            target[keys[-1]] = load_yaml(raw)
        except yaml.YAMLError as err:
            raise OptionError(f"--force_yml '{item}': cannot parse value {raw!r}.") from err
    return opt


def validate_options(raw: dict, is_train: bool, source: str = 'options',
                     check_paths: bool = True) -> dict:
    """Check every key and value; return a new dict with defaults filled in.

    Raises OptionError listing every problem (key path, what is wrong, closest valid key).
    ``check_paths=False`` skips the checks of this machine (data folders and files exist, CUDA
    for ``num_gpu``), to validate a shipped option file anywhere.
    """
    raw, deprecations = move_legacy_keys(raw, is_train)
    raw = resolve_auto_network(raw)
    errors: list[str] = _machine_checks(raw) if check_paths else []
    model_type = raw.get('model_type', 'SRModel')
    checked_as = _model_to_check_with(model_type, errors)
    if checked_as is None:
        opt = raw
    else:
        ctx = {'scale': raw.get('scale', 1), 'is_train': is_train, 'check_paths': check_paths}
        opt = option_spec(MODEL_REGISTRY.get(checked_as), is_train).validate(raw, '', errors, ctx)
    if not errors:
        errors += _cross_checks(opt, is_train, check_paths)
        errors += MODEL_REGISTRY.get(model_type).option_problems(opt, is_train)
        _fill_metric_directions(opt)
    if errors:
        lines = '\n'.join(f'  - {e}' for e in errors)
        raise OptionError(f'{source} has {len(errors)} problem(s):\n{lines}')
    if int(os.environ.get('RANK', 0)) == 0:  # once per run, not per process
        for note in deprecations:
            logger.warning(f'{source}: {note}')
    return opt


def resolve_auto_network(raw: dict) -> dict:
    """``network_g: {type: auto}``: the network and its constructor arguments detected from
    ``path.pretrain_network_g`` (archs/detection.py; a self-describing file's metadata first);
    other keys given there win. Without a ``network_g`` section, a self-describing
    pretrain file (``logger.save_format: safetensors``) names the network itself."""
    net = raw.get('network_g')
    paths = raw.get('path') if isinstance(raw.get('path'), dict) else {}
    weights = paths.get('pretrain_network_g')
    if net is None and 'network_g' not in raw and isinstance(weights, str) and \
            read_metadata(weights).get('network_g'):
        net = {'type': 'auto'}
    if not (isinstance(net, dict) and net.get('type') == 'auto'):
        return raw
    if not weights or not Path(weights).is_file():
        raise OptionError('network_g.type: auto detects the network from '
                          'path.pretrain_network_g, which must name a weights file that exists'
                          + (f' ({weights} does not).' if weights else ' (it is not set).'))
    from basicsr_lite.archs.detection import options_from_weights
    detected = options_from_weights(weights, paths.get('param_key_g'), raw.get('scale'))
    found = {**detected, **{k: v for k, v in net.items() if k != 'type'}}
    if int(os.environ.get('RANK', 0)) == 0:
        logger.info(f'network_g: {found} (detected from {weights}).')
    return {**raw, 'network_g': found}


def _model_to_check_with(model_type: Any, errors: list[str]) -> str | None:
    """The registered model whose keys the file is checked against: ``model_type``; for a typo,
    the closest model (else SRModel), so that the file's other problems are reported with it;
    None (only the model_type error) for a BasicSR model that basicsr_lite lacks, whose keys
    would be misjudged."""
    if isinstance(model_type, str) and model_type in MODEL_REGISTRY:
        return model_type
    message = MODEL_REGISTRY.missing_message(model_type)
    if not_available_message('model', str(model_type)) is not None:
        errors.insert(0, f'model_type: {message}')
        return None
    checked_as = closest_match(str(model_type), MODEL_REGISTRY) or 'SRModel'
    errors.insert(0, f'model_type: {message} (the other keys were checked as for {checked_as}.)')
    return checked_as


def _fill_metric_directions(opt: dict) -> None:
    """``better`` of each validation metric: as given, else the metric's own."""
    for metric_opt in ((opt.get('val') or {}).get('metrics') or {}).values():
        metric_opt['better'] = metric_better(metric_opt)


def _machine_checks(opt: dict) -> list[str]:
    """What this machine cannot do (reported together with every other problem)."""
    num_gpu = opt.get('num_gpu')
    if isinstance(num_gpu, int) and not isinstance(num_gpu, bool) and num_gpu > 0 \
            and not torch.cuda.is_available():
        return [f"num_gpu: {num_gpu} but no CUDA device is available; set num_gpu: 0 (or "
                f"'auto') to run on the CPU."]
    return []


def _cross_checks(opt: dict, is_train: bool, check_paths: bool) -> list[str]:
    errors = []
    datasets = opt['datasets']
    if is_train and 'train' not in datasets:
        errors.append(f'datasets.train: required for training{did_you_mean("train", datasets)} '
                      f'(found: {", ".join(datasets) or "none"}).')
    if not is_train and not datasets:
        errors.append('datasets: at least one test dataset (e.g. datasets.test_1) is required.')
    if not is_train and check_paths and not opt['path'].get('pretrain_network_g'):
        errors.append('path.pretrain_network_g: required for testing (the weights to evaluate).')
    amp = opt['train'].get('amp') if is_train else None
    for key in ('network_g', 'network_d'):
        if isinstance(opt.get(key), dict):
            errors += capability_problems(opt[key], key, amp)
    if is_train:
        losses = [k for k in opt['train'] if (k.endswith('_opt') or k == 'losses')
                  and opt['train'][k] is not None]
        if not losses:
            errors.append('train: no loss configured; add e.g. pixel_opt: {type: L1Loss}.')
        for where, section in (('val.early_stopping', (opt['val'] or {}).get('early_stopping')),
                               ('logger.keep_best_checkpoints',
                                opt['logger']['keep_best_checkpoints'])):
            if section is not None:
                errors += _watched_metric_problems(opt, where, section)
        errors += _scheduler_problems(opt)
    return errors


def _scheduler_problems(opt: dict) -> list[str]:
    """A ReduceLROnPlateau watches a validated metric; a schedule with its own warm-up and
    BasicSR's ``train.warmup_iter`` would warm up twice."""
    scheduler = opt['train']['scheduler'] or {}
    errors = []
    if scheduler.get('type') == 'ReduceLROnPlateau':
        errors += _watched_metric_problems(opt, 'train.scheduler', {
            'metric': scheduler['metric'], 'dataset': scheduler.get('dataset')})
    if scheduler.get('warmup_iters', 0) > 0 and opt['train']['warmup_iter'] > 0:
        errors.append(f"train.warmup_iter: {opt['train']['warmup_iter']}, and "
                      f"train.scheduler ({scheduler['type']}) warms up itself "
                      f"(warmup_iters: {scheduler['warmup_iters']}); keep one of them.")
    return errors


def _watched_metric_problems(opt: dict, where: str, section: dict) -> list[str]:
    """A metric to act on must be validated: a key of ``val.metrics``, on a validation set."""
    if opt['val'] is None:
        return [f'{where}: needs validation; add a val section with metrics and a val dataset.']
    errors = []
    metrics = opt['val']['metrics']
    if section['metric'] not in metrics:
        errors.append(f"{where}.metric: '{section['metric']}' is not one of val.metrics "
                      f"({', '.join(metrics) or 'none'}){did_you_mean(section['metric'], metrics)}")
    names = [d['name'] for key, d in opt['datasets'].items() if key.startswith('val')]
    if not names:
        errors.append(f'{where}: needs a validation dataset (datasets.val).')
    elif section['dataset'] is not None and section['dataset'] not in names:
        errors.append(f"{where}.dataset: '{section['dataset']}' is not the name of a validation "
                      f"dataset ({', '.join(names)}){did_you_mean(section['dataset'], names)}")
    return errors


def _resolve_paths(opt: dict, is_train: bool, root: Path) -> None:
    paths = opt['path']
    if is_train:
        exp = Path(paths['experiments_root'] or root / 'experiments' / opt['name'])
        paths.update(experiments_root=str(exp), models=str(exp / 'models'),
                     training_states=str(exp / 'training_states'), log=str(exp),
                     visualization=str(exp / 'visualization'), tb_logger=str(exp / 'tb_logger'))
    else:
        res = Path(paths['results_root'] or root / 'results' / opt['name'])
        paths.update(results_root=str(res), log=str(res), visualization=str(res / 'visualization'))


def _apply_branch(opt: dict, new_name: str) -> None:
    """``--branch NEW_NAME``: this run's state (``path.resume_state``, else its newest) becomes
    the ``path.branch_from`` of a new experiment NEW_NAME (beside this one's folder)."""
    paths = opt['path']
    source = paths['resume_state'] or paths['experiments_root']
    paths.update(branch_from=source, resume_state=None)
    if paths['experiments_root'] is not None:
        paths['experiments_root'] = str(Path(paths['experiments_root']).with_name(new_name))
    opt['name'] = new_name


def _apply_fast_dev_run(opt: dict, iters: int) -> None:
    """``--fast_dev_run N``: N iterations, one save at the end, one validation (the final one,
    on at most 2 images), everything in a temporary folder (deleted by train.py after)."""
    if iters < 1:
        raise OptionError(f'--fast_dev_run: expected a number of iterations >= 1; got {iters}.')
    run_id = os.environ.get('TORCHELASTIC_RUN_ID') or os.environ.get('MASTER_PORT') or os.getpid()
    opt['name'] = f"fast_dev_run_{opt['name']}"
    opt['path'].update(experiments_root=str(Path(tempfile.gettempdir()) /
                                            f"basicsr_lite_{opt['name']}_{run_id}"),
                       resume_state=None, branch_from=None)
    opt['train']['total_iter'] = iters
    opt['logger'].update(print_freq=1, save_checkpoint_freq=iters,
                         save_checkpoint_freq_epochs=None)
    if opt['val'] is not None:
        limit = opt['val']['limit_batches']
        opt['val'].update(val_freq=iters, save_img=False,
                          limit_batches=2 if limit is None else min(limit, 2))


def _apply_debug(opt: dict) -> None:
    if not opt['name'].startswith('debug_'):
        opt['name'] = 'debug_' + opt['name']
    opt['logger']['print_freq'] = 1
    opt['logger']['save_checkpoint_freq'] = 8
    if opt['val'] is not None:
        opt['val']['val_freq'] = 8


LAUNCHER_ENV = {'pytorch': ('RANK', 'WORLD_SIZE'), 'slurm': ('SLURM_PROCID', 'SLURM_NTASKS')}


def launcher_rank(launcher: str) -> tuple[int, int]:
    """``(rank, world size)`` that the launcher gives this process in its environment
    (torchrun's RANK / WORLD_SIZE, srun's SLURM_PROCID / SLURM_NTASKS); (0, 1) without one.
    Derived here, so that nothing downstream writes them into the options."""
    names = LAUNCHER_ENV.get(launcher)
    if names is None or not all(name in os.environ for name in names):
        return 0, 1
    return int(os.environ[names[0]]), int(os.environ[names[1]])


def parse_options(argv: Sequence[str] | None, is_train: bool) -> tuple[dict, argparse.Namespace]:
    """Parse the command line and the option file into a validated option dict.

    Adds the runtime keys BasicSR code expects: ``is_train``, ``auto_resume``, ``launcher``,
    ``dist``, ``rank``, ``world_size``, ``opt_path``, ``command_args`` (the command line) and
    the derived ``path.*`` folders; and ``elastic_restart``: ``[count, max]`` when torchrun
    restarted the workers (training then resumes as with ``--auto_resume``), else None.
    """
    parser = build_arg_parser('Train a model.' if is_train else 'Test a model.', is_train)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    raw = load_option_file(args.opt)
    if args.force_yml:
        raw = apply_overrides(raw, args.force_yml)
    opt = validate_options(raw, is_train, source=args.opt)
    if args.debug:
        _apply_debug(opt)
    if getattr(args, 'new_schedule', False):
        opt['train']['scheduler_change'] = 'adopt'
    fast_dev_run = getattr(args, 'fast_dev_run', None)
    if getattr(args, 'branch', None) is not None and fast_dev_run is None:
        _resolve_paths(opt, is_train, Path(os.getcwd()))  # the source's folder, named as given
        _apply_branch(opt, args.branch)
    if fast_dev_run is not None:
        _apply_fast_dev_run(opt, fast_dev_run)
    if opt['manual_seed'] is None:
        opt['manual_seed'] = random.randint(1, 10000)
    _resolve_paths(opt, is_train, Path(os.getcwd()))
    restart = elastic_restart() if is_train else None
    opt.update(is_train=is_train,
               auto_resume=(args.auto_resume or restart is not None) and fast_dev_run is None,
               launcher=args.launcher, dist=args.launcher != 'none',
               **dict(zip(('rank', 'world_size'), launcher_rank(args.launcher))),
               opt_path=str(args.opt), command_args=argv, fast_dev_run=fast_dev_run is not None,
               elastic_restart=restart)
    return opt, args


def dict2str(opt: Any, indent: int = 1) -> str:
    """Options as indented text for the log."""
    lines = []
    for key, value in opt.items():
        if isinstance(value, dict):
            lines.append(' ' * (indent * 2) + f'{key}:')
            lines.append(dict2str(value, indent + 1))
        else:
            lines.append(' ' * (indent * 2) + f'{key}: {value}')
    return '\n'.join(line for line in lines if line)
