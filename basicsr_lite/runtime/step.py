"""One optimizer step, the same for every model: backward (scaled under fp16 AMP), gradient
accumulation over micro-batches, clipping by global norm, the non-finite policy, the step.

A model calls ``stepper.backward(losses, iteration)`` once per micro-batch; the stepper steps its
optimizer after the ``accumulate``-th call and says whether it did, so that the model updates its
EMA only then. The loop wraps all but the last micro-batch in the model's ``no_sync`` (DDP).
With a fused optimizer nothing is read on the host: the step is dropped on the device, and the
loop reads the record (``settle``) only on logging, checkpoint and validation iterations.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from basicsr_lite.runtime.dist import is_dist
from basicsr_lite.runtime.speed import is_fused

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


@dataclass
class StepResult:
    """What a micro-batch's call did: ``completed`` (it was the last of the step: the step was
    taken or dropped), ``stepped`` (the optimizer stepped), ``non_finite`` (a non-finite loss, or
    gradient without fp16 scaling: the step was dropped), ``scaler_skipped`` (fp16: the
    GradScaler dropped a step with inf/NaN gradients).

    ``deferred``: the decision was taken on the device (fused optimizer): ``stepped``,
    ``non_finite`` and ``scaler_skipped`` are 0-dim bool tensors, not to be read on the host in
    the loop (that is the sync this avoids); :meth:`OptimizerStepper.settle` reports them."""
    completed: bool = False
    stepped: bool | torch.Tensor = False
    non_finite: bool | torch.Tensor = False
    scaler_skipped: bool | torch.Tensor = False
    grad_norm: torch.Tensor | None = None  # before clipping; a tensor: reading it syncs
    deferred: bool = False

    @property
    def taken(self) -> bool:
        """The step completed and counts as taken: a step decided on the device counts when it
        completes (reading whether a non-finite value dropped it would cost a host sync)."""
        return self.completed and (self.deferred or bool(self.stepped))


@dataclass
class Fault:
    """The first dropped step since the last settle, and how many were dropped."""
    iteration: int
    losses: dict[str, float]  # its losses (all finite: the gradient was not)
    count: int

    def description(self) -> str:
        bad = [f'{k} = {v:g}' for k, v in self.losses.items() if not math.isfinite(v)]
        return f'loss ({", ".join(bad)})' if bad else 'gradient (the losses are finite)'


class FaultTally:
    """Device-side record of non-finite steps: their count, and the iteration and losses of the
    first one (kept per set of loss names: a GAN's steps log different losses), updated with
    tensor ops only (no host sync) and read by :meth:`read`."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.count = torch.zeros((), dtype=torch.long, device=device)
        self.first: dict[tuple[str, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def add(self, fault: torch.Tensor, iteration: int, losses: dict[str, torch.Tensor]) -> None:
        is_first = fault & (self.count == 0)
        names = tuple(losses)
        values = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
        never = torch.full((), -1, dtype=torch.long, device=self.device)
        first_iter, first_values = self.first.get(names, (never, values))
        self.first[names] = (torch.where(is_first, iteration, first_iter),
                             torch.where(is_first, values, first_values))
        self.count = self.count + fault.long()

    def read(self) -> Fault | None:
        """The faults so far (one host sync), or None."""
        count = int(self.count)
        if count == 0:
            return None
        firsts = [(int(it), names, values) for names, (it, values) in self.first.items()]
        iteration, names, values = min((f for f in firsts if f[0] >= 0), key=lambda f: f[0])
        return Fault(iteration, dict(zip(names, values.tolist())), count)

    def clear(self) -> None:
        self.__init__(self.device)


class OptimizerStepper:
    """Backward and step for one optimizer and the networks it trains.

    ``clip``: max global L2 norm of the gradients of those networks (None: off).
    ``scaler``: a GradScaler (fp16 AMP), whose state belongs in the training state.
    ``halt_on_fault``: after a non-finite step, drop every later step until :meth:`settle`
    (``train.nan_policy: stop``: the run stops there with the weights from before the fault).

    With a fused optimizer (``runtime.speed.is_fused``) the step is taken or dropped on the
    device (the fused kernels' ``found_inf``): no host sync per step. Otherwise the decision is
    read on the host at every step.
    """

    def __init__(self, name: str, optimizer: torch.optim.Optimizer, networks: list[nn.Module],
                 accumulate: int = 1, clip: float | None = None,
                 scaler: torch.amp.GradScaler | None = None, halt_on_fault: bool = True) -> None:
        if accumulate < 1:
            raise ValueError(f'accumulate must be >= 1; got {accumulate}.')
        self.name, self.optimizer, self.networks = name, optimizer, networks
        self.accumulate, self.clip, self.scaler = accumulate, clip, scaler
        self.halt_on_fault = halt_on_fault
        self.on_device = is_fused(optimizer)
        self.calls = 0  # micro-batches backpropagated since the last step
        self.loss_ok: torch.Tensor | None = None  # all their losses finite (no sync until step)
        self.tally: FaultTally | None = None  # device decisions: faults since the last settle
        self.last_grad_norm: torch.Tensor | None = None  # of the last step, on the device
        # Gradients stay until the next step's first backward (to inspect them), instead of
        # being freed right after the step (which lets the next forward reuse their memory).
        self.keep_grads = False
        self.optimizer.zero_grad(set_to_none=True)

    def parameters(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group['params']]

    def backward(self, losses: dict[str, torch.Tensor], iteration: int = 0) -> StepResult:
        """Backpropagate ``sum(losses) / accumulate``; on the last micro-batch, step (or apply the
        non-finite policy's decision: drop the step)."""
        total = sum(losses.values()) / self.accumulate
        if self.keep_grads and self.calls == 0:
            self.optimizer.zero_grad(set_to_none=True)
        finite = torch.isfinite(total.detach()).all()
        self.loss_ok = finite if self.loss_ok is None else self.loss_ok & finite
        (self.scaler.scale(total) if self.scaler is not None else total).backward()
        self.calls += 1
        if self.calls < self.accumulate:
            return StepResult()
        result = self._step(self.loss_ok, iteration, losses)
        self.calls, self.loss_ok = 0, None
        if not self.keep_grads:
            self.optimizer.zero_grad(set_to_none=True)
        return result

    def _finite_flags(self, loss_ok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the global gradient norm, [losses finite, gradients finite] agreed by all ranks)."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        grad_norm = torch.linalg.vector_norm(torch.stack(
            [n.float() for n in torch._foreach_norm(grads)])) if grads else \
            torch.zeros((), device=loss_ok.device)
        flags = torch.stack([loss_ok.float(), torch.isfinite(grad_norm).float().to(loss_ok.device)])
        if is_dist():  # every rank takes the same decision (asynchronous on GPUs)
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MIN)
        return grad_norm, flags

    def _step(self, loss_ok: torch.Tensor, iteration: int,
              losses: dict[str, torch.Tensor]) -> StepResult:
        grad_norm, flags = self._finite_flags(loss_ok)
        self.last_grad_norm = grad_norm.detach()
        if self.on_device:
            return self._step_on_device(flags > 0, grad_norm, iteration, losses)
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

    def _step_on_device(self, ok: torch.Tensor, grad_norm: torch.Tensor, iteration: int,
                        losses: dict[str, torch.Tensor]) -> StepResult:
        loss_ok, grad_ok = ok[0], ok[1]
        # fp16: inf/NaN gradients are the GradScaler's business (smaller scale, step dropped)
        fault = ~loss_ok if self.scaler is not None else ~(loss_ok & grad_ok)
        if self.tally is None:
            self.tally = FaultTally(fault.device)
        skip = fault | ~grad_ok
        if self.halt_on_fault:
            skip = skip | (self.tally.count > 0)
        if self.clip is not None:  # a non-finite norm makes the gradients NaN: dropped anyway
            nn.utils.clip_grads_with_norm_(self.parameters(), self.clip, grad_norm)
        self.optimizer.found_inf = skip.float()  # the fused kernels leave everything untouched
        self.optimizer.grad_scale = None  # (already unscaled)
        try:
            self.optimizer.step()
        finally:
            del self.optimizer.found_inf, self.optimizer.grad_scale
        if self.scaler is not None:
            self.scaler.update()  # from the inf checks its unscale_ recorded
        self.tally.add(fault, iteration, losses)
        scaler_skipped = (~grad_ok) if self.scaler is not None else torch.zeros_like(fault)
        return StepResult(completed=True, stepped=~skip, non_finite=fault,
                          scaler_skipped=scaler_skipped & ~fault, grad_norm=grad_norm.detach(),
                          deferred=True)

    def settle(self) -> Fault | None:
        """The non-finite steps the device dropped since the last call (one host sync), or None.
        Under ``halt_on_fault`` the record stays: every later step is still dropped."""
        if self.tally is None:
            return None
        fault = self.tally.read()
        if fault is not None and not self.halt_on_fault:
            self.tally.clear()
        return fault


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
