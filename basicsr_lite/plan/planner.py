"""Which batch, patch, accumulation and checkpointing fit a memory budget.

The peak of a training step is the larger of two peaks, each a fixed part plus a part
proportional to the pixels of the batch (``fixed + per_pixel * batch * gt_size^2``): the forward
and backward passes' (weights, states, the batch, activations saved and transient) and the
updates' (optimizer steps, EMA: transients the size of the weights, which are the peak of small
batches). Both lines are fitted from two real steps at small sizes
(:func:`~basicsr_lite.plan.measure.measure_step`), then every candidate is predicted in closed
form. The recommendation keeps the option file's patch if it fits, with
the largest batch up to the one asked for, and reaches the effective batch by accumulation;
smaller patches come next; gradient checkpointing only when nothing fits without it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from basicsr_lite.errors import UserError
from basicsr_lite.plan.measure import Setting, StepMemory, measure_step
from basicsr_lite.utils.sizes import format_bytes

PATCH_SIDES = (32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 448, 512)
MAX_FIT_BATCH = 64


def available_memory(device: torch.device) -> int:
    """The whole memory of the GPU, or the memory the OS says is available on the CPU."""
    if device.type == 'cuda':
        return torch.cuda.get_device_properties(device).total_memory
    with open('/proc/meminfo') as f:
        info = dict(line.split(':', 1) for line in f)
    return int(info['MemAvailable'].split()[0]) * 1024


@dataclass(frozen=True)
class Line:
    """``fixed + per_pixel * batch * gt_size^2`` (bytes)."""
    fixed: float
    per_pixel: float

    @classmethod
    def through(cls, a: tuple[int, int], b: tuple[int, int]) -> 'Line':
        """Through (pixels, bytes) points ``a`` and ``b``; never decreasing."""
        per_pixel = max((b[1] - a[1]) / (b[0] - a[0]), 0.0) if b[0] != a[0] else 0.0
        return cls(max(a[1], b[1]) - per_pixel * max(a[0], b[0]), per_pixel)

    def at(self, pixels: int) -> float:
        return self.fixed + self.per_pixel * pixels


@dataclass(frozen=True)
class LinearFit:
    """A step's peak: the larger of the forward/backward peak (``passes``, which grows with the
    batch's pixels) and the updates' peak (``updates``: optimizer steps and EMA, whose transients
    are a fixed size; at small batches they are the peak)."""
    passes: Line
    updates: Line

    @classmethod
    def through(cls, a: StepMemory, b: StepMemory) -> 'LinearFit':
        pa, pb = a.setting.pixels, b.setting.pixels
        return cls(Line.through((pa, a.passes_peak), (pb, b.passes_peak)),
                   Line.through((pa, a.updates_peak), (pb, b.updates_peak)))

    def predict(self, setting: Setting) -> int:
        return int(max(self.passes.at(setting.pixels), self.updates.at(setting.pixels)))

    def largest_batch(self, gt_size: int, usable: float, cap: int) -> int:
        """The largest batch (up to ``cap``) predicted within ``usable`` bytes; 0 if none."""
        batch = cap
        for line in (self.passes, self.updates):
            if line.per_pixel > 0:
                batch = min(batch, int((usable - line.fixed) // (line.per_pixel * gt_size**2)))
            elif line.fixed > usable:
                batch = 0
        return max(batch, 0)


@dataclass
class Request:
    """What the user asks for: the budget per process (bytes), the safety margin (fraction),
    the effective batch (None: the option file's batch x processes), processes, largest batch."""
    budget: int
    margin: float = 0.1
    effective_batch: int | None = None
    world_size: int = 1
    max_batch: int = 64

    @property
    def usable(self) -> float:
        return self.budget * (1.0 - self.margin)


@dataclass
class Plan:
    request: Request
    patches: list[int]
    fits: dict[bool, LinearFit] = field(default_factory=dict)  # use_checkpoint -> fit
    measured: list[StepMemory] = field(default_factory=list)
    chosen: Setting | None = None
    accumulate: int = 1
    notes: list[str] = field(default_factory=list)


def candidate_patches(gt_size: int, unit: int, smallest: int, largest: int | None) -> list[int]:
    """GT patch sides to offer: the usual ones and the option file's, as multiples of ``unit``
    (scale x the network's input multiple), from ``smallest`` up to the smallest training image
    (``largest``; None: unknown)."""
    sides = {s // unit * unit for s in (*PATCH_SIDES, gt_size)}
    return sorted(s for s in sides
                  if s >= max(unit, smallest) and (largest is None or s <= largest))


def measurement_settings(patches: list[int], use_checkpoint: bool,
                         batch: int = 1) -> tuple[Setting, Setting]:
    """Two real steps to fit from: the smallest patch at ``batch``, and about twice its side at
    twice the batch (eight times the pixels); with one patch size, ``batch`` and twice it."""
    small = patches[0]
    if len(patches) == 1:  # one patch size (a discriminator's fixed input)
        return Setting(small, batch, use_checkpoint), Setting(small, 2 * batch, use_checkpoint)
    large = min((p for p in patches if p > small), key=lambda p: abs(p - 2 * small))
    return Setting(small, batch, use_checkpoint), Setting(large, 2 * batch, use_checkpoint)


def fit_for(opt: dict, device: torch.device, plan: Plan, use_checkpoint: bool) -> LinearFit:
    """Fit from two measured steps where activations outweigh the gradients: below that, the
    end of backward (every gradient allocated, few activations left) is the peak and the
    memory does not grow in proportion to the pixels yet. The batch of the first step grows
    until its saved activations reach twice the gradients' size."""
    batch = 2  # some networks cannot train on one image (batch norm of a pooled map: DAT)
    while True:
        first, second = measurement_settings(plan.patches, use_checkpoint, batch)
        a = measure_step(opt, device, first)
        if a.saved_activations >= 2 * a.gradients or batch >= MAX_FIT_BATCH:
            break
        batch *= 4
    b = measure_step(opt, device, second)
    plan.measured += [a, b]
    plan.fits[use_checkpoint] = LinearFit.through(a, b)
    return plan.fits[use_checkpoint]


def choose(fit: LinearFit, patches: list[int], wanted_patch: int, wanted_batch: int,
           request: Request, use_checkpoint: bool) -> Setting | None:
    """The option file's patch (or the largest smaller one) with the largest batch up to
    ``wanted_batch`` that fits; then smaller patches; None if batch 1 fits at no patch."""
    order = sorted((p for p in patches if p <= wanted_patch), reverse=True) or patches[:1]
    for patch in order:
        batch = fit.largest_batch(patch, request.usable, min(wanted_batch, request.max_batch))
        if batch >= 1:
            return Setting(patch, batch, use_checkpoint)
    return None


def make_plan(opt: dict, device: torch.device, request: Request, patches: list[int],
              can_checkpoint: bool) -> Plan:
    """Measure, fit and choose (see the module docstring)."""
    if not patches:
        raise UserError('--plan: no patch size to offer (the training images are smaller than '
                        'the smallest patch the network accepts).')
    train_set = opt['datasets']['train']
    wanted_patch = train_set['gt_size']
    per_step = request.effective_batch or train_set['batch_size_per_gpu'] * request.world_size
    wanted_batch = max(1, math.ceil(per_step / request.world_size))
    plan = Plan(request, patches)
    chosen = choose(fit_for(opt, device, plan, False), patches, wanted_patch, wanted_batch,
                    request, False)
    if chosen is None and can_checkpoint:
        plan.notes.append('nothing fits without gradient checkpointing: measured with '
                          'network_g.use_checkpoint: true')
        chosen = choose(fit_for(opt, device, plan, True), patches, wanted_patch, wanted_batch,
                        request, True)
    if chosen is None:
        smallest = Setting(patches[0], 1, can_checkpoint)
        need = plan.fits[can_checkpoint].predict(smallest)
        raise UserError(
            f'--plan: nothing fits {format_bytes(request.budget)} with a {request.margin:.0%} '
            f'margin ({format_bytes(request.usable)} usable): the smallest setting, gt_size '
            f'{smallest.gt_size} at batch 1' + (' with checkpointing' if can_checkpoint else '')
            + f', needs {format_bytes(need)}. Use a machine with more memory, a smaller network, '
              'or a lower margin (train.plan.margin).')
    plan.chosen = chosen
    plan.accumulate = max(1, math.ceil(per_step / (chosen.batch * request.world_size)))
    if chosen.gt_size < wanted_patch:
        plan.notes.append(f'gt_size {wanted_patch} does not fit even at batch 1: '
                          f'{chosen.gt_size} is the largest patch that does')
    return plan
