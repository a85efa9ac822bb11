"""What a dataset gives the rest of the framework: the one written-down dataset contract.

Every class in DATASET_REGISTRY is a map-style dataset (:class:`SRDataset`): it is built with its
option entry's keys as keyword arguments (plus those of :data:`RUN_VALUES` its constructor names,
which the framework gives), and item ``i`` is a dict (``'lq'``, ``'gt'``, ``'lq_path'`` ...).

What a dataset says about itself is read only through the functions of this module, never looked
up by name elsewhere:

- class traits: :class:`DatasetTraits`, declared as the class attribute ``traits``; a class
  without one has the defaults (:func:`traits_of`);
- optional methods, by what the object has (the protocols below): ``option_problems`` (its own
  checks of its options, :func:`option_problems`), ``produces()`` (what it gives, for the
  start-up checks, :func:`produces`), ``begin_batch_sample`` (:class:`BatchSampled`, with
  ``per_batch``), ``scales`` + ``at_scale`` (:class:`ScaleVariants`: one evaluation set per
  scale);
- the state of a built dataset: ``fixed_scale`` (the one scale of an evaluation set,
  :func:`fixed_scale`), ``pixels`` (its :class:`PixelReader`, :func:`pixel_reader`), and its
  image list (the list attribute ``paths`` or ``pairs``, :func:`image_list_attr`) that
  ``max_images`` / ``split`` select from.

Wrappers (``Subset``, ``SeededSamples``, ``SkipCorruptEval``) keep the dataset they wrap in
``.dataset``; every accessor here looks through them (:func:`base_dataset`).
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Protocol, Sequence, runtime_checkable

from torch.utils.data import Dataset

from basicsr_lite.data.io.band_norm import BandCodec
from basicsr_lite.data.io.pixels import PixelReader

RUN_VALUES = ('scale', 'phase')  # given by the framework to a constructor that names them
IMAGE_LISTS = ('paths', 'pairs')  # the attribute a dataset keeps its images in


@dataclasses.dataclass(frozen=True)
class DatasetTraits:
    """What a dataset class declares about itself (``traits = DatasetTraits(...)``, a class
    attribute); each default is what a class without a declaration gets. All are flags.

    - ``per_batch``: the training sampler gives each sample its batch's seed and epoch
      (``begin_batch_sample``), for choices made once per batch (e.g. one scale per batch);
    - ``gives_scale``: each sample carries its own scale (``'scale'``: (scale_h, scale_w)), so
      the network must take one (MultiScaleDataset);
    - ``model_crops``: the model cuts the training patch (``gt_size``) after degrading, so the
      dataset needs no ``gt_size`` (RealESRGANDataset).
    """
    per_batch: bool = False
    gives_scale: bool = False
    model_crops: bool = False

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, bool):
                raise TypeError(f'DatasetTraits.{field.name}: expected true or false; got '
                                f'{value!r}.')


TRAIT_NAMES = tuple(field.name for field in dataclasses.fields(DatasetTraits))


@runtime_checkable
class SRDataset(Protocol):
    """What every registered dataset is: map-style, its items dicts."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: Any) -> dict[str, Any]: ...


@runtime_checkable
class BatchSampled(Protocol):
    """A ``per_batch`` dataset: told its batch (seed, epoch) before each training sample."""

    def begin_batch_sample(self, batch_seed: int, epoch: int) -> None: ...


@runtime_checkable
class ScaleVariants(Protocol):
    """An evaluation set that splits into one set per scale (each validated on its own)."""

    scales: list

    def at_scale(self, pair: tuple[float, float]) -> Dataset: ...


def base_dataset(dataset: Dataset) -> Dataset:
    """The dataset under its wrappers (Subset, SeededSamples, SkipCorruptEval: ``.dataset``)."""
    while hasattr(dataset, 'dataset'):
        dataset = dataset.dataset
    return dataset


def traits_of(dataset: Dataset | type) -> DatasetTraits:
    """The traits a dataset class (or a dataset, through its wrappers) declares."""
    target = dataset if isinstance(dataset, type) else base_dataset(dataset)
    declared = getattr(target, 'traits', None)
    if declared is None:
        return DatasetTraits()
    if not isinstance(declared, DatasetTraits):
        raise TypeError(f'{getattr(target, "__name__", type(target).__name__)}.traits: expected '
                        f'a DatasetTraits; got {declared!r}.')
    return declared


def constructor_keys(cls: type) -> frozenset[str]:
    """The keyword arguments a dataset class takes: its option keys and the run values."""
    return frozenset(inspect.signature(cls).parameters)


def option_problems(cls: type, options: dict[str, Any],
                    check_files: bool = True) -> list[tuple[str, str]]:
    """``(key, message)`` of the dataset's own checks of an option entry (none if it has none)."""
    check = getattr(cls, 'option_problems', None)
    return [] if check is None else list(check(options, check_files=check_files))


def produces(dataset: Dataset) -> dict[str, Any] | None:
    """What a dataset states it gives (``produces()``: DataGives' keyword arguments), or None
    when that follows from its options."""
    base = base_dataset(dataset)
    return base.produces() if hasattr(base, 'produces') else None


def dataset_scales(dataset: Dataset) -> Sequence[tuple[float, float]]:
    """The scales a multi-scale dataset draws from (none for a fixed-scale one)."""
    return getattr(base_dataset(dataset), 'scales', [])


def fixed_scale(dataset: Dataset | None) -> tuple[float, float] | None:
    """The one scale of an evaluation set made by ``at_scale``; None for any other set."""
    return None if dataset is None else getattr(base_dataset(dataset), 'fixed_scale', None)


def pixel_reader(dataset: Dataset | None) -> PixelReader | None:
    """How a dataset reads its images, through its wrappers (None: not through a PixelReader)."""
    reader = None if dataset is None else getattr(base_dataset(dataset), 'pixels', None)
    return reader if isinstance(reader, PixelReader) else None


def dataset_codec(dataset: Dataset | None) -> BandCodec | None:
    """The band codec of a dataset (through its wrappers); None for 8-bit color data."""
    reader = pixel_reader(dataset)
    return None if reader is None else reader.codec


def image_list_attr(dataset: Dataset) -> str | None:
    """The attribute holding the list of a dataset's images (``paths`` / ``pairs``), if any."""
    return next((a for a in IMAGE_LISTS if isinstance(getattr(dataset, a, None), list)), None)
