"""One measured training step of an option file at a given batch and patch size.

The step is the real one: the option file's model (G, and D with both optimizers for the GAN
models), its losses, optimizers, AMP setting and data pipeline, on a batch the training loader
makes at the asked size. Measured: the peak of allocated tensor memory over the first two steps
(:class:`~basicsr_lite.plan.meter.MemoryMeter`), and its parts: parameters and buffers,
gradients, optimizer states (after a step), the activations saved for backward
(``saved_tensors_hooks``), the rest being transients (gradients of activations, workspaces)."""
from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from basicsr_lite.plan.meter import MemoryMeter
from basicsr_lite.runtime.activation_memory import count_saved_tensors


@dataclass(frozen=True)
class Setting:
    """What the planner chooses: GT patch side, batch per process, checkpointing."""
    gt_size: int
    batch: int
    use_checkpoint: bool = False

    @property
    def pixels(self) -> int:
        return self.batch * self.gt_size**2


@dataclass(frozen=True)
class StepMemory:
    """Bytes of one measured setting: the most allocated at once during two training steps,
    everything included (weights, states, batch, activations, transients), in the forward and
    backward passes (``passes_peak``) and in the updates (``updates_peak``: optimizer steps,
    EMA), whose transients do not grow with the batch."""
    setting: Setting
    passes_peak: int
    updates_peak: int
    weights: int
    gradients: int  # the trained parameters' size: what their gradients take while they exist
    optimizer_states: int
    saved_activations: int

    @property
    def peak(self) -> int:
        return max(self.passes_peak, self.updates_peak)

    @property
    def transient(self) -> int:
        return max(0, self.peak - self.weights - self.gradients - self.optimizer_states
                   - self.saved_activations)


def planned_options(opt: dict, setting: Setting) -> dict:
    """A copy of ``opt`` that trains at ``setting``, loading in the main process."""
    planned = copy.deepcopy(opt)
    train_set = planned['datasets']['train']
    train_set.update(gt_size=setting.gt_size, batch_size_per_gpu=setting.batch,
                     num_worker_per_gpu=0, prefetch_mode=None, persistent_workers=False)
    train_set['dataset_enlarge_ratio'] = max(train_set.get('dataset_enlarge_ratio') or 1,
                                             setting.batch)
    if setting.use_checkpoint:
        planned['network_g'] = {**planned['network_g'], 'use_checkpoint': True}
    planned['train'] = {**planned['train'], 'accumulate_grad_batches': 1}
    return planned


def model_modules(model) -> list[nn.Module]:
    """The networks a model holds (G, D, EMA copy, loss networks such as VGG)."""
    found: list[nn.Module] = []

    def visit(value, depth: int) -> None:
        if isinstance(value, nn.Module):
            found.append(value)
        elif depth < 3 and isinstance(value, (list, tuple)):
            for item in value:
                visit(item, depth + 1)
        elif depth < 3 and hasattr(value, '__dict__') and not isinstance(value, torch.Tensor):
            for item in vars(value).values():
                visit(item, depth + 1)

    for value in vars(model).values():
        visit(value, 0)
    return found


def unique_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        key = (t.device, t.untyped_storage().data_ptr())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def optimizer_state_bytes(model) -> int:
    return unique_bytes(v for s in model.steppers.values()
                        for state in s.optimizer.state.values()
                        for v in state.values() if isinstance(v, torch.Tensor))


def g_step_iteration(opt: dict) -> int:
    """An iteration at which every network of the model steps (GAN models train G only after
    ``net_d_init_iters`` and every ``net_d_iters``)."""
    train = opt['train']
    every = train.get('net_d_iters') or 1
    first = (train.get('net_d_init_iters') or 0) + 1
    return -(-first // every) * every


@contextmanager
def updates_as_phases(model, meter: MemoryMeter) -> Iterator[None]:
    """The model's optimizer steps and EMA updates measured as update phases of ``meter``."""
    handles, entered = [], []

    def pre(*_) -> None:
        entered.append(meter.phase())
        entered[-1].__enter__()

    def post(*_) -> None:
        entered.pop().__exit__(None, None, None)

    for stepper in model.steppers.values():
        handles += [stepper.optimizer.register_step_pre_hook(pre),
                    stepper.optimizer.register_step_post_hook(post)]
    update_ema = model.update_ema

    def ema_in_phase(*args, **kwargs):
        with meter.phase():
            return update_ema(*args, **kwargs)

    model.update_ema = ema_in_phase
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        del model.update_ema


def measure_step(opt: dict, device: torch.device, setting: Setting) -> StepMemory:
    """Build the model of ``opt`` at ``setting`` and measure two training steps."""
    from basicsr_lite.data.loading.loaders import build_train_loader
    from basicsr_lite.models import build_model

    planned = planned_options(opt, setting)
    meter = MemoryMeter(device)
    quiet = logging.getLogger('basicsr_lite')
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # the loader's and model's start-up lines, twice per size
    try:
        with meter.recording():
            loader, _ = build_train_loader(planned, device)
            model = build_model(planned, device)
            modules = model_modules(model)
            batches = iter(loader)
            start = g_step_iteration(planned)
            with meter.mark('steps'), updates_as_phases(model, meter):
                for iteration in (start, start + planned['train'].get('net_d_iters', 1)):
                    model.feed_data(next(batches))
                    with count_saved_tensors() as saved:
                        saved.exclude(t for m in modules for t in (*m.parameters(),
                                                                   *m.buffers()))
                        model.optimize_parameters(iteration)
                    model.settle_steps()
    finally:
        quiet.setLevel(level)
    params = [t for m in modules for t in m.parameters()]
    passes_peak, updates_peak = meter.peaks('steps')
    return StepMemory(
        setting, passes_peak=passes_peak, updates_peak=updates_peak,
        weights=unique_bytes([*params, *(b for m in modules for b in m.buffers())]),
        gradients=unique_bytes(p for p in params if p.requires_grad),  # while they exist
        optimizer_states=optimizer_state_bytes(model),
        saved_activations=saved.bytes)
