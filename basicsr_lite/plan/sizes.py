"""The smallest training image: no patch larger than it is offered."""
from __future__ import annotations

import os

from basicsr_lite.data.io.scan import image_size


def gt_image_paths(dataset) -> list[str] | None:
    """The GT image files of a training dataset (disk backends); None when it keeps no file
    list this can read (LMDB keys)."""
    items = getattr(dataset, 'paths', None)
    if items is None:
        items = [a for a, _ in getattr(dataset, 'pairs', [])] or None
    if not items:
        return None
    paths = [item['gt_path'] if isinstance(item, dict) else item for item in items]
    return paths if all(isinstance(p, str) and os.path.isfile(p) for p in paths[:1]) else None


def smallest_training_image(opt: dict) -> int | None:
    """The smaller side of the smallest GT training image (headers only), None if unknown."""
    from basicsr_lite.data import build_dataset
    dataset_opt = {**opt['datasets']['train'], 'gt_size': None}
    try:
        dataset = build_dataset(dataset_opt, 'train', opt['scale'])
    except Exception:  # a dataset that needs gt_size: its own check runs when it is measured
        dataset = build_dataset(opt['datasets']['train'], 'train', opt['scale'])
    paths = gt_image_paths(dataset)
    if paths is None:
        return None
    sides = [min(size) for size in map(image_size, paths) if size is not None]
    return min(sides) if sides else None
