"""BaseModel: device placement, DDP, optimizers/schedulers, steppers, EMA, and its own state
(``state_dict`` / ``load_state_dict``); where and how checkpoints are written is
``engine/checkpoint``'s business.

Subclasses hold the maths of a training step (``feed_data``, ``optimize_parameters``, ``test``).
"""
from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from basicsr_lite.archs import build_network
from basicsr_lite.errors import CheckpointError, TrainingError
from basicsr_lite.runtime.weights import load_weights_into
from basicsr_lite.runtime.dist import reduce_mean, unwrap
from basicsr_lite.runtime.ema import ModelEMA
from basicsr_lite.runtime.lr_scheduler import build_scheduler, steps_per_iteration
from basicsr_lite.runtime.optim import build_optimizer, set_weights_mode
from basicsr_lite.runtime.speed import (compile_kwargs, maybe_compile,
                                         network_to_channels_last, to_memory_format)
from basicsr_lite.runtime.step import Fault, OptimizerStepper, StepResult, autocast, no_sync

logger = logging.getLogger('basicsr_lite')


class BaseModel:
    """Shared plumbing of all models. ``network_keys`` and :meth:`train_keys` declare which
    option keys a model uses, so option validation can reject the others."""

    network_keys: tuple[str, ...] = ('network_g',)
    ema_stepper = 'g'  # the stepper whose steps the EMA of net_g follows

    @classmethod
    def option_keys(cls, kit) -> dict:
        """The model's own top-level option keys, ``{key: spec}`` (see :meth:`train_keys`)."""
        return {}

    @classmethod
    def option_problems(cls, opt: dict, is_train: bool) -> list[str]:
        """Problems of a valid-looking option file that only this model knows of (values that
        must agree across sections), each ``'<key>: <what is wrong>'``."""
        return []

    @classmethod
    def train_keys(cls, kit) -> dict:
        """The model's own ``train.*`` keys, ``{key: spec}``, made with ``kit``
        (:class:`basicsr_lite.options.spec.SpecKit`: ``optimizer()``, ``loss()``, ``Value``);
        the loop's keys (total_iter, scheduler, amp, ...) are always there."""
        return {}

    def __init__(self, opt: dict, device: torch.device) -> None:
        self.opt = opt
        self.device = device
        self.is_train = opt['is_train']
        self.optimizers: list[torch.optim.Optimizer] = []
        self.optimizer_keys: list[str] = []  # the option of each optimizer ('train.optim_g')
        self.schedulers: list[torch.optim.lr_scheduler.LRScheduler] = []
        self.steppers: dict[str, OptimizerStepper] = {}  # name -> step helper of an optimizer
        self.stepper_labels: dict[str, str] = {}  # name -> the networks it trains ('net_g')
        self.ema: ModelEMA | None = None
        self.log_dict: OrderedDict[str, torch.Tensor] = OrderedDict()
        # {dataset_name: {metric: {'val': best value, 'iter': iteration}}}
        self.best_metric_results: dict[str, dict[str, dict[str, float]]] = {}
        self.skipped_steps = 0  # non-finite steps dropped under train.nan_policy: skip
        # Where the newest checkpoint is, for error messages (the engine, which writes them,
        # sets it; a model knows no paths).
        self.last_checkpoint: Callable[[], str] = lambda: 'none saved yet'

    # ---- networks ------------------------------------------------------------------------------
    def speed_option(self, key: str, default=None):
        """A ``train.*`` speed option (see ``runtime.speed``); ``default`` when testing."""
        return (self.opt.get('train') or {}).get(key, default) if self.is_train else default

    def model_to_device(self, net: nn.Module, label: str = 'network') -> nn.Module:
        """On the device (NHWC with ``train.channels_last``), in DDP when distributed, compiled
        with ``train.compile``."""
        net = net.to(self.device)
        if self.speed_option('channels_last', False):
            net = network_to_channels_last(net)
        if self.opt['dist']:
            device_ids = [self.device.index] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(net, device_ids=device_ids,
                                          find_unused_parameters=self.opt['find_unused_parameters'])
        return maybe_compile(net, label, compile_kwargs(self.speed_option('compile', False)))

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A batch tensor on the device, NHWC with ``train.channels_last``."""
        return to_memory_format(tensor.to(self.device, non_blocking=True),
                                self.speed_option('channels_last', False))

    def build_net(self, key: str) -> nn.Module:
        """``network_<x>``: build it, load ``path.pretrain_network_<x>`` (with
        ``strict_load_<x>``, ``param_key_<x>``) if set, describe it, put it on the device."""
        net = build_network(self.opt[key], key)
        suffix, paths = key.split('_', 1)[1], self.opt['path']
        if paths.get(f'pretrain_network_{suffix}'):
            self.load_network(net, paths[f'pretrain_network_{suffix}'],
                              paths[f'strict_load_{suffix}'], paths[f'param_key_{suffix}'])
        num_params = sum(p.numel() for p in net.parameters())
        logger.info(f'Network {net.__class__.__name__}, with parameters: {num_params:,d}')
        return self.model_to_device(net, key)

    def load_network(self, net: nn.Module, load_path: str, strict: bool = True,
                     param_key: str | None = 'params') -> None:
        """Load weights into ``net``; every mismatch is reported key by key."""
        load_weights_into(net, load_path, strict, param_key)
        logger.info(f'Loaded {unwrap(net).__class__.__name__} from {load_path} [{param_key}].')

    def networks_to_save(self) -> dict[str, dict[str, nn.Module]]:
        """``{file label: {param key: network}}``, e.g. ``{'net_g': {'params': net_g,
        'params_ema': ema}}`` -> ``models/net_g_<iter>.pth`` holding both state dicts."""
        raise NotImplementedError

    @classmethod
    def network_labels(cls) -> tuple[str, ...]:
        """File labels of the networks: ``network_g`` -> ``net_g``, ``network_d`` -> ``net_d``."""
        return tuple(f"net_{key.split('_', 1)[1]}" for key in cls.network_keys)

    # ---- optimisation ----------------------------------------------------------------------------
    def setup_optimizer(self, params, optim_opt: dict,
                        where: str = 'train.optim_g') -> torch.optim.Optimizer:
        optimizer = build_optimizer(params, optim_opt, where,
                                    self.speed_option('optimizer_impl', 'auto'))
        for group in optimizer.param_groups:  # warm-up needs it even without a scheduler
            group.setdefault('initial_lr', group['lr'])
        self.optimizers.append(optimizer)
        self.optimizer_keys.append(where)
        return optimizer

    def setup_schedulers(self) -> None:
        scheduler_opt = self.opt['train']['scheduler']
        if scheduler_opt is not None:
            self.schedulers = [build_scheduler(o, scheduler_opt, self.opt)
                               for o in self.optimizers]

    def update_learning_rate(self, current_iter: int, warmup_iter: int = -1) -> None:
        """Step the schedulers to ``current_iter``; linear warm-up for the first iterations. A
        scheduler stepped on validations (ReduceLROnPlateau) sets its own rates after it."""
        if current_iter > 1:
            for scheduler in self.schedulers:
                if steps_per_iteration(scheduler):
                    scheduler.step()
        on_validation = {id(s.optimizer): s for s in self.schedulers
                         if not steps_per_iteration(s)}
        for optimizer in self.optimizers:
            plateau = on_validation.get(id(optimizer))
            for i, group in enumerate(optimizer.param_groups):
                if current_iter < warmup_iter:
                    group['lr'] = group['initial_lr'] * current_iter / warmup_iter
                elif plateau is not None:
                    group['lr'] = plateau.scheduled_lrs[i]
                elif not self.schedulers:  # constant after warm-up
                    group['lr'] = group['initial_lr']

    def set_weights_mode(self, train: bool) -> None:
        """Put the networks of schedule-free optimizers at their training point (``train``,
        where gradients are taken) or at their averaged point (validation and the saved
        network files); nothing for other optimizers or when they are there already. The
        optimizer state says which, so a training state saved at either resumes exactly."""
        for optimizer in self.optimizers:
            set_weights_mode(optimizer, train)

    def get_current_learning_rate(self) -> list[float]:
        return [group['lr'] for group in self.optimizers[0].param_groups]

    def learning_rates(self) -> dict[str, float]:
        """``{optimizer: learning rate of its first group}``, e.g. ``{'g': 1e-4, 'd': 1e-4}``."""
        return {name: s.optimizer.param_groups[0]['lr'] for name, s in self.steppers.items()}

    def gradient_norms(self) -> dict[str, float]:
        """``{networks of a step: global gradient norm of their last step}`` (before clipping;
        a host read of values the steps computed anyway)."""
        return {label: float(self.steppers[name].last_grad_norm)
                for name, label in self.stepper_labels.items()
                if self.steppers[name].last_grad_norm is not None}

    def named_networks(self) -> dict[str, nn.Module]:
        """The trained networks by label (``net_g``, ``net_d``), as built (maybe wrapped)."""
        return {label: net for name, label in self.stepper_labels.items()
                for net in self.steppers[name].networks[:1]}

    def keep_gradients(self, keep: bool = True) -> None:
        """Keep each step's gradients until the next step (to inspect them; more memory)."""
        for stepper in self.steppers.values():
            stepper.keep_grads = keep

    def setup_stepper(self, name: str, optimizer: torch.optim.Optimizer,
                      networks: dict[str, nn.Module]) -> OptimizerStepper:
        """The step helper of ``optimizer``, which trains ``networks`` ({label: network}), with
        the run's ``train.amp``, ``accumulate_grad_batches`` and ``clip_grad_norm``."""
        train_opt = self.opt['train']
        clip = train_opt.get('clip_grad_norm')
        if isinstance(clip, dict):
            limits = [clip[label] for label in networks if label in clip]
            clip = min(limits) if limits else None
        scaler = torch.amp.GradScaler(self.device.type) if train_opt.get('amp') == 'fp16' \
            else None
        stepper = OptimizerStepper(name, optimizer, list(networks.values()),
                                   train_opt.get('accumulate_grad_batches', 1), clip, scaler,
                                   halt_on_fault=train_opt.get('nan_policy', 'stop') == 'stop')
        self.steppers[name] = stepper
        self.stepper_labels[name] = '+'.join(networks)
        return stepper

    def autocast(self):
        """Mixed precision for the forward passes of training (``train.amp``)."""
        return autocast(self.device, (self.opt.get('train') or {}).get('amp'))

    def no_sync(self, active: bool):
        """DDP gradient synchronisation off for every trained network (all micro-batches of an
        accumulated step but the last)."""
        return no_sync([net for s in self.steppers.values() for net in s.networks], active)

    def step(self, name: str, losses: dict[str, torch.Tensor], current_iter: int,
             ema: bool = False) -> StepResult:
        """Backward ``losses`` through stepper ``name``. A non-finite loss or gradient applies
        ``train.nan_policy`` (no weight is touched): here, or at the next :meth:`settle_steps`
        when the step was decided on the device. When the step completes, the EMA follows G:
        after G's own stepper (``ema_stepper``) if it stepped, or, with ``ema``, after this one
        (an iteration that does not train G)."""
        result = self.steppers[name].backward(losses, current_iter)
        if result.deferred:
            pass
        elif result.non_finite:
            self.handle_non_finite(Fault(current_iter, {k: float(v.detach())
                                                        for k, v in losses.items()}, 1))
        elif result.scaler_skipped:
            logger.debug(f'Iteration {current_iter}: fp16 gradient overflow, the GradScaler '
                         f'skipped the {name} step and lowered its scale.')
        if result.completed and (ema or name == self.ema_stepper):
            self.update_ema(when=True if ema else result.stepped)
        return result

    def settle_steps(self) -> None:
        """Apply ``train.nan_policy`` to the steps dropped on the device since the last call (a
        host sync: the loop calls it only when it logs, saves, validates or stops)."""
        for stepper in self.steppers.values():
            fault = stepper.settle()
            if fault is not None:
                self.handle_non_finite(fault)

    def handle_non_finite(self, fault: Fault) -> None:
        what, it = fault.description(), fault.iteration
        later = fault.count - 1
        if self.opt['train']['nan_policy'] == 'skip':
            self.skipped_steps += fault.count
            more = f', and {later} later step(s) too' if later else ''
            logger.warning(f'Iteration {it}: non-finite {what}; step skipped{more} '
                           f'(train.nan_policy: skip; {self.skipped_steps} skipped so far).')
            return
        after = (f' The {later} step(s) after it were dropped as well, so the weights are those '
                 f'from before iteration {it}.') if later else ''
        raise TrainingError(
            f'Non-finite {what} at iteration {it}. Training stopped before updating any weight '
            f'with it.{after} Last good checkpoint: {self.last_checkpoint()}. Resume '
            f'from it with --auto_resume (a lower learning rate may help), or set '
            f'train.nan_policy: skip to skip such steps.')

    def update_ema(self, when: bool | torch.Tensor = True) -> None:
        """The EMA follows G (``when``: a step's ``stepped``, a bool or a 0-dim tensor decided
        on the device). With a schedule-free optimizer it follows the training point y, where
        the steps leave G (as traiNNer-redux does): the averaged point x is itself an average
        of the iterates, and moving G there for every update would cost two switches a step."""
        if self.ema is not None:
            self.ema.update(unwrap(self.net_g), when=when)

    def record_losses(self, losses: dict[str, torch.Tensor]) -> None:
        """Keep this step's losses for logging, as tensors: reading them (a GPU sync) and
        averaging them over ranks happens only when a log line is written."""
        self.log_dict = OrderedDict((k, v.detach()) for k, v in losses.items())

    def get_current_log(self) -> dict[str, float]:
        """The last step's losses averaged over ranks (a collective: call it on every rank)."""
        return reduce_mean({k: float(v) for k, v in self.log_dict.items()}, self.device)

    # ---- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The model's part of a training state (BasicSR's keys): optimizers, schedulers, fp16
        scalers, best metrics, skipped steps; subclasses add their own entries."""
        return {
            'model_type': type(self).__name__,  # a resume with another model is refused
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
            'scheduler_types': [type(s).__name__ for s in self.schedulers],
            'scalers': {name: s.scaler.state_dict() for name, s in self.steppers.items()
                        if s.scaler is not None},
            'best_metric_results': self.best_metric_results,
            'skipped_steps': self.skipped_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (a BasicSR training state too)."""
        if len(state['optimizers']) != len(self.optimizers) or \
                len(state['schedulers']) != len(self.schedulers):
            raise CheckpointError(
                f"The training state has {len(state['optimizers'])} optimizer(s) and "
                f"{len(state['schedulers'])} scheduler(s); this model has {len(self.optimizers)} "
                f'and {len(self.schedulers)}. Did train.optim_g / train.scheduler change?')
        for optimizer, saved in zip(self.optimizers, state['optimizers']):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state['schedulers']):
            scheduler.load_state_dict(saved)
        for name, saved in state.get('scalers', {}).items():
            scaler = self.steppers[name].scaler if name in self.steppers else None
            if scaler is not None:  # a run may resume with train.amp changed
                scaler.load_state_dict(saved)
        self.best_metric_results = state.get('best_metric_results', {})
        self.skipped_steps = state.get('skipped_steps', 0)

    def rank_state(self) -> dict:
        """State that differs between ranks (e.g. a random stream, a pool of training pairs),
        saved for every rank with the training state."""
        return {}

    def load_rank_state(self, state: dict) -> None:
        """Restore what :meth:`rank_state` returned on this rank."""

    # ---- validation bookkeeping ------------------------------------------------------------------
    def update_best_metric(self, dataset_name: str, metric: str, value: float, better: str,
                           current_iter: int) -> None:
        record = self.best_metric_results.setdefault(dataset_name, {}).setdefault(
            metric, {'val': -math.inf if better == 'higher' else math.inf, 'iter': -1})
        improved = value > record['val'] if better == 'higher' else value < record['val']
        if improved:
            record.update(val=value, iter=current_iter)
