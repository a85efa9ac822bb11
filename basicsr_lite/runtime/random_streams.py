"""A random stream of its own for work done in the training process (the batched degradations):
its state is saved with the training state, so a resumed run draws what the uninterrupted run
would have drawn, whatever else used the global RNGs in between."""
from __future__ import annotations

import numpy as np
import torch


class RandomStreams:
    """``numpy``: a numpy Generator for per-batch choices (host side, no device sync);
    ``torch``: a torch Generator on ``device`` for per-image tensors."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.device = device
        self.numpy = np.random.Generator(np.random.PCG64(seed))
        self.torch = torch.Generator(device=device)
        self.torch.manual_seed(seed)

    def uniform(self, n: int, low: float, high: float, device: torch.device | None = None
                ) -> torch.Tensor:
        """``n`` values uniform in [low, high) on the device, from the torch stream."""
        values = torch.rand(n, generator=self.torch, device=device or self.device)
        return values * (high - low) + low

    def choice(self, options, probs=None):
        """One of ``options`` (with probabilities ``probs``), from the numpy stream."""
        if probs is not None:  # validated to sum to 1 (within 1e-6); numpy wants ~1e-8
            probs = np.asarray(probs, dtype=np.float64)
            probs = probs / probs.sum()
        return options[int(self.numpy.choice(len(options), p=probs))]

    def state_dict(self) -> dict:
        return {'numpy': self.numpy.bit_generator.state, 'torch': self.torch.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.numpy.bit_generator.state = state['numpy']
        self.torch.set_state(state['torch'])
