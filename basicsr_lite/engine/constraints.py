"""Start-up check of the networks against the data they will see: what each network needs
(``archs/constraints.py``, declared by the arch from its options) against what each dataset
gives (channels, scale, training patch), before anything on disk is created or archived.

Without it these mismatches surface as a shape error in the first batch (or the first
validation), after the experiment folder was made.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import DataLoader, Dataset

from basicsr_lite.archs.capabilities import capability
from basicsr_lite.archs.constraints import NetworkNeeds, network_needs
from basicsr_lite.data import dataset_phase
from basicsr_lite.data.contract import dataset_codec, dataset_scales, produces, traits_of
from basicsr_lite.errors import OptionError


@dataclass(frozen=True)
class DataGives:
    """What a dataset's items hold. ``scale``: GT size / LQ size (None: per batch, from the data);
    ``gt_patch`` / ``lq_patch``: the training crop's side (None outside training);
    ``*_ch``: None when unknown; ``channels_from``: what decides them, for messages."""
    lq_ch: int | None
    gt_ch: int | None
    scale: float | None
    gt_patch: int | None = None
    lq_patch: int | None = None
    channels_from: str = 'RGB images'
    patch_from: str = ''
    max_scale: float | None = None


def dataset_gives(key: str, entry: dict, dataset: Dataset, opt: dict) -> DataGives:
    """What ``datasets.<key>`` gives. A dataset may state it (``produces()``: DataGives' keyword
    arguments); otherwise it follows from the entry's options and the built dataset's pixels."""
    stated = produces(dataset)
    if stated is not None:
        return DataGives(**stated)
    codec = dataset_codec(dataset)
    if codec is not None:
        channels, channels_from = codec.bands, f'read_mode: unchanged, {codec.bands} band(s)'
    elif entry.get('read_mode') == 'unchanged':  # no image to read the band count from
        channels, channels_from = None, ''
    elif entry.get('color') == 'y':
        channels, channels_from = 1, 'color: y'
    else:
        channels, channels_from = 3, 'RGB images'
    gt_ch = channels if 'dataroot_gt' in entry else None  # e.g. SingleImageDataset: LQ only
    if traits_of(dataset).gives_scale:  # arbitrary scales, one per batch
        pairs = dataset_scales(dataset)
        return DataGives(channels, gt_ch, None, channels_from=channels_from,
                         max_scale=max((max(p) for p in pairs), default=None))
    scale = 1 if entry.get('lq_interp') else opt['scale']  # pre-upsampled LQ: same size as GT
    gt_patch, patch_from = None, ''
    if dataset_phase(key) == 'train':
        if entry.get('gt_size') is not None:
            gt_patch, patch_from = entry['gt_size'], f'datasets.{key}.gt_size'
        elif isinstance(opt.get('gt_size'), int):  # a model that crops after degrading
            gt_patch, patch_from = opt['gt_size'], 'gt_size'
    lq_patch = gt_patch // scale if gt_patch is not None else None
    return DataGives(channels, gt_ch, scale, gt_patch, lq_patch, channels_from, patch_from)


def eval_datasets_by_key(opt: dict, loaders: dict[str, DataLoader]) -> dict[str, Dataset]:
    """``{datasets key: dataset}`` for evaluation loaders named by dataset name (a multi-scale
    set gives one loader per scale, ``<name>_x<scale>``: the first stands for all)."""
    found = {}
    for key, entry in opt['datasets'].items():
        for name, loader in loaders.items():
            if name == entry['name'] or name.startswith(f"{entry['name']}_x"):
                found[key] = loader.dataset
                break
    return found


def _size_problem(needs: NetworkNeeds, side: int, min_size: int = 1) -> str | None:
    if side < min_size:
        return f'needs inputs of at least {min_size}x{min_size}'
    if needs.input_size is not None and side != needs.input_size:
        return f'needs {needs.input_size}x{needs.input_size} inputs'
    if side % needs.input_multiple:
        return f'needs input sides that are multiples of {needs.input_multiple}'
    return None


def _generator_problems(opt: dict, gives: dict[str, DataGives]) -> list[str]:
    net = opt['network_g']
    needs, name = network_needs(net), net['type']
    problems = []

    def keys(select) -> str:
        return ', '.join(f'datasets.{k}' for k, g in gives.items() if select(g))

    def option(key: str) -> str:
        return f'network_g.{key}' if key else 'network_g'

    if needs.scale is not None:
        for scale in sorted({g.scale for g in gives.values() if g.scale is not None}):
            if scale != needs.scale:
                problems.append(
                    f'{option(needs.scale_key)}: {name} upscales x{needs.scale} '
                    f'({needs.scale_key}: {net.get(needs.scale_key, needs.scale)!r}), but '
                    f'{keys(lambda g, s=scale: g.scale == s)} give LQ images 1/{scale:g} of GT '
                    f'(scale: {opt["scale"]}); make them agree.')
    for what, need, key, attr in (('takes', needs.in_ch, needs.in_key, 'lq_ch'),
                                  ('outputs', needs.out_ch, needs.out_key, 'gt_ch')):
        if need is None:
            continue
        for have in sorted({getattr(g, attr) for g in gives.values()} - {None, need}):
            images = 'LQ' if attr == 'lq_ch' else 'GT'
            sources = sorted({g.channels_from for g in gives.values()
                              if getattr(g, attr) == have})
            problems.append(f'{option(key)}: {name} {what} {need} channel(s), but '
                            f'{keys(lambda g, h=have, a=attr: getattr(g, a) == h)} give '
                            f'{have}-channel {images} images ({"; ".join(sources)}).')
    for key, g in gives.items():
        problem = None if g.lq_patch is None else _size_problem(needs, g.lq_patch,
                                                                capability(net).min_size)
        if problem:
            problems.append(f'{option(needs.size_key)}: {name} {problem}; the training LQ patch '
                            f'of datasets.{key} is {g.lq_patch}x{g.lq_patch} ({g.patch_from} '
                            f'{g.gt_patch} / scale {g.scale:g}).')
    return problems


def _discriminator_problems(opt: dict, gives: dict[str, DataGives]) -> list[str]:
    """A discriminator judges training-size GT (and generated) patches."""
    net = opt.get('network_d')
    train = gives.get('train')
    if net is None or train is None or train.gt_patch is None:
        return []
    needs = network_needs(net)
    problem = _size_problem(needs, train.gt_patch)
    if problem is None:
        return []
    where = f'network_d.{needs.size_key}' if needs.size_key else 'network_d'
    return [f'{where}: {net["type"]} {problem}; the training GT patch is '
            f'{train.gt_patch}x{train.gt_patch} ({train.patch_from}).']


def _scale_range_problems(opt: dict, gives: dict[str, DataGives]) -> list[str]:
    return [f'datasets.{key}.scales: up to x{g.max_scale:g}, above the top-level scale '
            f'{opt["scale"]} (the largest scale of the run); raise scale or drop those scales.'
            for key, g in gives.items() if g.max_scale is not None and g.max_scale > opt['scale']]


def check_constraints(opt: dict, datasets: dict[str, Dataset]) -> None:
    """Raise OptionError listing every way the networks of ``opt`` do not fit ``datasets``
    (``{datasets key: built dataset}``)."""
    gives = {key: dataset_gives(key, opt['datasets'][key], dataset, opt)
             for key, dataset in datasets.items()}
    problems = (_generator_problems(opt, gives) + _discriminator_problems(opt, gives)
                + _scale_range_problems(opt, gives))
    if problems:
        lines = '\n'.join(f'  - {p}' for p in problems)
        raise OptionError(f"{opt.get('opt_path', 'options')}: the networks do not fit the data "
                          f'({len(problems)} problem(s)):\n{lines}')
