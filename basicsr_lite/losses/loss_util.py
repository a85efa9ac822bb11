"""Small pieces shared by the loss modules (not auto-imported: no ``_loss`` suffix)."""
from __future__ import annotations

from typing import Callable

import torch

CRITERIA = ('l1', 'l2', 'charbonnier')


def pointwise_criterion(name: str, eps: float = 1e-12
                        ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Mean distance by name, as traiNNer-redux's ``criterion`` options: 'l1' (mean absolute),
    'l2' (mean squared) or 'charbonnier' (mean of sqrt(d^2 + eps))."""
    if name == 'l1':
        return lambda a, b: (a - b).abs().mean()
    if name == 'l2':
        return lambda a, b: ((a - b)**2).mean()
    if name == 'charbonnier':
        return lambda a, b: torch.sqrt((a - b)**2 + eps).mean()
    raise ValueError(f"criterion must be one of {list(CRITERIA)}; got '{name}'.")
