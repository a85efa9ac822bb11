"""Per-band normalisation of images read as stored (``read_mode: unchanged``).

Every kind is one affine map per band, ``tensor = (raw - offset) / scale``, so the network's
output maps back to the data's own units exactly (``raw = tensor * scale + offset``) for saving
and for metrics:

- ``range``: ``raw / data_range`` (default; ``data_range``: 255, 65535, or 1.0 for float data)
- ``mean_std``: ``(raw - mean) / std``
- ``min_max``: ``(raw - min) / (max - min)``
- ``percentile``: ``(raw - p_low) / (p_high - p_low)``, the percentile stretch

Statistics are given inline (``mean`` / ``std``, ``min`` / ``max``) or read from a statistics
file written by ``tools/band_stats.py`` (``stats_file``), the only source for percentiles.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from basicsr_lite.errors import DataError, OptionError, did_you_mean
from basicsr_lite.utils.misc import read_user_text

NORMALIZE_TYPES = ('range', 'mean_std', 'min_max', 'percentile')
# per type: the inline values it takes (pairs), or None when it reads only a statistics file
_INLINE = {'range': (), 'mean_std': ('mean', 'std'), 'min_max': ('min', 'max'),
           'percentile': None}
NORMALIZE_KEYS = ('type', 'stats_file', 'data_range', 'mean', 'std', 'min', 'max', 'low',
                  'high', 'clip')
STATS_FORMAT = 'basicsr_lite band statistics'


def percent_key(percent: float) -> str:
    """The key of a percentile in a statistics file: 1 -> '1', 99.5 -> '99.5'."""
    return f'{float(percent):g}'


def dtype_range(dtype: np.dtype) -> float:
    """The default data range of a pixel type: its largest value for integers, 1.0 for floats."""
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind in 'ui' else 1.0


def read_stats(path: str | Path) -> dict[str, Any]:
    """A statistics file of ``tools/band_stats.py``."""
    text = read_user_text(path, 'band statistics', OptionError)
    try:
        stats = json.loads(text)
    except json.JSONDecodeError as err:
        raise OptionError(f'Band statistics {path} is not valid JSON: {err}.') from err
    if not isinstance(stats, dict) or stats.get('format') != STATS_FORMAT:
        raise OptionError(f'{path} is not a band statistics file (make one with '
                          f'tools/band_stats.py).')
    return stats


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def normalize_problems(opt: Any, check_files: bool = True) -> list[tuple[str, str]]:
    """``(key, what is wrong)`` for a dataset's ``normalize`` section; checked with the option
    file (statistics files are read unless ``check_files`` is False), before anything runs."""
    if not isinstance(opt, dict):
        return [('normalize', f'expected a section ({{type: {" | ".join(NORMALIZE_TYPES)}, '
                              f'...}}); got {opt!r}.')]
    problems = [(f'normalize.{k}', f'unknown key{did_you_mean(str(k), NORMALIZE_KEYS)}')
                for k in opt if k not in NORMALIZE_KEYS]
    kind = opt.get('type', 'range')
    if kind not in NORMALIZE_TYPES:
        return problems + [('normalize.type', f'expected one of {", ".join(NORMALIZE_TYPES)}; '
                                              f'got {kind!r}.')]
    inline = _INLINE[kind] or ()
    takes = ('low', 'high') if kind == 'percentile' else inline
    unused = [k for k in ('mean', 'std', 'min', 'max', 'low', 'high') if k in opt and
              k not in takes]
    problems += [(f'normalize.{k}', f'is not used by type {kind}.') for k in unused]
    if 'stats_file' in opt and kind == 'range':
        problems.append(('normalize.stats_file', 'is not used by type range.'))
    elif 'stats_file' in opt and not isinstance(opt['stats_file'], str):
        problems.append(('normalize.stats_file', f'expected a file path; got '
                                                 f'{opt["stats_file"]!r}.'))
    data_range = opt.get('data_range')
    if data_range is not None and not (_is_number(data_range) and data_range > 0):
        problems.append(('normalize.data_range', f'expected a number > 0; got {data_range!r}.'))
    if not isinstance(opt.get('clip', False), bool):
        problems.append(('normalize.clip', f'expected true or false; got {opt["clip"]!r}.'))
    given = [k for k in inline if k in opt]
    if given and 'stats_file' in opt:
        problems.append(('normalize', f'give {" and ".join(inline)} or stats_file, not both.'))
    elif given and len(given) != len(inline):
        problems.append(('normalize', f'type {kind} needs both {" and ".join(inline)}.'))
    for key in given:
        values = opt[key]
        if not isinstance(values, list) or not values or not all(map(_is_number, values)):
            problems.append((f'normalize.{key}', f'expected a list of numbers, one per band; '
                                                 f'got {values!r}.'))
    if kind == 'percentile':
        low, high = opt.get('low', 1), opt.get('high', 99)
        if not all(_is_number(v) and 0 <= v <= 100 for v in (low, high)) or low >= high:
            problems.append(('normalize', f'low and high are percentiles, 0 <= low < high <= '
                                          f'100; got low {low!r}, high {high!r}.'))
    if kind != 'range' and not given and 'stats_file' not in opt:
        needs = f'{" and ".join(inline)}, or stats_file' if inline else 'stats_file'
        problems.append(('normalize', f'type {kind} needs {needs} (tools/band_stats.py writes '
                                      f'one).'))
    stats_file = opt.get('stats_file')
    if isinstance(stats_file, str) and not problems and check_files:
        try:
            stats = read_stats(stats_file)
        except OptionError as err:
            return [('normalize.stats_file', str(err))]
        if kind == 'percentile':
            missing = [percent_key(p) for p in (opt.get('low', 1), opt.get('high', 99))
                       if percent_key(p) not in stats.get('percentiles', {})]
            if missing:
                problems.append(('normalize.stats_file', f'{stats_file} has no percentile '
                                 f'{", ".join(missing)} (it has '
                                 f'{", ".join(stats.get("percentiles", {})) or "none"}); '
                                 f'run tools/band_stats.py with --percentiles.'))
    return problems


@dataclass(frozen=True)
class BandCodec:
    """Raw pixels <-> network tensors, per band: ``tensor = (raw - offset) / scale``."""
    kind: str
    offset: tuple[float, ...]  # one value per band
    scale: tuple[float, ...]
    dtype: str  # the images' pixel type: what results are saved as
    bands: int
    data_range: float  # the peak of PSNR / SSIM in raw units
    clip: bool = False  # clamp tensors to [0, 1] (percentile / min_max stretch)

    def _affine(self, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Offset and scale shaped for the band axis of (N)CHW tensors."""
        offset = torch.tensor(self.offset, dtype=dtype, device=device).view(-1, 1, 1)
        scale = torch.tensor(self.scale, dtype=dtype, device=device).view(-1, 1, 1)
        return offset, scale

    def check(self, img: np.ndarray, name: str) -> None:
        """A DataError when ``img`` (HWC) is not of this dataset's pixel type and band count."""
        if img.dtype != np.dtype(self.dtype) or img.shape[2] != self.bands:
            raise DataError(f'{name} has {img.shape[2]} band(s) of {img.dtype}, but this '
                            f"dataset's images have {self.bands} band(s) of {self.dtype}.")

    def encode(self, img: np.ndarray) -> torch.Tensor:
        """An HWC image (any pixel type) -> a normalised CHW float32 tensor."""
        tensor = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()
        offset, scale = self._affine(tensor.device, torch.float32)
        tensor = (tensor - offset) / scale
        return tensor.clamp_(0, 1) if self.clip else tensor

    def decode(self, tensor: torch.Tensor) -> torch.Tensor:
        """A normalised (N)CHW tensor -> raw units, float64, clamped to the pixel type's range
        and, for integer types, rounded to its levels (what a saved result holds)."""
        offset, scale = self._affine(tensor.device, torch.float64)
        raw = tensor.detach().to(torch.float64) * scale + offset
        if np.dtype(self.dtype).kind in 'ui':
            info = np.iinfo(np.dtype(self.dtype))
            raw = raw.round().clamp_(info.min, info.max)
        return raw

    def to_image(self, tensor: torch.Tensor) -> np.ndarray:
        """A normalised CHW / 1CHW tensor -> an HWC image of the dataset's pixel type."""
        raw = self.decode(tensor.reshape(tensor.shape[-3:])).cpu().numpy().transpose(1, 2, 0)
        return raw.astype(self.dtype)

    def display(self, tensor: torch.Tensor) -> torch.Tensor:
        """For viewing: the first three bands (or the one) of a tensor, in [0, 1] (the stretch
        itself for min_max / percentile, raw / data_range otherwise)."""
        count = 3 if tensor.shape[-3] >= 3 else 1
        bands = tensor[..., :count, :, :].float()
        if self.kind in ('min_max', 'percentile'):
            return bands.clamp(0, 1)
        offset, scale = self._affine(tensor.device, torch.float32)
        return ((bands * scale[:count] + offset[:count]) / self.data_range).clamp(0, 1)

    def describe(self) -> str:
        values = ', '.join(f'({o:g}, {s:g})' for o, s in zip(self.offset, self.scale))
        return (f'{self.bands} band(s) of {self.dtype}, normalize {self.kind} '
                f'(offset, scale per band: {values}), data range {self.data_range:g}')


def _per_band(values: list[float], bands: int, what: str, where: str) -> tuple[float, ...]:
    if len(values) != bands:
        raise DataError(f'{where}: {what} has {len(values)} value(s) but the images have {bands} '
                        f'band(s).')
    return tuple(float(v) for v in values)


def build_codec(opt: dict | None, dtype: np.dtype, bands: int, where: str) -> BandCodec:
    """The codec of a ``normalize`` section (checked by :func:`normalize_problems`) for images
    of ``bands`` bands of ``dtype``."""
    opt = dict(opt or {})
    kind = opt.get('type', 'range')
    data_range = float(opt.get('data_range') or dtype_range(dtype))
    stats = read_stats(opt['stats_file']) if opt.get('stats_file') else None
    if stats is not None:
        if stats.get('bands') != bands or stats.get('dtype') != np.dtype(dtype).name:
            raise DataError(f"{where}: {opt['stats_file']} describes {stats.get('bands')} "
                            f"band(s) of {stats.get('dtype')}, but the images have {bands} "
                            f'band(s) of {np.dtype(dtype).name}.')
    if kind == 'range':
        offset, scale = (0.0,) * bands, (data_range,) * bands
    elif kind == 'percentile':
        low, high = (stats['percentiles'][percent_key(opt.get(k, d))]
                     for k, d in (('low', 1), ('high', 99)))
        offset = _per_band(low, bands, 'the low percentile', where)
        scale = tuple(h - lo for h, lo in zip(_per_band(high, bands, 'the high percentile',
                                                        where), offset))
    else:
        first, second = _INLINE[kind]
        source = stats if stats is not None else opt
        offset = _per_band(source[first], bands, f'normalize.{first}', where)
        second_values = _per_band(source[second], bands, f'normalize.{second}', where)
        scale = second_values if kind == 'mean_std' else tuple(
            hi - lo for hi, lo in zip(second_values, offset))
    flat = [i for i, s in enumerate(scale) if not s > 0]
    if flat:
        divisors = ', '.join(f'{scale[i]:g}' for i in flat)
        raise DataError(f'{where}: normalize {kind} would divide band(s) '
                        f'{", ".join(map(str, flat))} by {divisors} (a constant band?); give '
                        f'other statistics or type range.')
    return BandCodec(kind, offset, scale, np.dtype(dtype).name, bands, data_range,
                     bool(opt.get('clip', False)))
