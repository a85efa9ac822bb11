"""The planner's printed table and recommendation."""
from __future__ import annotations

import torch

from basicsr_lite.plan.measure import Setting
from basicsr_lite.plan.planner import Plan
from basicsr_lite.utils.sizes import format_bytes


def plan_table(plan: Plan, opt: dict, device: torch.device, largest: int | None) -> str:
    request = plan.request
    lines = [f"Memory plan for {opt['name']} ({opt['network_g']['type']}, "
             f"{opt['model_type']}, amp {opt['train'].get('amp') or 'off'}) on {device}: "
             f'{format_bytes(request.budget)} per process, {request.margin:.0%} margin '
             f'-> {format_bytes(request.usable)} usable.',
             'Measured (two real training steps each; peak = everything allocated at once):']
    for m in plan.measured:
        s = m.setting
        lines.append(f'  gt_size {s.gt_size}, batch {s.batch}'
                     + (', checkpointed' if s.use_checkpoint else '')
                     + f': peak {format_bytes(m.peak)} = weights {format_bytes(m.weights)}'
                     f' + gradients {format_bytes(m.gradients)} + optimizer states '
                     f'{format_bytes(m.optimizer_states)} + saved activations '
                     f'{format_bytes(m.saved_activations)} + transients '
                     f'{format_bytes(m.transient)}')
    for flag, fit in plan.fits.items():
        lines.append(f"  fit{' (checkpointed)' if flag else ''}: the larger of forward/backward "
                     f'{format_bytes(fit.passes.fixed)} + {fit.passes.per_pixel:.1f} bytes per GT '
                     f'pixel of the batch, and updates {format_bytes(fit.updates.fixed)} + '
                     f'{fit.updates.per_pixel:.1f} bytes per pixel')
    head = '| gt_size | batch 1 | largest batch that fits | its peak |'
    rule = '|---:|---:|---:|---:|'
    if True in plan.fits and False in plan.fits:
        head += ' checkpointed: batch 1 | largest batch | its peak |'
        rule += '---:|---:|---:|'
    lines += ['', head, rule]
    for patch in plan.patches:
        row = f'| {patch} |'
        for flag in sorted(plan.fits):
            fit = plan.fits[flag]
            batch = fit.largest_batch(patch, request.usable, request.max_batch)
            row += f' {format_bytes(fit.predict(Setting(patch, 1)))} | {batch or "none"} | '
            row += (f'{format_bytes(fit.predict(Setting(patch, batch)))} |' if batch else '- |')
        lines.append(row)
    if largest is not None:
        lines.append(f'(patches up to the smallest training image, {largest} pixels)')
    else:
        lines.append('(the training images\' sizes could not be read: check that gt_size fits '
                     'them)')
    c = plan.chosen
    per_step = c.batch * request.world_size * plan.accumulate
    lines += ['', f'Recommendation: datasets.train.gt_size: {c.gt_size}, batch_size_per_gpu: '
                  f'{c.batch}, train.accumulate_grad_batches: {plan.accumulate}'
                  + (', network_g.use_checkpoint: true' if c.use_checkpoint else '')
                  + f' (predicted peak {format_bytes(plan.fits[c.use_checkpoint].predict(c))};'
                    f' {per_step} images per optimizer step over {request.world_size} '
                    f'process(es)).']
    lines += [f'Note: {note}.' for note in plan.notes]
    return '\n'.join(lines)
