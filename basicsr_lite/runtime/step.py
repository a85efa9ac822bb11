"""One optimizer step, the same for every model: backward (scaled under fp16 AMP), gradient
accumulation over micro-batches, clipping by global norm, the non-finite policy, the step.

A model calls ``stepper.backward(losses)`` once per micro-batch; the stepper steps its optimizer
after the ``accumulate``-th call and says so (``True``), so that the model updates its EMA only
then. The loop wraps all but the last micro-batch in the model's ``no_sync`` (DDP).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from basicsr_lite.runtime.dist import is_dist

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


@dataclass
class StepResult:
    """What a micro-batch's call did: ``completed`` (it was the last of the step: the step was
    taken or dropped), ``stepped`` (the optimizer stepped), ``non_finite`` (a non-finite loss, or
    gradient without fp16 scaling: the step was dropped), ``scaler_skipped`` (fp16: the
    GradScaler dropped a step with inf/NaN gradients)."""
    completed: bool = False
    stepped: bool = False
    non_finite: bool = False
    scaler_skipped: bool = False
    grad_norm: torch.Tensor | None = None  # before clipping; a tensor: reading it syncs


class OptimizerStepper:
    """Backward and step for one optimizer and the networks it trains.

    ``clip``: max global L2 norm of the gradients of those networks (None: off).
    ``scaler``: a GradScaler (fp16 AMP), whose state belongs in the training state.
    """

    def __init__(self, name: str, optimizer: torch.optim.Optimizer, networks: list[nn.Module],
                 accumulate: int = 1, clip: float | None = None,
                 scaler: torch.amp.GradScaler | None = None) -> None:
        if accumulate < 1:
            raise ValueError(f'accumulate must be >= 1; got {accumulate}.')
        self.name, self.optimizer, self.networks = name, optimizer, networks
        self.accumulate, self.clip, self.scaler = accumulate, clip, scaler
        self.calls = 0  # micro-batches backpropagated since the last step
        self.loss_ok: torch.Tensor | None = None  # all their losses finite (no sync until step)
        self.optimizer.zero_grad(set_to_none=True)

    def parameters(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group['params']]

    def backward(self, losses: dict[str, torch.Tensor]) -> StepResult:
        """Backpropagate ``sum(losses) / accumulate``; on the last micro-batch, step (or apply the
        non-finite policy's decision: drop the step)."""
        total = sum(losses.values()) / self.accumulate
        finite = torch.isfinite(total.detach()).all()
        self.loss_ok = finite if self.loss_ok is None else self.loss_ok & finite
        (self.scaler.scale(total) if self.scaler is not None else total).backward()
        self.calls += 1
        if self.calls < self.accumulate:
            return StepResult()
        result = self._step(self.loss_ok)
        self.calls, self.loss_ok = 0, None
        self.optimizer.zero_grad(set_to_none=True)
        return result

    def _step(self, loss_ok: torch.Tensor) -> StepResult:
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        grad_norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])) if grads else \
            torch.zeros((), device=loss_ok.device)
        flags = torch.stack([loss_ok.float(), torch.isfinite(grad_norm).float().to(loss_ok.device)])
        if is_dist():  # every rank takes the same decision
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MIN)
        loss_ok, grad_ok = (bool(v) for v in flags.tolist())  # one host sync per step
        if not loss_ok or (not grad_ok and self.scaler is None):
            if self.scaler is not None:
                self.scaler.update()
            return StepResult(completed=True, non_finite=True)
        if self.clip is not None and grad_ok:  # with the norm computed above: no second pass
            nn.utils.clip_grads_with_norm_(self.parameters(), self.clip, grad_norm)
        if self.scaler is None:
            self.optimizer.step()
            return StepResult(completed=True, stepped=True, grad_norm=grad_norm.detach())
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)  # skips the step itself on inf/NaN gradients
        self.scaler.update()
        skipped = not grad_ok or self.scaler.get_scale() < scale
        return StepResult(completed=True, stepped=not skipped, scaler_skipped=skipped,
                          grad_norm=grad_norm.detach() if grad_ok else None)


@contextlib.contextmanager
def no_sync(networks: list[nn.Module], active: bool) -> Iterator[None]:
    """DDP's ``no_sync`` for every wrapped network when ``active`` (gradient accumulation: all
    micro-batches but the last); a no-op otherwise."""
    with contextlib.ExitStack() as stack:
        if active:
            for net in networks:
                if hasattr(net, 'no_sync'):
                    stack.enter_context(net.no_sync())
        yield


def autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``train.amp`` ('bf16' / 'fp16') on ``device``; None: a no-op."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])
