"""The pieces of the option-file schema (``spec.py`` puts them together): value checks, path
values, the dataset entry, and the kit models declare their own keys with."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from basicsr_lite.data import dataset_phase
from basicsr_lite.data.contract import constructor_keys, option_problems, traits_of
from basicsr_lite.data.loading.selection import split_problems
from basicsr_lite.errors import UserError, did_you_mean
from basicsr_lite.options.schema import ListOf, Section, Spec, Typed, Value
from basicsr_lite.registry import DATASET_REGISTRY, LOSS_REGISTRY
from basicsr_lite.runtime import optim
from basicsr_lite.utils.checks import in_unit_interval, non_negative, positive
from basicsr_lite.utils.sizes import parse_bytes

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


def watched_metric(doc: str, required_fields: dict[str, Spec]) -> Section:
    """A section naming a validation metric to act on (early stopping, best checkpoints)."""
    return Section(nullable=True, default=None, doc=doc, fields={
        'metric': Value((str,), required=True,
                        doc='The metric to watch: a key of val.metrics.'),
        'dataset': Value(OPT_STR, default=None,
                         doc="The validation set whose value is watched, by its name; null: "
                             "the first validation set."),
        'better': Value(OPT_STR, default=None, choices=(None, 'higher', 'lower'),
                        doc="Which direction is an improvement; null: the metric's own "
                            "(val.metrics.<name>.better)."),
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

def from_table(table: dict, kind: str):
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
    phase = dataset_phase(key)
    return Typed(
        resolve=DATASET_REGISTRY.get, names=DATASET_REGISTRY.keys, kind='dataset',
        hidden=('scale', 'phase'), checks=(_check_dataset,),
        doc=(f'A {phase} dataset: its type (a registered dataset) and that class\'s arguments, '
             f'with the loader keys.' if phase in ('train', 'val', 'test') else
             'A dataset: its type (a registered dataset) and that class\'s arguments, with the '
             'loader keys.'),
        fields={
            'name': Value((str,), default=key,
                          doc='The name the log, the metrics and the image folders use; default: '
                              'the entry\'s key.'),
            'use_shuffle': Value((bool,), default=True,
                                 doc='Training: a new random order of the images every epoch '
                                     '(false: the same order).'),
            'num_worker_per_gpu': Value((int,), default=0, check=non_negative,
                                        doc='Loader worker processes per GPU process (0: the '
                                            'images are read in the training process).'),
            'batch_size_per_gpu': Value((int,), check=positive,
                                        doc='Training images per batch in each process '
                                            '(required for the train dataset; validation '
                                            'uses one image per batch).'),
            'dataset_enlarge_ratio': Value((int,), default=1, check=positive,
                                           doc='Training: each epoch goes this many times '
                                               'through the images (fewer, longer epochs).'),
            'prefetch_mode': Value(OPT_STR, default=None, choices=(None, 'cpu', 'cuda'),
                                   doc="Training: 'cuda' copies the next batch to the GPU while "
                                       "the current one trains; null or 'cpu': batches as the "
                                       "loader gives them."),
            'pin_memory': Value((bool, type(None)), default=None,
                                doc="The loader's pin_memory (page-locked batches copy to the "
                                    "GPU faster); null: on when training on CUDA."),
            'persistent_workers': Value((bool,), default=True,
                                        doc='Training with workers: keep them alive from one '
                                            'epoch to the next.'),
            'prefetch_factor': Value((int,), default=2, check=positive,
                                     doc='Training with workers: batches each worker prepares '
                                         'ahead.'),
            'skip_corrupt': Value((bool,), default=False,
                                  doc='An unreadable image is logged and skipped (training: '
                                      'replaced by the next one) instead of stopping the run.'),
            'max_images': Value((int, type(None)), default=None, check=positive,
                                doc='Use only the first N images, by name; null: all.'),
            'split': Section(nullable=True, default=None,
                             doc="Divide one folder into train and val parts by image name (the "
                                 "same division in every run); null: use every image.",
                             fields={
                'part': Value((str,), required=True, choices=('train', 'val'),
                              doc='The part this entry uses.'),
                'val_fraction': Value((float, type(None)), default=None,
                                      doc='The val part is this fraction of the images, chosen '
                                          'by a hash of the name (give this or val_pattern).'),
                'val_pattern': Value(OPT_STR, default=None,
                                     doc='The val part is the images whose name matches this '
                                         'regular expression (give this or val_fraction).'),
            }),
        })


DATASETS_DOC = ("The datasets by role: 'train' (required for training), 'val' or 'val_<x>' "
                "(validated during training), 'test_<x>' (test.py); each key's entry is one "
                "dataset.")


class SpecKit:
    """What a model declares its own ``train.*`` keys with (``BaseModel.train_keys``), so that
    models need not know the schema's classes."""
    Value = Value
    positive = staticmethod(positive)
    non_negative = staticmethod(non_negative)

    @staticmethod
    def optimizer(required: bool = True, doc: str = '') -> Typed:
        """An optimizer (``{type: Adam, lr: ...}``): torch's or pytorch_optimizer's arguments."""
        return Typed(resolve=from_table(optim.OPTIMIZERS, 'optimizer'), kind='optimizer',
                     names=lambda: sorted(optim.OPTIMIZERS), hidden=('params',),
                     required=required, doc=doc)

    @staticmethod
    def loss(required: bool = False, doc: str = '') -> Typed:
        """A loss (``{type: L1Loss, loss_weight: ...}``); optional ones may be null."""
        return Typed(resolve=LOSS_REGISTRY.get, names=LOSS_REGISTRY.keys, kind='loss',
                     required=required, nullable=not required, default=None, doc=doc)

    @staticmethod
    def losses() -> ListOf:
        """``train.losses``: a list of losses, each checked against its constructor, with the
        framework's ``name`` (logged name) and ``target`` (``models/loss_terms.py``); null: not
        given (BasicSR's slots are used)."""
        return ListOf(item=Typed(
            resolve=LOSS_REGISTRY.get, names=LOSS_REGISTRY.keys, kind='loss',
            doc='One loss term: its type (a registered loss) and arguments, its logged name '
                'and what it compares the output with.',
            fields={
                'name': Value(OPT_STR, default=None,
                              doc="The term's logged name; null: the model's prefix and the "
                                  "type without 'Loss' in lower case (l_l1, l_g_l1 in GAN "
                                  "models)."),
                'target': Value(OPT_STR, default=None, choices=(None, 'gt', 'gt_usm', 'lq_up'),
                                doc="What the output is compared with: the GT, the sharpened GT "
                                    "(Real-ESRGAN models) or the upsampled LQ; null: the GT."),
            }), default=None, nullable=True,
            doc='The loss terms, summed in this order (each logged); null: the slots '
                '(pixel_opt, ...) are used instead.')


def memory_size_check(value: Any) -> str | None:
    if value is None:
        return None
    try:
        parse_bytes(value)
    except UserError as err:  # its message names the form expected
        return str(err).split(': ', 1)[-1]
    return None


def plan_spec() -> Section:
    """``train.plan``: the memory planner's settings (``train.py --plan``)."""
    return Section(nullable=True, default=None, fields={
        'memory': Value((str, int, type(None)), default=None, check=memory_size_check,
                        doc='Memory per process the plan must fit, e.g. 24GB (GB means GiB); '
                            "null: the GPU's memory, or the RAM available. --memory overrides."),
        'effective_batch': Value((int, type(None)), default=None,
                                 check=positive,
                                 doc='Images per optimizer step over all processes and '
                                     'accumulated batches; null: batch_size_per_gpu x '
                                     'processes. --effective-batch overrides.'),
        'margin': Value(NUM, default=0.1, check=in_unit_interval,
                        doc='Fraction of the memory kept free (allocator fragmentation, the '
                            'CUDA context, what the measurement cannot see).'),
        'max_batch': Value((int,), default=64, check=positive,
                           doc='The largest batch per process the plan offers.'),
    }, doc='The memory planner (train.py --plan): what it may use and aim for.')
