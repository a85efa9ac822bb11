"""``train.py --plan [show|apply|verify]``: measure, print the table and the recommendation;
``apply`` writes it into a copy of the option file, ``verify`` checks it with a real step.

Nothing is trained and no experiment folder is made. A distributed run is planned per process
(the budget is one process's), with the launch's world size."""
from __future__ import annotations

import logging
import math

import torch

from basicsr_lite.archs.capabilities import capability
from basicsr_lite.archs.constraints import network_needs
from basicsr_lite.plan.apply import write_planned_copy
from basicsr_lite.plan.check import real_step_peak
from basicsr_lite.plan.planner import (Plan, Request, available_memory, candidate_patches,
                                       make_plan)
from basicsr_lite.plan.report import plan_table
from basicsr_lite.plan.sizes import smallest_training_image
from basicsr_lite.utils.sizes import format_bytes, parse_bytes

logger = logging.getLogger('basicsr_lite')


def request_of(opt: dict, device: torch.device, memory: str | None,
               effective_batch: int | None) -> Request:
    section = opt['train'].get('plan') or {}
    memory = memory if memory is not None else section.get('memory')
    budget = parse_bytes(memory, '--memory' if memory is not None else 'train.plan.memory') \
        if memory is not None else available_memory(device)
    return Request(budget=budget, margin=section.get('margin', 0.1),
                   effective_batch=effective_batch or section.get('effective_batch'),
                   world_size=opt['world_size'], max_batch=section.get('max_batch', 64))


def offered_patches(opt: dict) -> tuple[list[int], int | None]:
    """GT patch sides the networks and the data allow, and the smallest training image's side:
    multiples of scale x the network's input multiple (or the window it pads to); a
    discriminator built for one input size (VGG-style) fixes the patch to it."""
    cap = capability(opt['network_g'])
    scale = int(opt['scale'])
    largest = smallest_training_image(opt)
    for key in sorted(k for k in opt if k.startswith('network_') and k != 'network_g'):
        if isinstance(opt[key], dict) and 'type' in opt[key]:
            fixed = network_needs(opt[key]).input_size
            if fixed is not None:
                return ([fixed] if largest is None or fixed <= largest else []), largest
    # multiples of the window a transformer pads to: no padding to pay for, exact fits
    unit = scale * math.lcm(cap.size_multiple, cap.pads_to)
    patches = candidate_patches(opt['datasets']['train']['gt_size'], unit, scale * cap.min_size,
                                largest)
    return patches, largest


def run_plan(opt: dict, mode: str, memory: str | None = None,
             effective_batch: int | None = None, device: torch.device | None = None) -> Plan:
    """Plan ``opt`` (parsed options), print the report; see the module docstring."""
    from basicsr_lite.engine.experiment import select_device
    device = device or select_device(opt)
    request = request_of(opt, device, memory, effective_batch)
    patches, largest = offered_patches(opt)
    can_checkpoint = capability(opt['network_g']).checkpointing
    plan = make_plan(opt, device, request, patches, can_checkpoint)
    print(plan_table(plan, opt, device, largest), flush=True)
    if mode == 'verify':
        predicted = plan.fits[plan.chosen.use_checkpoint].predict(plan.chosen)
        measured, how = real_step_peak(opt, device, plan.chosen)
        print(f'Check at the chosen setting: predicted {format_bytes(predicted)}, measured '
              f'{format_bytes(measured)} ({how}); predicted / measured = '
              f'{predicted / measured:.3f}.', flush=True)
    if mode == 'apply':
        path = write_planned_copy(opt['opt_path'], plan)
        print(f'Wrote {path} (the original is unchanged): train with '
              f'python train.py -opt {path}', flush=True)
    return plan
