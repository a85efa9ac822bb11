"""Models: every ``*_model.py`` here registers its class in MODEL_REGISTRY."""
from pathlib import Path

import torch

from basicsr_lite.registry import MODEL_REGISTRY
from basicsr_lite.utils.misc import import_modules_with_suffix

import_modules_with_suffix(__name__, Path(__file__).parent, '_model')


def build_model(opt: dict, device: torch.device):
    return MODEL_REGISTRY.get(opt['model_type'])(opt, device)
