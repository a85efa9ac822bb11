"""Architectures: every ``*_arch.py`` here registers its networks in ARCH_REGISTRY."""
from pathlib import Path

from torch import nn

from basicsr_lite.registry import ARCH_REGISTRY, build_from_opt
from basicsr_lite.utils.misc import import_modules_with_suffix

import_modules_with_suffix(__name__, Path(__file__).parent, '_arch')


def build_network(opt: dict, where: str = 'network') -> nn.Module:
    """Build the network described by ``opt`` (``type`` plus constructor kwargs); ``where``
    names its option key in errors."""
    return build_from_opt(ARCH_REGISTRY, opt, where)
