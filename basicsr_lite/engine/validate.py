"""The one validation loop (train-time validation and test.py), and a bicubic baseline."""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from basicsr_lite.data.contract import dataset_codec, fixed_scale, traits_of
from basicsr_lite.data.degrade.imresize import imresize
from basicsr_lite.data.degrade.scales import border, scale_label
from basicsr_lite.data.io.band_io import lossless_suffix, write_bands
from basicsr_lite.data.io.band_norm import BandCodec
from basicsr_lite.errors import OptionError, UserError, rejected_options
from basicsr_lite.metrics import METRIC_REGISTRY, calculate_metric, is_no_reference, metric_better
from basicsr_lite.models.protocol import TrainableModel
from basicsr_lite.utils.files import atomic_write
from basicsr_lite.runtime.dist import all_gather_objects, get_dist_info
from basicsr_lite.utils.img_util import img2tensor, imwrite, tensor2img

logger = logging.getLogger('basicsr_lite')


@dataclass
class ValidationResult:
    dataset_name: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per image: name + metrics
    model_seconds: float = 0.0  # per image of this rank: time in the model, in the metrics
    metric_seconds: float = 0.0
    # (name, visuals on the CPU) of this rank's first images, when asked for (keep_images)
    samples: list[tuple[str, dict[str, torch.Tensor]]] = field(default_factory=list)

    @property
    def means(self) -> dict[str, float]:
        names = [k for k in (self.rows[0] if self.rows else {}) if k != 'name']
        return {k: sum(r[k] for r in self.rows) / len(self.rows) for k in names}


# BasicSR's numpy metrics and their torch forms (equal values on the 8-bit images, tested)
TENSOR_FORMS = {'calculate_psnr': 'calculate_psnr_pt', 'calculate_ssim': 'calculate_ssim_pt'}
# the metrics that score images read as stored (any bit depth and band count)
RAW_METRICS = frozenset(TENSOR_FORMS) | frozenset(TENSOR_FORMS.values())


def tensor_form(metric_opt: dict) -> dict:
    """``metric_opt`` with its torch form when it has one (``input_order`` is the numpy
    functions' business: tensors are always NCHW; a ``data_range`` on 0..255 becomes one on
    0..1)."""
    name = TENSOR_FORMS.get(metric_opt['type'])
    if name is None:
        return metric_opt
    form = {**{k: v for k, v in metric_opt.items() if k != 'input_order'}, 'type': name}
    if 'data_range' in form:
        form['data_range'] = form['data_range'] / 255.0
    return form


def with_scale_borders(metrics_opt: dict, pair: tuple[float, float] | None) -> dict:
    """``crop_border: scale`` (ArbSR's border, ``ceil(scale)`` per axis) made the pixels of the
    image's scale ``pair``."""
    if not any(o.get('crop_border') == 'scale' for o in metrics_opt.values()):
        return metrics_opt
    if pair is None:
        raise OptionError('crop_border: scale needs images that carry their scale '
                          '(MultiScaleDataset).')
    return {name: {**o, 'crop_border': border(pair)} if o.get('crop_border') == 'scale' else o
            for name, o in metrics_opt.items()}


def raw_metrics(result: torch.Tensor, gt: torch.Tensor | None, metrics_opt: dict,
                codec: BandCodec) -> dict[str, float]:
    """PSNR / SSIM of images read as stored (``read_mode: unchanged``): on the data's own
    values (rounded to the pixel type's levels, as a saved result holds them), with the
    dataset's data range unless a metric gives its own ``data_range``."""
    if gt is None:
        return {}
    images = {'img': codec.decode(result), 'img2': codec.decode(gt)}
    values = {}
    for name, metric_opt in metrics_opt.items():
        opt = {**tensor_form(metric_opt),  # its data range is in the data's units here
               'data_range': metric_opt.get('data_range', codec.data_range)}
        values[name] = float(calculate_metric(images, opt).mean())
    return values


def quantize_8bit(tensor: torch.Tensor) -> torch.Tensor:
    """A [0, 1] image rounded to 8-bit levels, in float64 (exact k / 255 values)."""
    return (tensor.detach().to(torch.float64).clamp(0, 1) * 255).round() / 255


def image_metrics(result: torch.Tensor, gt: torch.Tensor | None, metrics_opt: dict,
                  on_tensors: bool = True, codec: BandCodec | None = None) -> dict[str, float]:
    """Every metric of ``metrics_opt`` for one image (1CHW RGB tensors in [0, 1]); without a
    GT (``None``), only the no-reference ones.

    Like the published protocol, the result is clamped and rounded to 8 bits first.
    ``on_tensors``: PSNR / SSIM in their torch forms on the tensors' device (``val.
    tensor_metrics``), else BasicSR's numpy functions on uint8 images. Images read as stored
    (``codec``) are scored by :func:`raw_metrics`.
    """
    if codec is not None:
        return raw_metrics(result, gt, metrics_opt, codec)
    values: dict[str, float] = {}
    images: dict[str, np.ndarray] = {}  # uint8 images for the numpy metrics, made once
    levels: dict[str, torch.Tensor] = {}  # 8-bit levels in float64 for the torch forms

    def as_image(key: str, tensor: torch.Tensor) -> np.ndarray:
        if key not in images:
            images[key] = tensor2img(tensor)
        return images[key]

    def as_levels(key: str, tensor: torch.Tensor) -> torch.Tensor:
        if key not in levels:
            levels[key] = quantize_8bit(tensor)
        return levels[key]

    for name, metric_opt in metrics_opt.items():
        no_reference = is_no_reference(metric_opt)
        if gt is None and not no_reference:
            continue
        if on_tensors:
            metric_opt = tensor_form(metric_opt)
        if metric_opt['type'] in TENSOR_FORMS.values():
            data = {'img': as_levels('result', result),
                    'img2': None if gt is None else as_levels('gt', gt)}
        elif getattr(METRIC_REGISTRY.get(metric_opt['type']), 'takes_tensors', False):
            data = {'img': (result.clamp(0, 1) * 255).round() / 255, 'img2': gt}
        else:
            data = {'img': as_image('result', result),
                    'img2': None if gt is None else as_image('gt', gt)}
        if no_reference:
            del data['img2']
        value = calculate_metric(data, metric_opt)
        values[name] = float(value.mean()) if isinstance(value, torch.Tensor) else float(value)
    return values


def check_metrics(metrics_opt: dict, loaders: dict[str, DataLoader] | None = None) -> None:
    """Run every metric once on a synthetic 256x256 pair (own generator: the training RNG is not
    touched), so that an argument value a metric rejects is reported at start-up, before anything
    is written, and not at the first validation hours later. The options are checked by the
    function the user named (validation may use its torch form, which takes the same ones).
    A dataset of ``loaders`` read as stored is checked with its band count and data range."""
    generator = torch.Generator().manual_seed(0)
    loaders = loaders or {}
    codecs = {name: dataset_codec(loader.dataset) for name, loader in loaders.items()}
    for name, metric_opt in metrics_opt.items():
        what = f"val.metrics.{name} ({metric_opt['type']})"
        if metric_opt.get('crop_border') == 'scale':
            plain = [n for n, loader in loaders.items()
                     if not traits_of(loader.dataset).gives_scale]
            if plain or not loaders:
                raise OptionError(f'{what}: crop_border: scale (ArbSR\'s border, ceil(scale)) '
                                  f'needs validation sets whose images carry their scale '
                                  f'(MultiScaleDataset); {", ".join(plain) or "none"} do not.')
            metric_opt = {**metric_opt, 'crop_border': (4, 4)}
        for dataset_name, codec in codecs.items():
            if codec is not None and metric_opt['type'] not in RAW_METRICS:
                raise OptionError(f'{what} scores 8-bit RGB images, but validation set '
                                  f'{dataset_name} is read as stored ({codec.bands} band(s) of '
                                  f'{codec.dtype}): use {", ".join(sorted(RAW_METRICS))}.')
        for codec in set(codecs.values()) or {None}:
            bands = 3 if codec is None else codec.bands
            gt = torch.rand(1, bands, 256, 256, generator=generator)
            result = (gt + 0.1 * torch.rand(gt.shape, generator=generator)).clamp(0, 1)
            try:
                with rejected_options(what):
                    image_metrics(result, gt, {name: metric_opt}, on_tensors=False, codec=codec)
            except FileNotFoundError as err:  # a file the metric needs (NIQE's model)
                if isinstance(err, UserError):
                    raise OptionError(f'{what}: {err}') from err
                raise


def _gather_rows(rows: list[dict]) -> list[dict]:
    merged = [row for rank_rows in all_gather_objects(rows) for row in rank_rows]
    return sorted(merged, key=lambda r: r['name'])


def run_images(dataloader: DataLoader, dataset_name: str, predict: Callable[[dict], dict],
               metrics_opt: dict, save_dir: Path | None = None, save_suffix: str = '',
               pbar: bool = False, tensor_metrics: bool = True,
               keep_images: int = 0) -> ValidationResult:
    """Predict every image of ``dataloader`` (this rank's shard), score it, optionally save it,
    and gather the rows of all ranks; keep the visuals of the first ``keep_images`` (for
    viewing: images read as stored are shown by ``BandCodec.display``)."""
    codec = dataset_codec(dataloader.dataset)
    rows, corrupt, samples = [], 0, []
    model_seconds = metric_seconds = 0.0
    progress = None
    if pbar and get_dist_info()[0] == 0:
        from tqdm import tqdm
        progress = tqdm(total=len(dataloader), unit='image', desc=dataset_name)
    for data in dataloader:
        if 'corrupt' in data:  # an unreadable file of a skip_corrupt dataset
            corrupt += 1
            continue
        start = time.perf_counter()
        visuals = predict(data)
        name = Path(data.get('gt_path', data['lq_path'])[0]).stem
        row: dict[str, Any] = {'name': name}
        scored = time.perf_counter()  # (reading the metric values waits for the device)
        if metrics_opt:
            pair = tuple(data['scale'][0].tolist()) if 'scale' in data else None
            row.update(image_metrics(visuals['result'], visuals.get('gt'),
                                     with_scale_borders(metrics_opt, pair), tensor_metrics, codec))
        model_seconds += scored - start
        metric_seconds += time.perf_counter() - scored
        if save_dir is not None:
            save_result(visuals['result'], save_dir / f'{name}_{save_suffix}', codec)
        rows.append(row)
        if len(samples) < keep_images:
            view = (lambda v: v) if codec is None else codec.display
            samples.append((name, {k: view(v.detach().cpu()) for k, v in visuals.items()}))
        if progress is not None:
            progress.update(1)
    if progress is not None:
        progress.close()
    corrupt = sum(all_gather_objects(corrupt))
    if corrupt:
        logger.warning(f'{dataset_name}: {corrupt} corrupt image(s) skipped.')
    n = max(1, len(rows))
    return ValidationResult(dataset_name, _gather_rows(rows), model_seconds / n,
                            metric_seconds / n, samples)


def save_result(result: torch.Tensor, stem: Path, codec: BandCodec | None) -> Path:
    """Save one result as an 8-bit PNG, or in the pixel type of images read as stored (PNG /
    TIFF / .npy, whichever holds it exactly)."""
    if codec is None:
        path = stem.with_name(f'{stem.name}.png')
        imwrite(tensor2img(result), path)
        return path
    image = codec.to_image(result)
    return write_bands(image, stem.with_name(stem.name + lossless_suffix(image)))


def validate(model: TrainableModel, dataloader: DataLoader, dataset_name: str, current_iter: int,
             tb_logger: Any = None, save_img: bool = False,
             keep_images: int = 0) -> ValidationResult:
    """Evaluate ``model`` (its EMA network if any) on one dataset; log, track the best; keep
    the visuals of the first ``keep_images`` images (``ValidationResult.samples``). Networks of
    a schedule-free optimizer are evaluated at their averaged point (as saved)."""
    model.set_weights_mode(train=False)
    opt = model.opt
    val_opt = opt['val'] or {}
    metrics_opt = val_opt.get('metrics', {})
    save_dir, suffix = None, ''
    if save_img and opt['is_train']:
        save_dir, suffix = Path(opt['path']['visualization']) / dataset_name, str(current_iter)
    elif save_img:
        save_dir = Path(opt['path']['visualization']) / dataset_name
        suffix = val_opt.get('suffix') or opt['name']

    def predict(data: dict) -> dict:
        model.feed_data(data)
        model.test()
        return model.get_current_visuals()

    result = run_images(dataloader, dataset_name, predict, metrics_opt, save_dir, suffix,
                        val_opt.get('pbar', False), val_opt.get('tensor_metrics', True),
                        keep_images)
    for metric, value in result.means.items():
        model.update_best_metric(dataset_name, metric, value, metric_better(metrics_opt[metric]),
                                 current_iter)
    _log_validation(model, result, current_iter, tb_logger)
    return result


def _log_validation(model: TrainableModel, result: ValidationResult, current_iter: int,
                    tb_logger: Any) -> None:
    message = f'Validation {result.dataset_name} ({len(result.rows)} images)'
    if result.rows:
        message += (f', per image: model {result.model_seconds:.3f} s, metrics '
                    f'{result.metric_seconds:.3f} s')
    for metric, value in result.means.items():
        message += f'\n\t # {metric}: {value:.4f}'
        best = model.best_metric_results.get(result.dataset_name, {}).get(metric)
        if best is not None and model.is_train:
            message += f'\tBest: {best["val"]:.4f} @ {best["iter"]} iter'
        if tb_logger is not None:
            tb_logger.add_scalar(f'metrics/{result.dataset_name}/{metric}', value, current_iter)
    logger.info(message)


def bicubic_baseline(dataloader: DataLoader, dataset_name: str, scale: int,
                     metrics_opt: dict, tensor_metrics: bool = True) -> ValidationResult:
    """The same metrics for MATLAB-bicubic upsampling of the LQ images (the published baseline)."""

    codec = dataset_codec(dataloader.dataset)

    def predict(data: dict) -> dict:
        # the LQ as the files store it (8-bit RGB, or as read)
        lq = tensor2img(data['lq'], rgb2bgr=False) if codec is None else codec.to_image(
            data['lq'])
        # (an LQ already at the GT's size is the bicubic input of a pre-upsampling network)
        pre_upsampled = data['lq'].shape[-2:] == data['gt'].shape[-2:]
        # (the GT's size: exact for integer scales, and the size of any other scale's result)
        upsampled = lq if pre_upsampled else imresize(lq, scale,
                                                      output_shape=data['gt'].shape[-2:])
        if codec is not None:
            return {'result': codec.encode(upsampled)[None], 'gt': data['gt']}
        return {'result': img2tensor(upsampled, bgr2rgb=False)[None] / 255.0, 'gt': data['gt']}

    return run_images(dataloader, dataset_name, predict, metrics_opt,
                      tensor_metrics=tensor_metrics)


def format_table(columns: dict[str, dict[str, float]]) -> str:
    """A text table: one row per metric, one column per label (e.g. model / bicubic)."""
    metrics = list(next(iter(columns.values()), {}))
    labels = list(columns)
    width = max([len(m) for m in metrics] + [6])
    lines = [' ' * width + ''.join(f'{label:>12}' for label in labels)]
    for metric in metrics:
        cells = ''.join(f'{columns[label].get(metric, math.nan):12.4f}' for label in labels)
        lines.append(f'{metric:<{width}}{cells}')
    return '\n'.join(lines)


def scale_tables(results: list[ValidationResult], loaders: dict[str, DataLoader]) -> str:
    """For each multi-scale set: a row per scale, a column per metric (as ArbSR reports)."""
    groups: dict[str, list[tuple[str, dict]]] = {}
    for result in results:
        loader = loaders.get(result.dataset_name)
        pair = None if loader is None else fixed_scale(loader.dataset)
        if pair is None or not result.means:
            continue
        label = scale_label(pair)
        base = result.dataset_name[:-len(label) - 1]
        groups.setdefault(base, []).append((label, result.means))
    tables = []
    for base, rows in groups.items():
        metrics = list(rows[0][1])
        width = max([len(base)] + [len(label) for label, _ in rows])
        lines = [f'{base:<{width}}' + ''.join(f'{m:>12}' for m in metrics)]
        lines += [f'{label:<{width}}' + ''.join(f'{means[m]:12.4f}' for m in metrics)
                  for label, means in rows]
        tables.append('\n'.join(lines))
    return '\n\n'.join(tables)


def write_metrics(results: list[ValidationResult], csv_path: str | Path | None,
                  json_path: str | Path | None = None) -> None:
    """A CSV table (one row per image, then the mean, per dataset) and/or a JSON summary."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for result in results:
        names = list(result.means)
        writer.writerow(['dataset', 'image', *names])
        for row in result.rows:
            writer.writerow([result.dataset_name, row['name'], *(f'{row[n]:.6f}' for n in names)])
        writer.writerow([result.dataset_name, 'mean', *(f'{result.means[n]:.6f}' for n in names)])
    summary = {r.dataset_name: {'mean': r.means, 'per_image': r.rows} for r in results}
    if csv_path is not None:
        atomic_write(csv_path, lambda f: f.write(buffer.getvalue().encode()))
    if json_path is not None:
        atomic_write(json_path, lambda f: f.write(json.dumps(summary, indent=2).encode()))
