"""The optimizer factory: BasicSR's optimizer names, built from a ``train.optim_*`` section with
the implementation ``train.optimizer_impl`` asks for. Schedulers are in lr_scheduler.py."""
from __future__ import annotations

from typing import Iterable

import torch

from basicsr_lite.errors import rejected_options
from basicsr_lite.runtime.adan import Adan
from basicsr_lite.runtime.speed import build_with_impl

OPTIMIZERS = {
    'Adam': torch.optim.Adam,
    'Adan': Adan,  # LKDN's recipe
    'AdamW': torch.optim.AdamW,
    'SGD': torch.optim.SGD,
}


def build_optimizer(params: Iterable, opt: dict, where: str = 'train.optim_g',
                    impl: str = 'auto') -> torch.optim.Optimizer:
    """The optimizer of option ``where``, with the implementation ``impl`` (``auto``, ``fused``,
    ``foreach``, ``for_loop``: ``train.optimizer_impl``)."""
    kwargs = {k: v for k, v in opt.items() if k != 'type'}
    if 'betas' in kwargs:
        kwargs['betas'] = tuple(kwargs['betas'])
    params = list(params)

    def build(params: list, extra: dict) -> torch.optim.Optimizer:
        with rejected_options(f"{where} ({opt['type']})"):
            return OPTIMIZERS[opt['type']](params, **kwargs, **extra)

    return build_with_impl(build, params, opt, impl)
