"""Per-band statistics of a set of images (a folder or an LMDB) for ``normalize``: min, max, mean,
std and percentiles. Integer images (uint8, uint16) give exact percentiles (a histogram with one
bin per value; numpy's 'inverted_cdf' percentile); float images a histogram of 65536 bins per
band between the band's min and max, with linear interpolation inside a bin."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from basicsr_lite.data.io.band_io import decode_bands, read_bands
from basicsr_lite.data.io.band_norm import STATS_FORMAT, percent_key
from basicsr_lite.data.io.file_client import LmdbBackend
from basicsr_lite.data.io.listing import lmdb_keys, paths_from_folder
from basicsr_lite.errors import DataError
from basicsr_lite.utils.files import atomic_write

FLOAT_BINS = 65536


def image_source(path: str | Path) -> tuple[list[str], Callable[[str], np.ndarray]]:
    """(names, read) of the images of a folder or of an LMDB folder (``data.mdb`` in it)."""
    if (Path(path) / 'data.mdb').is_file():
        backend = LmdbBackend(str(path))
        return sorted(lmdb_keys(str(path))), \
            lambda key: decode_bands(backend.get(key), f'{path}:{key}')
    return paths_from_folder(str(path)), read_bands


class _Moments:
    """Per-band count, mean and sum of squared deviations, merged image by image (Chan et al.),
    which stays exact where a running sum of squares would cancel."""

    def __init__(self, bands: int) -> None:
        self.count = 0
        self.mean = np.zeros(bands)
        self.m2 = np.zeros(bands)

    def add(self, values: np.ndarray) -> None:  # values: (pixels, bands)
        n = values.shape[0]
        mean = values.mean(axis=0, dtype=np.float64)
        m2 = ((values - mean)**2).sum(axis=0, dtype=np.float64)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.count)


def _percentile_from_histogram(hist: np.ndarray, percent: float, low: float,
                               width: float, exact: bool) -> float:
    """The ``percent`` percentile of one band's histogram (bins of ``width`` from ``low``)."""
    cdf = np.cumsum(hist)
    rank = max(percent * cdf[-1] / 100.0, 1.0)  # the smallest value whose CDF reaches it
    index = int(np.searchsorted(cdf, rank, side='left'))
    if exact:
        return low + index * width
    before = cdf[index - 1] if index > 0 else 0
    fraction = (rank - before) / hist[index]
    return low + (index + fraction) * width


def compute_band_stats(names: Sequence[str], read: Callable[[str], np.ndarray],
                       percentiles: Iterable[float] = (1, 99)) -> dict:
    """The statistics of the images ``read(name)`` for every name (HWC, one pixel type)."""
    if not names:
        raise DataError('No images to compute band statistics of.')
    first = read(names[0])
    dtype, bands = first.dtype, first.shape[2]
    exact = dtype.kind in 'ui'
    moments = _Moments(bands)
    low, high = np.full(bands, np.inf), np.full(bands, -np.inf)
    hist = np.zeros((bands, np.iinfo(dtype).max + 1 if exact else FLOAT_BINS), np.int64)

    def images():
        for name in names:
            img = first if name == names[0] else read(name)
            if img.dtype != dtype or img.shape[2] != bands:
                raise DataError(f'{name} has {img.shape[2]} band(s) of {img.dtype}; the first '
                                f'image ({names[0]}) has {bands} of {dtype}.')
            yield img.reshape(-1, bands)

    for values in images():
        moments.add(values)
        low, high = np.minimum(low, values.min(axis=0)), np.maximum(high, values.max(axis=0))
        if exact:
            for b in range(bands):
                hist[b] += np.bincount(values[:, b], minlength=hist.shape[1])
    if not np.all(np.isfinite(low) & np.isfinite(high)):
        raise DataError('The images hold NaN or infinite values: no statistics can be computed.')
    widths = np.ones(bands) if exact else np.maximum(high - low, 1e-30) / FLOAT_BINS
    starts = np.zeros(bands) if exact else low
    if not exact:  # a second pass, now that each band's range is known
        for values in images():
            for b in range(bands):
                hist[b] += np.histogram(values[:, b], FLOAT_BINS, (low[b], low[b] + widths[b] *
                                                                   FLOAT_BINS))[0]
    table = {percent_key(p): [float(_percentile_from_histogram(hist[b], p, starts[b], widths[b],
                                                               exact)) for b in range(bands)]
             for p in sorted(set(float(p) for p in percentiles))}
    return {'format': STATS_FORMAT, 'version': 1, 'images': len(names), 'dtype': dtype.name,
            'bands': bands, 'pixels_per_band': int(moments.count),
            'min': low.tolist(), 'max': high.tolist(), 'mean': moments.mean.tolist(),
            'std': moments.std.tolist(), 'percentiles': table,
            'percentile_method': 'exact (inverted CDF)' if exact else
            f'histogram of {FLOAT_BINS} bins per band'}


def write_band_stats(source: str | Path, out: str | Path, percentiles: Iterable[float] = (1, 99),
                     overwrite: bool = False) -> dict:
    """Compute the statistics of the images in ``source`` and write them to ``out`` (JSON,
    atomically). An existing file is kept unless ``overwrite``: runs that use it would change
    their normalisation."""
    if Path(out).exists() and not overwrite:
        raise DataError(f'{out} exists; runs that use it would change their normalisation. '
                        f'Give another file name, or --overwrite.')
    names, read = image_source(source)
    stats = {'source': str(source), **compute_band_stats(names, read, percentiles)}
    atomic_write(out, lambda f: f.write(json.dumps(stats, indent=2).encode()))
    return stats
