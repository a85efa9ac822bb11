"""The schema of basicsr_lite option files (BasicSR's keys and meanings)."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from basicsr_lite.data import dataset_phase
from basicsr_lite.data.contract import constructor_keys, option_problems, traits_of
from basicsr_lite.data.loading.selection import split_problems
from basicsr_lite.errors import did_you_mean
from basicsr_lite.options.schema import ListOf, MapOf, Section, Spec, Typed, Value
from basicsr_lite.registry import (ARCH_REGISTRY, DATASET_REGISTRY, HOOK_REGISTRY, LOSS_REGISTRY,
                                   METRIC_REGISTRY)
from basicsr_lite.runtime import lr_scheduler, optim, speed, speed_probe
from basicsr_lite.utils.checks import in_unit_interval, non_negative, positive

NUM = (int, float)
OPT_STR = (str, type(None))


def num_gpu_check(value: Any) -> str | None:
    if value == 'auto' or (isinstance(value, int) and value >= 0):
        return None
    return f"must be 'auto' or an integer >= 0; got {value!r}."


@dataclass
class ExistingPath(Value):
    """An optional path that must exist, a file when ``file_only`` (checked unless
    ``ctx['check_paths']`` is False)."""
    types: tuple[type, ...] = OPT_STR
    default: Any = None
    file_only: bool = False

    def validate(self, value, path, errors, ctx):
        value = super().validate(value, path, errors, ctx)
        if isinstance(value, str) and ctx.get('check_paths', True):
            if self.file_only and not os.path.isfile(value):
                errors.append(f'{path}: file {value} does not exist.')
            elif not self.file_only and not os.path.exists(value):
                errors.append(f'{path}: {value} does not exist.')
        return value


@dataclass
class FilePath(ExistingPath):
    """An optional path to an existing file."""
    file_only: bool = True


def safetensors_installed(value: str) -> str | None:
    """``logger.save_format: safetensors`` needs the safetensors package (an optional extra)."""
    if value == 'safetensors' and importlib.util.find_spec('safetensors') is None:
        return "'safetensors' needs the safetensors package: pip install safetensors."
    return None


def fraction_or_count(value: Any) -> str | None:
    """``limit_train_batches``: a number of batches >= 1, or a fraction of an epoch in (0, 1]."""
    if isinstance(value, int):
        return positive(value)
    if not 0 < value <= 1:
        return f'expected a number of batches >= 1 or a fraction in (0, 1]; got {value!r}.'
    return None


def watched_metric(required_fields: dict[str, Spec]) -> Section:
    """A section naming a validation metric to act on (early stopping, best checkpoints)."""
    return Section(nullable=True, default=None, fields={
        'metric': Value((str,), required=True),  # a key of val.metrics
        'dataset': Value(OPT_STR, default=None),  # a validation set's name; default: the first
        'better': Value(OPT_STR, default=None, choices=(None, 'higher', 'lower')),
        **required_fields,
    })


def clip_check(model_cls: type):
    """``train.clip_grad_norm``: a max norm > 0 for every network, or ``{net_g: 0.5, ...}``."""
    labels = model_cls.network_labels()

    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return positive(value)
        for label, limit in value.items():
            if label not in labels:
                return (f"'{label}' is not a network of {model_cls.__name__} (its networks: "
                        f"{', '.join(labels)}){did_you_mean(str(label), labels)}")
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
                return f'{label}: expected a max norm > 0; got {limit!r}.'
        return None
    return check


# ---- resolvers: type name -> the callable whose signature defines the allowed keys ------------

def _from_table(table: dict, kind: str):
    def resolve(name: str):
        if name not in table:
            raise KeyError(f"No {kind} named '{name}'{did_you_mean(name, table)} "
                           f'Available: {", ".join(sorted(table))}.')
        return table[name]
    return resolve


# ---- datasets ------------------------------------------------------------------------------------

def _check_dataset(kwargs: dict, path: str, errors: list[str], ctx: dict) -> None:
    phase = dataset_phase(path.rsplit('.', 1)[-1])
    # meta_info: BasicSR's RealESRGANDataset; metadata_file: values for conditioned networks
    meta_keys = ('meta_info_file', 'meta_info', 'metadata_file')
    if not ctx.get('check_paths', True):
        kwargs = {k: v for k, v in kwargs.items() if k not in meta_keys
                  and not k.startswith('dataroot')}
    for key, value in kwargs.items():
        if key.startswith('dataroot') and isinstance(value, str) and not os.path.exists(value):
            errors.append(f'{path}.{key}: folder {value} does not exist.')
    for key in meta_keys:
        meta = kwargs.get(key)
        if isinstance(meta, str) and not os.path.isfile(meta):
            errors.append(f'{path}.{key}: file {meta} does not exist.')
    cls = DATASET_REGISTRY.get(kwargs['type'])
    params = constructor_keys(cls)
    gt_size, scale = kwargs.get('gt_size'), ctx['scale']
    if phase == 'train':
        if 'batch_size_per_gpu' not in kwargs:
            errors.append(f'{path}.batch_size_per_gpu: required for the train dataset.')
        if 'gt_size' in params and gt_size is None and not traits_of(cls).model_crops:
            errors.append(f'{path}.gt_size: required for the train dataset (the GT patch size).')
    if isinstance(gt_size, int) and isinstance(scale, int) and scale > 0 and gt_size % scale:
        errors.append(f'{path}.gt_size: {gt_size} is not divisible by scale {scale}.')
    if isinstance(kwargs.get('split'), dict):
        errors.extend(f'{path}.{key}: {message}'
                      for key, message in split_problems(kwargs['split']))
    # the dataset's own checks of its values
    problems = option_problems(cls, kwargs, check_files=ctx.get('check_paths', True))
    errors.extend(f'{path}.{key}: {message}' for key, message in problems)


def dataset_spec(key: str) -> Spec:
    return Typed(
        resolve=DATASET_REGISTRY.get, kind='dataset', hidden=('scale', 'phase'),
        checks=(_check_dataset,),
        fields={
            'name': Value((str,), default=key),
            'use_shuffle': Value((bool,), default=True),
            'num_worker_per_gpu': Value((int,), default=0, check=non_negative),
            'batch_size_per_gpu': Value((int,), check=positive),
            'dataset_enlarge_ratio': Value((int,), default=1, check=positive),
            'prefetch_mode': Value(OPT_STR, default=None, choices=(None, 'cpu', 'cuda')),
            'pin_memory': Value((bool, type(None)), default=None),
            'persistent_workers': Value((bool,), default=True),
            'prefetch_factor': Value((int,), default=2, check=positive),
            'skip_corrupt': Value((bool,), default=False),
            'max_images': Value((int, type(None)), default=None, check=positive),
            # one folder divided by image name: this entry's part (data/loading/selection.py)
            'split': Section(nullable=True, default=None, fields={
                'part': Value((str,), required=True, choices=('train', 'val')),
                'val_fraction': Value((float, type(None)), default=None),
                'val_pattern': Value(OPT_STR, default=None),
            }),
        })


class SpecKit:
    """What a model declares its own ``train.*`` keys with (``BaseModel.train_keys``), so that
    models need not know the schema's classes."""
    Value = Value
    positive = staticmethod(positive)
    non_negative = staticmethod(non_negative)

    @staticmethod
    def optimizer(required: bool = True) -> Typed:
        return Typed(resolve=_from_table(optim.OPTIMIZERS, 'optimizer'), kind='optimizer',
                     hidden=('params',), required=required)

    @staticmethod
    def loss(required: bool = False) -> Typed:
        """A loss (``{type: L1Loss, loss_weight: ...}``); optional ones may be null."""
        return Typed(resolve=LOSS_REGISTRY.get, kind='loss', required=required,
                     nullable=not required, default=None)

    @staticmethod
    def losses() -> ListOf:
        """``train.losses``: a list of losses, each checked against its constructor, with the
        framework's ``name`` (logged name) and ``target`` (``models/loss_terms.py``); null: not
        given (BasicSR's slots are used)."""
        return ListOf(item=Typed(resolve=LOSS_REGISTRY.get, kind='loss', fields={
            'name': Value(OPT_STR, default=None),
            'target': Value(OPT_STR, default=None, choices=(None, 'gt', 'gt_usm', 'lq_up')),
        }), default=None, nullable=True)


def memory_size_check(value: Any) -> str | None:
    from basicsr_lite.plan.planner import parse_bytes
    if value is None:
        return None
    try:
        parse_bytes(value)
    except Exception as err:  # the message names the expected form
        return str(err).split(': ', 1)[-1]
    return None


def plan_spec() -> Section:
    """``train.plan``: the memory planner's settings (``train.py --plan``; the command line's
    ``--memory`` / ``--effective-batch`` take precedence)."""
    return Section(nullable=True, default=None, fields={
        'memory': Value((str, int, type(None)), default=None, check=memory_size_check),
        'effective_batch': Value((int, type(None)), default=None,
                                 check=lambda v: None if v is None else positive(v)),
        'margin': Value(NUM, default=0.1, check=in_unit_interval),
        'max_batch': Value((int,), default=64, check=positive),
    })


# ---- the whole file ------------------------------------------------------------------------------

def train_spec(model_cls: type) -> Section:
    fields: dict[str, Spec] = {
        'total_iter': Value((int,), required=True, check=positive),
        'warmup_iter': Value((int,), default=-1),
        'nan_policy': Value((str,), default='stop', choices=('stop', 'skip')),
        'ema_decay': Value(NUM, default=0.0, check=in_unit_interval),
        'amp': Value(OPT_STR, default=None, choices=speed_probe.AMP_CHOICES),
        'accumulate_grad_batches': Value((int,), default=1, check=positive),
        'clip_grad_norm': Value((int, float, dict, type(None)), default=None,
                                check=clip_check(model_cls)),
        'scheduler': Typed(resolve=_from_table(lr_scheduler.SCHEDULERS, 'scheduler'),
                           kind='scheduler',
                           hidden=('optimizer', 'last_epoch', 'verbose', 'mode'),
                           nullable=True, default=None),
        # a resumed run whose train.scheduler was edited: keep the saved schedule (and warn), or
        # adopt the edited one at the saved position (also: train.py --new-schedule)
        'scheduler_change': Value((str,), default='keep', choices=('keep', 'adopt')),
        # speed (runtime/speed.py); none of them changes what a checkpoint holds
        'channels_last': Value((bool, str), default=False, check=speed_probe.bool_or_auto),
        'speed_policy': Value((str,), default='warn', choices=speed_probe.SPEED_POLICIES),
        'compile': Value((bool, dict), default=False, check=speed.compile_problems),
        'optimizer_impl': Value((str,), default='auto', choices=speed.OPTIMIZER_IMPLS),
        'cudnn_benchmark': Value((bool,), default=False),
        'matmul_precision': Value((str,), default='highest', choices=speed.MATMUL_PRECISIONS),
        'stop_check_freq': Value((int,), default=10, check=positive),
        'limit_train_batches': Value((int, float, type(None)), default=None,
                                     check=fraction_or_count),
        'plan': plan_spec(),
    }
    fields.update(model_cls.train_keys(SpecKit))
    return Section(fields=fields, required=True)


def option_spec(model_cls: type, is_train: bool) -> Section:
    """The spec of a whole option file for ``model_cls`` (train or test)."""
    # Testing needs only the generator (BasicSR's test files of GAN models have no network_d).
    networks = {key: Typed(resolve=ARCH_REGISTRY.get, kind='arch',
                           required=is_train or key == 'network_g',
                           nullable=not is_train and key != 'network_g', default=None)
                for key in model_cls.network_keys}
    path_fields: dict[str, Spec] = {
        'experiments_root': Value(OPT_STR, default=None),
        'results_root': Value(OPT_STR, default=None),
        'resume_state': FilePath(),
        'branch_from': ExistingPath(),  # a training state, or an experiment folder (its newest)
    }
    for key in model_cls.network_keys:
        net = key.split('_', 1)[1]
        path_fields[f'pretrain_network_{net}'] = FilePath()
        path_fields[f'strict_load_{net}'] = Value((bool,), default=True)
        path_fields[f'param_key_{net}'] = Value((str,), default='params')
    fields: dict[str, Spec] = {
        'name': Value((str,), required=True),
        'model_type': Value((str,), default='SRModel'),
        'scale': Value((int,), default=1, check=positive),
        'num_gpu': Value((int, str), default='auto', check=num_gpu_check),
        'manual_seed': Value((int, type(None)), default=None),
        'find_unused_parameters': Value((bool,), default=False),
        'datasets': MapOf(spec_for=dataset_spec, key_pattern=r'(train|val|test)(_\w+)?',
                          key_hint="dataset keys are 'train', 'val', 'val_<x>' or 'test_<x>'",
                          required=True),
        **networks,
        **model_cls.option_keys(SpecKit),
        'path': Section(fields=path_fields, default=dict),
        'val': Section(nullable=True, default=None, fields={
            'val_freq': Value((int,), default=5000, check=positive),
            'save_img': Value((bool,), default=False),
            'suffix': Value(OPT_STR, default=None),
            'pbar': Value((bool,), default=False),
            # PSNR / SSIM with their torch forms on the model's device (equal values)
            'tensor_metrics': Value((bool,), default=True),
            'limit_batches': Value((int, type(None)), default=None, check=positive),
            'tb_images': Value((int,), default=0, check=non_negative),
            'tb_image_size': Value((int,), default=256, check=positive),
            'tb_image_fit': Value((str,), default='resize', choices=('resize', 'crop')),
            'early_stopping': watched_metric({
                'patience': Value((int,), required=True, check=positive),  # in validations
                'min_delta': Value(NUM, default=0.0, check=non_negative),
            }),
            'tile': Section(nullable=True, default=None, fields={
                'size': Value((int,), required=True, check=positive),
                'overlap': Value((int,), default=16, check=non_negative),
            }),
            'metrics': MapOf(spec_for=lambda _: Typed(
                resolve=METRIC_REGISTRY.get, kind='metric', hidden=('img', 'img2'),
                # default: the metric's own (PSNR higher, NIQE / LPIPS lower)
                fields={'better': Value(OPT_STR, default=None, choices=(None, 'higher', 'lower'))}),
                default=dict),
        }),
        'logger': Section(default=dict, fields={
            'print_freq': Value((int,), default=100, check=positive),
            'save_checkpoint_freq': Value((int,), default=5000, check=positive),
            'use_tb_logger': Value((bool,), default=True),
            'keep_last_checkpoints': Value((int, type(None)), default=None, check=positive),
            # network files: BasicSR's .pth, or self-describing .safetensors (checkpoint/files.py)
            'save_format': Value((str,), default='pth', choices=('pth', 'safetensors'),
                                 check=safetensors_installed),
            'save_checkpoint_freq_epochs': Value((int, type(None)), default=None,
                                                 check=positive),
            'keep_best_checkpoints': watched_metric({
                'k': Value((int,), default=1, check=positive),
            }),
            'system_metrics': Value((bool,), default=True),
            # each saved net_g loaded through spandrel and compared (engine/interop_hook.py)
            'check_interop': Value((bool,), default=False),
            'tb_histogram_freq': Value((int,), default=0, check=non_negative),
            'progress_bar': Value((bool, str), default='auto', choices=('auto', True, False)),
            # optional trackers beside TensorBoard (engine/trackers.py); project null: off
            'wandb': Section(nullable=True, default=None, fields={
                'project': Value(OPT_STR, default=None),
                'resume_id': Value(OPT_STR, default=None),
                'entity': Value(OPT_STR, default=None),
                'mode': Value(OPT_STR, default=None, choices=(None, 'online', 'offline',
                                                              'disabled')),
            }),
            'aim': Section(nullable=True, default=None, fields={
                'repo': Value(OPT_STR, default=None),  # default: the experiments folder
                'experiment': Value(OPT_STR, default=None),  # default: the run's name
            }),
        }),
        'hooks': ListOf(item=Typed(resolve=HOOK_REGISTRY.get, kind='hook'), default=list),
        'dist_params': Section(default=dict, fields={
            'backend': Value(OPT_STR, default=None, choices=(None, 'nccl', 'gloo')),
            'port': Value((int,), default=29500, check=positive),
            # seconds a collective may wait for a missing rank before failing
            'timeout': Value(NUM, default=1800, check=positive),
        }),
    }
    if is_train:
        fields['train'] = train_spec(model_cls)
    return Section(fields=fields)
