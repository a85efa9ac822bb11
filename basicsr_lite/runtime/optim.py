"""The optimizer factory: BasicSR's optimizer names (torch's classes) and those of the
pytorch-optimizer package (``pytorch_optimizer``: schedule-free AdamW, Adan, Prodigy, Lion, SOAP,
ADOPT, ...) under the names traiNNer-redux and neosr option files give them, built from a
``train.optim_*`` section with the implementation ``train.optimizer_impl`` asks for. Schedulers
are in lr_scheduler.py.

pytorch_optimizer takes about two seconds to import, so it is imported when an option file
first names one of its optimizers, not with this module."""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Iterable, Iterator

import torch

from basicsr_lite.errors import OptionError, rejected_options
from basicsr_lite.runtime.speed import build_with_impl

TORCH_OPTIMIZERS = {
    'Adam': torch.optim.Adam,
    'AdamW': torch.optim.AdamW,
    'SGD': torch.optim.SGD,
}
# the name an option file writes -> the class of pytorch_optimizer
PACKAGE_OPTIMIZERS = {
    'AdamWScheduleFree': 'ScheduleFreeAdamW',  # traiNNer-redux's and facebookresearch's name
    'ScheduleFreeAdamW': 'ScheduleFreeAdamW',  # pytorch_optimizer's own
    'adamw_sf': 'ScheduleFreeAdamW',  # neosr's
    'RAdamScheduleFree': 'ScheduleFreeRAdam',
    'ScheduleFreeRAdam': 'ScheduleFreeRAdam',
    'SGDScheduleFree': 'ScheduleFreeSGD',
    'ScheduleFreeSGD': 'ScheduleFreeSGD',
    'Adan': 'Adan',
    'adan': 'Adan',  # neosr's
    'Prodigy': 'Prodigy',
    'Lion': 'Lion',
    'SOAP': 'SOAP',
    'ADOPT': 'ADOPT',
    'StableAdamW': 'StableAdamW',  # traiNNer-redux registers it too
    'CAME': 'CAME',
}


def package_optimizer(class_name: str) -> type[torch.optim.Optimizer]:
    try:
        module = importlib.import_module('pytorch_optimizer')
    except ImportError as err:
        raise OptionError(f'The optimizer {class_name} comes from the pytorch-optimizer package, '
                          f'which is not installed: pip install pytorch-optimizer') from err
    return getattr(module, class_name)


class OptimizerTable(Mapping):
    """``{name: optimizer class}``: torch's at once, pytorch_optimizer's when looked up."""

    def __getitem__(self, name: str) -> type[torch.optim.Optimizer]:
        if name in TORCH_OPTIMIZERS:
            return TORCH_OPTIMIZERS[name]
        return package_optimizer(PACKAGE_OPTIMIZERS[name])

    def __iter__(self) -> Iterator[str]:
        return iter([*TORCH_OPTIMIZERS, *PACKAGE_OPTIMIZERS])

    def __len__(self) -> int:
        return len(TORCH_OPTIMIZERS) + len(PACKAGE_OPTIMIZERS)

    def __contains__(self, name: object) -> bool:
        return name in TORCH_OPTIMIZERS or name in PACKAGE_OPTIMIZERS


OPTIMIZERS = OptimizerTable()


def impl_kwargs(cls: type, impl: str) -> dict:
    """``train.optimizer_impl`` for a pytorch_optimizer class: ``foreach`` / ``for_loop`` where
    it takes ``foreach``; it has no fused kernels, so ``auto`` and ``fused`` leave its default."""
    if impl in ('foreach', 'for_loop') and 'foreach' in inspect.signature(cls).parameters:
        return {'foreach': impl == 'foreach'}
    return {}


def build_optimizer(params: Iterable, opt: dict, where: str = 'train.optim_g',
                    impl: str = 'auto') -> torch.optim.Optimizer:
    """The optimizer of option ``where``, with the implementation ``impl`` (``auto``, ``fused``,
    ``foreach``, ``for_loop``: ``train.optimizer_impl``)."""
    kwargs = {k: v for k, v in opt.items() if k != 'type'}
    if 'betas' in kwargs:
        kwargs['betas'] = tuple(kwargs['betas'])
    params = list(params)
    cls = OPTIMIZERS[opt['type']]

    def build(params: list, extra: dict) -> torch.optim.Optimizer:
        with rejected_options(f"{where} ({opt['type']})"):
            return cls(params, **kwargs, **extra)

    if opt['type'] in TORCH_OPTIMIZERS:
        return build_with_impl(build, params, opt, impl)
    explicit = 'foreach' in opt
    return build(params, {} if explicit else impl_kwargs(cls, impl))


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` keeps two points of the weights, switched by its ``train()`` /
    ``eval()`` (the schedule-free optimizers: ``train_mode`` in every param group)."""
    return callable(getattr(optimizer, 'eval', None)) and all(
        'train_mode' in group for group in optimizer.param_groups)


def set_weights_mode(optimizer: torch.optim.Optimizer, train: bool) -> bool:
    """Put the weights of a schedule-free ``optimizer`` at its training point (``train``) or at
    its averaged point (evaluation); returns whether anything moved (a no-op for other
    optimizers and when they are there already)."""
    if not is_schedule_free(optimizer):
        return False
    moves = any(group['train_mode'] != train for group in optimizer.param_groups)
    if moves:
        optimizer.train() if train else optimizer.eval()
    return moves
