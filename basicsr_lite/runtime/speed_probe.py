"""Speed options that never make training slower by surprise (``train.speed_policy``).

Whether ``train.amp`` and ``train.channels_last`` help depends on the hardware: bf16 autocast on
a CPU without native bf16 instructions runs emulated and is 10-30x *slower* than fp32, and NHWC
helps some convolution kernels and not others. At start-up, when one of them is on (or
``auto``), this module decides what the run trains with:

1. the CPU's capability (torch's ``get_cpu_capability()`` and the ``/proc/cpuinfo`` flags
   ``avx512_bf16`` / ``amx_bf16`` / ``avx512fp16`` / ``amx_fp16``; ``bf16`` / ``asimdhp`` on
   ARM): autocast on a CPU without the native instructions is dropped without timing it (one
   emulated step of a real network takes many seconds);
2. a short timed probe (a few seconds at most) of one training step (forward, L1-like loss,
   backward, Adam step) of the run's own network at its own patch size and batch, each candidate
   configuration warmed up once, then a few interleaved timed steps, the minimum of each. The
   probe trains copies built for it, inside ``torch.random.fork_rng``: the run's RNG states,
   networks and optimizers are untouched.

The decision is logged in one line with the timings. ``speed_policy``: ``warn`` (default) drops
an option measured more than ``MARGIN`` slower and says so; ``strict`` stops with an
:class:`OptionError` instead (before the experiment folder exists); ``off`` / ``force`` keep what
the option file asks without probing (``auto`` then follows the capability rule alone). Under
DDP only the capability rule applies (every rank must decide the same). A resumed run keeps the
choice saved in its training state, so resuming stays exact.

``torch.compile`` is not timed here: its compilation alone takes longer than the probe may.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import random
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from basicsr_lite.errors import OptionError, first_line
# The network through the registry (it imports the archs on first use): runtime/ imports no archs.
from basicsr_lite.registry import ARCH_REGISTRY, build_from_opt
from basicsr_lite.runtime.cpu_features import CpuInfo, cpu_info
from basicsr_lite.runtime.dist import get_dist_info
from basicsr_lite.runtime.speed import fused_kernel_applies, network_to_channels_last
from basicsr_lite.runtime.step import autocast

logger = logging.getLogger('basicsr_lite')

SPEED_POLICIES = ('warn', 'strict', 'off', 'force')
AMP_CHOICES = (None, 'bf16', 'fp16', 'auto')
MARGIN = 1.05  # an option must be this much slower to be dropped (or faster, for auto)
PROBE_BUDGET_S = 4.0  # timed steps of all candidates together, after the warm-ups
MAX_REPEATS = 3
CLEARLY_SLOWER = 3.0  # warm-up step this many times the reference's: not timed again


def bool_or_auto(value) -> str | None:
    """Why a ``train.channels_last`` value is not valid, or None."""
    if isinstance(value, bool) or value == 'auto':
        return None
    return f"expected true, false or 'auto'; got {value!r}"


@dataclasses.dataclass(frozen=True)
class Config:
    """One candidate: the autocast dtype and the memory order."""
    amp: str | None = None
    channels_last: bool = False

    def label(self) -> str:
        parts = [self.amp or 'fp32'] + (['channels_last'] if self.channels_last else [])
        return ' + '.join(parts)


@dataclasses.dataclass
class Decision:
    """What the run trains with, and the one line that says why (None: nothing to say)."""
    config: Config
    message: str | None = None
    dropped: tuple[str, ...] = ()  # options the option file asked for that are not used


def native_support(amp: str, device: torch.device, cpu: CpuInfo) -> bool | None:
    """Whether ``amp`` autocast is native on ``device``; None: unknown (time it)."""
    if device.type == 'cuda':
        return amp == 'fp16' or torch.cuda.is_bf16_supported()
    return cpu.native(amp)


def has_conv(net: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in net.modules())


def candidates(train_opt: dict, device: torch.device, cpu: CpuInfo, conv_net: bool
               ) -> tuple[Config, list[Config], list[str]]:
    """(the configuration asked for with ``auto`` off, the configurations worth timing, notes on
    what the capability rule removed)."""
    amp, cl = train_opt.get('amp'), train_opt.get('channels_last', False)
    asked = Config(amp if amp != 'auto' else None, cl is True)
    amps: list[str | None] = [None]
    notes = []
    for wanted in (['bf16'] if amp == 'auto' else [amp] if amp else []):
        native = native_support(wanted, device, cpu)
        if native is False:
            where = cpu.describe() if device.type == 'cpu' else torch.cuda.get_device_name(device)
            notes.append(f'{wanted} autocast is not native on this {device.type} ({where}); '
                         f'emulated it is typically 10-30x slower than fp32')
        else:
            amps.append(wanted)
    layouts = [False, True] if cl is True or (cl == 'auto' and conv_net) else [False]
    configs = [Config(a, c) for a in amps for c in layouts]
    return asked, configs, notes


def capability_choice(train_opt: dict, configs: list[Config], device: torch.device,
                      conv_net: bool) -> Config:
    """Without timing: what is asked and possible; ``auto``: bf16 where native, channels_last
    for convolutional networks on CUDA."""
    amp, cl = train_opt.get('amp'), train_opt.get('channels_last', False)
    amps = {c.amp for c in configs}
    want_amp = 'bf16' if amp == 'auto' else amp
    chosen_amp = want_amp if want_amp in amps else None
    chosen_cl = cl is True or (cl == 'auto' and conv_net and device.type == 'cuda')
    return Config(chosen_amp, chosen_cl)


def choose(asked: Config, timings: dict[Config, float], margin: float = MARGIN) -> Config:
    """The fastest configuration if it beats ``asked`` (or the nearest timed form of it) by more
    than ``margin``; otherwise ``asked``'s form."""
    start = asked if asked in timings else min(
        timings, key=lambda c: (c.amp != asked.amp) + (c.channels_last != asked.channels_last))
    best = min(timings, key=timings.get)
    return best if timings[best] * margin < timings[start] else start


def dropped_options(asked: Config, chosen: Config) -> tuple[str, ...]:
    out = []
    if asked.amp and chosen.amp != asked.amp:
        out.append(f'amp: {asked.amp}')
    if asked.channels_last and not chosen.channels_last:
        out.append('channels_last: true')
    return tuple(out)


StepFactory = Callable[[Config], Callable[[], None]]
CLOCK: Callable[[], float] = time.perf_counter  # the probe's clock (tests stub it)


def measure(configs: list[Config], make_step: StepFactory, budget_s: float = PROBE_BUDGET_S,
            clock: Callable[[], float] | None = None) -> dict[Config, float]:
    """Seconds per step of each configuration (the first is the reference): one warm-up step
    each, then interleaved timed steps (as many rounds as fit ``budget_s``, 1 to MAX_REPEATS),
    the minimum of each (noise on a shared host only adds time). A configuration whose warm-up
    step takes over ``CLEARLY_SLOWER`` times the reference's is not timed again: its warm-up
    time stands (an emulated bf16 step of a real network can take many seconds)."""
    clock = clock or CLOCK
    steps, warm = {}, {}
    for config in configs:
        steps[config] = make_step(config)
        start = clock()
        steps[config]()
        warm[config] = clock() - start
    reference = warm[configs[0]]
    timed = [c for c in configs if c == configs[0] or warm[c] <= CLEARLY_SLOWER * reference]
    rounds = max(1, min(MAX_REPEATS, int(budget_s / max(sum(warm[c] for c in timed), 1e-9))))
    times: dict[Config, list[float]] = {c: [] if c in timed else [warm[c]] for c in configs}
    for _ in range(rounds):
        for config in timed:
            start = clock()
            steps[config]()
            times[config].append(clock() - start)
    return {c: min(t) for c, t in times.items()}


def step_factory(net: nn.Module, lq_shape: tuple[int, ...], device: torch.device
                 ) -> StepFactory:
    """A training step of a copy of ``net`` per configuration: forward on a random batch of
    ``lq_shape``, the mean absolute output as loss, backward, a fused (where possible) Adam step."""
    def make(config: Config) -> Callable[[], None]:
        model = copy.deepcopy(net).to(device)
        x = torch.rand(lq_shape, device=device)
        if config.channels_last:
            model = network_to_channels_last(model)
            x = x.contiguous(memory_format=torch.channels_last)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=1e-7, fused=fused_kernel_applies(params) or None)

        def step() -> None:
            with autocast(device, config.amp):
                out = model(x)
            loss = out.float().abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
        return step
    return make


class rng_kept:
    """Python's, numpy's and torch's (CPU and CUDA) RNG states are restored on exit."""

    def __enter__(self) -> 'rng_kept':
        self.states = random.getstate(), np.random.get_state()
        self.fork = torch.random.fork_rng(devices=range(torch.cuda.device_count()))
        self.fork.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.fork.__exit__(*exc)
        random.setstate(self.states[0])
        np.random.set_state(self.states[1])


def probe_input_shape(opt: dict, net: nn.Module) -> tuple[int, ...] | None:
    """(batch, channels, h, w) of a training LQ batch, or None when the options do not say."""
    data = (opt.get('datasets') or {}).get('train') or {}
    gt_size, scale, batch = data.get('gt_size'), opt.get('scale') or 1, data.get(
        'batch_size_per_gpu')
    if not isinstance(gt_size, int) or not isinstance(batch, int):
        return None
    first_conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    channels = first_conv.in_channels if first_conv is not None else 3
    return batch, channels, gt_size // scale, gt_size // scale


def describe_timings(timings: dict[Config, float]) -> str:
    return ', '.join(f'{c.label()} {t:.3f}' for c, t in timings.items())


def resolve_speed_options(opt: dict, device: torch.device, saved: dict | None = None,
                          make_step: StepFactory | None = None, cpu: CpuInfo | None = None
                          ) -> Decision | None:
    """Decide ``train.amp`` / ``train.channels_last`` for this run and write the decision into
    ``opt['train']`` (with ``speed_choice`` for the training state). None when no option whose
    benefit depends on the hardware is on. ``saved``: the choice of the run being resumed.
    ``make_step`` stands in for :func:`step_factory` (tests); ``cpu`` for :func:`cpu_info`."""
    train_opt = opt['train']
    amp, cl = train_opt.get('amp'), train_opt.get('channels_last', False)
    policy = train_opt.get('speed_policy', 'warn')
    asked = {'amp': amp, 'channels_last': cl, 'speed_policy': policy}
    hardware_dependent = cl in (True, 'auto') or amp == 'auto' or (
        amp is not None and device.type == 'cpu')
    if saved is not None and saved.get('asked') == asked:
        config = Config(saved['amp'], saved['channels_last'])
        decision = Decision(config, f'Speed options of the resumed run: {config.label()}.')
    elif not hardware_dependent or (policy in ('off', 'force') and 'auto' not in (amp, cl)):
        return None
    else:
        decision = decide(opt, device, cpu or cpu_info(), make_step)
    train_opt.update(amp=decision.config.amp, channels_last=decision.config.channels_last,
                     speed_choice={**dataclasses.asdict(decision.config), 'asked': asked})
    if decision.message:
        (logger.warning if decision.dropped else logger.info)(decision.message)
    return decision


def decide(opt: dict, device: torch.device, cpu: CpuInfo, make_step: StepFactory | None
           ) -> Decision:
    train_opt = opt['train']
    policy = train_opt.get('speed_policy', 'warn')
    with rng_kept():
        net = build_from_opt(ARCH_REGISTRY, opt['network_g'], 'network_g')
        conv_net = has_conv(net)
        asked, configs, notes = candidates(train_opt, device, cpu, conv_net)
        shape = probe_input_shape(opt, net)
        why_untimed = ('speed_policy: ' + policy if policy in ('off', 'force') else
                       'distributed run' if get_dist_info()[1] > 1 else
                       'no train gt_size / batch_size_per_gpu' if shape is None else
                       None if len(configs) > 1 else 'one candidate')
        timings: dict[Config, float] = {}
        if why_untimed is None:
            try:
                timings = measure(configs, make_step or step_factory(net, shape, device))
            except Exception as err:  # a network that needs more than an LQ batch, OOM, ...
                why_untimed = f'the probe could not train network_g alone: {first_line(err)}'
    if policy in ('off', 'force'):
        notes = []  # keep what the option file asks
        configs = [asked, *configs]
    if timings:
        chosen = choose(asked, timings)
        where = (f"{net.__class__.__name__}, batch {shape[0]}, LQ {shape[2]}x{shape[3]}, "
                 f'{device.type}')
        line = f'speed probe ({where}; s/step, min of repeats): {describe_timings(timings)}'
    else:
        chosen = capability_choice(train_opt, configs, device, conv_net)
        line = f'speed options decided without timing ({why_untimed})'
    dropped = dropped_options(asked, chosen)
    reasons = '; '.join(notes)
    message = (f'{line}{"; " + reasons if reasons else ""}: training with {chosen.label()}'
               + (f" instead of {asked.label()} (train.speed_policy: warn; 'force' keeps it)."
                  if dropped else '.'))
    if dropped and policy == 'strict':
        raise OptionError(f"train.{', train.'.join(dropped)}: slower on this machine "
                          f'(train.speed_policy: strict): {message}')
    return Decision(chosen, message, dropped)

