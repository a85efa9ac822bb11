"""Old top-level keys of BasicSR option files (e.g. ``test_RCAN.yml``), moved to where they are
read now: ``suffix`` and ``save_img`` to ``val``, ``crop_border`` to each metric. Each move gives
a deprecation message saying where the key belongs."""
from __future__ import annotations

import copy
import inspect
from typing import Any

from basicsr_lite.registry import METRIC_REGISTRY

LEGACY_KEYS = ('suffix', 'save_img', 'crop_border')
# what each one meant (the option reference and the JSON Schema list them as deprecated)
LEGACY_DOCS = {
    'suffix': 'Deprecated: write val.suffix (a top-level suffix is moved there, with a warning).',
    'save_img': 'Deprecated: write val.save_img (a top-level save_img is moved there, with a '
                'warning).',
    'crop_border': "Deprecated: each metric's own crop_border (val.metrics.<name>.crop_border); "
                   "a top-level one is given to the metrics that lack one (null: scale), with "
                   "a warning.",
}


def move_legacy_keys(raw: dict, is_train: bool) -> tuple[dict, list[str]]:
    """``raw`` with its old top-level keys moved (a copy when there are any), and one message
    per key. A test file without a ``val`` section gets one for ``suffix`` / ``save_img``; a
    value already in its new place wins over the old key."""
    if not any(key in raw for key in LEGACY_KEYS):
        return raw, []
    opt = copy.deepcopy(raw)
    if opt.get('val') is None and not is_train and ('suffix' in opt or 'save_img' in opt):
        opt['val'] = {}
    val = opt.get('val')
    notes = []
    for key in ('suffix', 'save_img'):
        if key in opt:
            notes.append(_move_to_val(opt, val, key))
    if 'crop_border' in opt:
        notes.append(_move_crop_border(opt, val))
    return opt, notes


def _move_to_val(opt: dict, val: Any, key: str) -> str:
    value = opt.pop(key)
    old = f'top-level {key} is deprecated: it belongs in val.{key}'
    if not isinstance(val, dict):
        return f'{old}; without a val section it is unused.'
    if key in val:
        return f'{old}, whose value {val[key]!r} is used (not {value!r}).'
    val[key] = value
    return f'{old} (applied: val.{key} = {value!r}); write it there.'


def _move_crop_border(opt: dict, val: Any) -> str:
    """BasicSR's ``crop_border: ~`` meant "crop ``scale`` pixels"."""
    value = opt.pop('crop_border')
    border = opt.get('scale', 1) if value is None else value
    old = 'top-level crop_border is deprecated: each metric has its own ' \
          '(val.metrics.<name>.crop_border)'
    metrics = val.get('metrics') if isinstance(val, dict) else None
    moved = [name for name, metric in (metrics if isinstance(metrics, dict) else {}).items()
             if isinstance(metric, dict) and 'crop_border' not in metric
             and _takes_crop_border(metric.get('type'))]
    for name in moved:
        metrics[name]['crop_border'] = border
    if not moved:
        return f'{old}; no metric here lacks one, so it is unused.'
    return (f'{old} (applied: crop_border {border!r} for {", ".join(moved)}); write it '
            f'there.')


def _takes_crop_border(metric_type: Any) -> bool:
    try:
        func = METRIC_REGISTRY.get(metric_type)
    except (KeyError, TypeError):  # an unknown type: validation names it
        return False
    return 'crop_border' in inspect.signature(func).parameters
