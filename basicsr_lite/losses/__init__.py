"""Losses: every ``*_loss.py`` here registers its classes in LOSS_REGISTRY."""
from pathlib import Path

from torch import nn

from basicsr_lite.registry import LOSS_REGISTRY, build_from_opt
from basicsr_lite.utils.misc import import_modules_with_suffix

import_modules_with_suffix(__name__, Path(__file__).parent, '_loss')


def build_loss(opt: dict, where: str = 'loss') -> nn.Module:
    return build_from_opt(LOSS_REGISTRY, opt, where)
