"""Which images of a dataset a run uses: ``max_images`` (the first N by name) and ``split`` (one
folder divided into train and val by image name)."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from basicsr_lite.data.contract import image_list_attr
from basicsr_lite.errors import OptionError


def image_name(entry: Any) -> str:
    """The name (file stem or LMDB key) of one entry of a dataset's image list."""
    if isinstance(entry, dict):
        entry = entry.get('gt_path') or entry.get('lq_path')
    elif isinstance(entry, (tuple, list)):
        entry = entry[0]
    return Path(str(entry)).stem


def in_val_part(name: str, split: dict) -> bool:
    """Whether image ``name`` belongs to the val part: it matches ``val_pattern``, or its name's
    hash falls in the first ``val_fraction`` (stable when images are added or removed)."""
    if split.get('val_pattern') is not None:
        return re.search(split['val_pattern'], name) is not None
    position = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 2**32
    return position < split['val_fraction']


def select_images(dataset: Dataset, max_images: int | None, split: dict | None,
                  where: str) -> Dataset:
    """Keep the images of ``split``'s part, then the first ``max_images`` of them (by name)."""
    if max_images is None and split is None:
        return dataset
    attr = image_list_attr(dataset)
    if attr is None:
        raise OptionError(f'{where}: max_images / split need a dataset that lists its images; '
                          f'{type(dataset).__name__} does not.')
    entries = getattr(dataset, attr)
    named = sorted(((image_name(e), e) for e in entries), key=lambda pair: pair[0])
    if split is not None:
        named = [(n, e) for n, e in named if in_val_part(n, split) == (split['part'] == 'val')]
    if max_images is not None:
        named = named[:max_images]
    if not named:
        raise OptionError(f'{where}: no image is left of the {len(entries)} after split / '
                          f'max_images.')
    setattr(dataset, attr, [e for _, e in named])
    return dataset


def split_problems(split: dict) -> list[tuple[str, str]]:
    """(key, message) of a ``split`` section that cannot work."""
    given = [k for k in ('val_fraction', 'val_pattern') if split.get(k) is not None]
    if len(given) != 1:
        return [('split', f'give exactly one of val_fraction and val_pattern; got '
                          f'{", ".join(given) or "neither"}.')]
    if given == ['val_pattern']:
        try:
            re.compile(split['val_pattern'])
        except re.error as err:
            return [('split.val_pattern', f'{split["val_pattern"]!r} is not a valid regular '
                                          f'expression: {err}.')]
    elif not 0 < split['val_fraction'] < 1:
        return [('split.val_fraction', f'expected a fraction in (0, 1); got '
                                       f'{split["val_fraction"]!r}.')]
    return []
