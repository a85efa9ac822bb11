"""``--plan apply``: the recommendation written into a copy of the option file."""
from __future__ import annotations

from pathlib import Path

import yaml

from basicsr_lite.plan.planner import Plan


def planned_path(opt_path: str | Path) -> Path:
    path = Path(opt_path)
    return path.with_name(f'{path.stem}_planned.yml')


def write_planned_copy(opt_path: str | Path, plan: Plan) -> Path:
    """``<name>_planned.yml`` beside the option file, checked by the option check before it is
    written; the original is not touched."""
    from basicsr_lite.options.parse import load_option_file, validate_options
    raw = load_option_file(opt_path)
    chosen = plan.chosen
    raw['datasets']['train'].update(gt_size=chosen.gt_size, batch_size_per_gpu=chosen.batch)
    raw.setdefault('train', {})['accumulate_grad_batches'] = plan.accumulate
    if chosen.use_checkpoint:
        raw['network_g']['use_checkpoint'] = True
    out = planned_path(opt_path)
    validate_options(raw, is_train=True, source=str(out))
    header = (f'# Written by train.py --plan apply from {Path(opt_path).name}: gt_size, '
              f'batch_size_per_gpu, accumulate_grad_batches'
              + (', use_checkpoint' if chosen.use_checkpoint else '') + ' planned.\n')
    out.write_text(header + yaml.safe_dump(raw, sort_keys=False))
    return out
