"""Per-image metadata for conditioned networks (SFTMD): the ``meta`` vector of a sample.

A dataset's ``metadata`` option lists the values it emits, in order; each is mapped to [0, 1]
by its range, ``(value - low) / (high - low)`` (``metadata_range: {name: [low, high]}``; the
degradations' own values have fixed default ranges, ``DEGRADATION_RANGES``; values without a
range are used as they are). The values come from the degradation a dataset applied
(DegradationDataset: ``blur_sigma``, ``noise_sigma``, ``jpeg_quality``) or from a sidecar
file next to the images (PairedImageDataset ``metadata_file``): a CSV with a ``name``
column (the GT image's name without extension) and one column per value, or a JSON object
``{name: {value name: number}}``.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Sequence

import torch

from basicsr_lite.errors import DataError
from basicsr_lite.utils.misc import read_user_text

DEGRADATION_KEYS = ('blur_sigma', 'noise_sigma', 'jpeg_quality')
# default ranges of the degradation values (sigmas in pixels / on 0..255, JPEG quality)
DEGRADATION_RANGES = {'blur_sigma': (0.0, 4.0), 'noise_sigma': (0.0, 50.0),
                      'jpeg_quality': (0.0, 100.0)}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metadata_problems(options: dict[str, Any],
                      available: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """``(key, what is wrong)`` for a dataset entry's ``metadata`` / ``metadata_range``;
    ``available``: the names this dataset can give (None: any, from a metadata file)."""
    keys, ranges = options.get('metadata'), options.get('metadata_range')
    if keys is None:
        return [('metadata_range', 'is set but metadata is not.')] if ranges else []
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        return [('metadata', f'expected a list of value names; got {keys!r}.')]
    problems = []
    if len(set(keys)) != len(keys):
        problems.append(('metadata', f'names a value twice: {keys}.'))
    if available is not None:
        problems += [('metadata', f"'{k}' is not a value this dataset gives (it gives "
                                  f"{', '.join(available)}).") for k in keys if k not in available]
    for name, bounds in (ranges or {}).items():
        if name not in keys:
            problems.append((f'metadata_range.{name}', f'is not in metadata ({", ".join(keys)}).'))
        elif not (isinstance(bounds, list) and len(bounds) == 2 and all(map(_number, bounds))
                  and bounds[0] < bounds[1]):
            problems.append((f'metadata_range.{name}', f'expected [low, high] with low < high; '
                                                       f'got {bounds!r}.'))
    return problems


def read_metadata_file(path: str | Path) -> dict[str, dict[str, float]]:
    """``{image name: {value name: number}}`` from a CSV (``name`` column) or JSON file."""
    path = Path(path)
    text = read_user_text(path, 'metadata file', DataError)
    if path.suffix.lower() == '.json':
        try:
            table = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f'Metadata file {path} is not valid JSON: {err}.') from err
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            raise DataError(f'Metadata file {path}: expected {{image name: {{value name: '
                            f'number}}}}.')
        rows = [(f'entry {name!r}', name, values) for name, values in table.items()]
    else:
        reader = csv.DictReader(text.splitlines())
        if 'name' not in (reader.fieldnames or []):
            raise DataError(f"Metadata file {path}: the CSV needs a 'name' column (the GT image's "
                            f"name without extension); its columns: {reader.fieldnames}.")
        rows = [(f'line {i}', row.pop('name'), row) for i, row in enumerate(reader, 2)]
    table: dict[str, dict[str, float]] = {}
    for where, name, values in rows:
        parsed = {}
        for key, value in values.items():
            try:
                parsed[key] = float(value)
            except (TypeError, ValueError):
                raise DataError(f'Metadata file {path}, {where}: {key} = {value!r} is not a '
                                f'number.') from None
            if not math.isfinite(parsed[key]):
                raise DataError(f'Metadata file {path}, {where}: {key} is {value}.')
        table[str(name)] = parsed
    return table


class MetadataVector:
    """Makes a sample's ``meta`` tensor: the values of ``keys``, each mapped by its range."""

    def __init__(self, keys: Sequence[str], ranges: dict[str, Sequence[float]] | None = None,
                 default_ranges: dict[str, Sequence[float]] | None = None) -> None:
        self.keys = tuple(keys)
        merged = {**(default_ranges or {}), **(ranges or {})}
        self.ranges = {k: tuple(map(float, merged[k])) for k in self.keys if k in merged}

    def __len__(self) -> int:
        return len(self.keys)

    def __call__(self, values: dict[str, float]) -> torch.Tensor:
        out = []
        for key in self.keys:
            value = float(values[key])
            if key in self.ranges:
                low, high = self.ranges[key]
                value = (value - low) / (high - low)
            out.append(value)
        return torch.tensor(out, dtype=torch.float32)

    def check_table(self, table: dict[str, dict[str, float]], names: Sequence[str],
                    source: str) -> None:
        """A DataError naming the images of ``names`` that ``table`` lacks values for."""
        problems = []
        for name in names:
            if name not in table:
                problems.append(f'{name} (no entry)')
            else:
                missing = [k for k in self.keys if k not in table[name]]
                if missing:
                    problems.append(f'{name} (no {", ".join(missing)})')
        if problems:
            more = f' and {len(problems) - 5} more' if len(problems) > 5 else ''
            raise DataError(f'{source} lacks metadata for {len(problems)} image(s): '
                            f'{"; ".join(problems[:5])}{more}.')
