"""Dataset preparation: LR generation, sub-image extraction, metrics of two folders.

The functions here are what ``tools/generate_lr.py``, ``tools/extract_subimages.py`` and
``tools/calculate_metrics.py`` run; they work on one image per task so that a process pool can
spread them, and report every failed image instead of stopping at (or hiding) the first one.
"""
from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from basicsr_lite.data.degrade.imresize import imresize
from basicsr_lite.data.io.band_io import read_bands, write_lossless
from basicsr_lite.data.transforms import mod_crop
from basicsr_lite.errors import DataError
from basicsr_lite.metrics import calculate_psnr, calculate_psnr_pt, calculate_ssim, calculate_ssim_pt
from basicsr_lite.metrics.lpips_metric import calculate_lpips_pt
from basicsr_lite.metrics.niqe_metric import calculate_niqe
from basicsr_lite.utils.img_util import img2tensor, imread
from basicsr_lite.utils.misc import IMG_EXTENSIONS, scandir


@dataclass
class ToolReport:
    done: int = 0
    outputs: int = 0
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def run_tasks(func: Callable, tasks: list, workers: int, progress: Callable[[], None] | None,
              report: ToolReport) -> ToolReport:
    """``func(task) -> (outputs, error or None, skipped message or None)`` over ``tasks``."""
    if workers > 1 and len(tasks) > 1:
        pool = multiprocessing.get_context('spawn').Pool(workers)
        results: Iterable = pool.imap_unordered(func, tasks)
    else:
        pool, results = None, map(func, tasks)
    try:
        for outputs, error, skipped in results:
            report.done += 1
            report.outputs += outputs
            if error:
                report.errors.append(error)
            if skipped:
                report.skipped.append(skipped)
            if progress is not None:
                progress()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    report.errors.sort()
    return report


def _images(folder: str | Path) -> list[str]:
    if not Path(folder).is_dir():
        raise DataError(f'Input folder {folder} does not exist.')
    names = list(scandir(folder, IMG_EXTENSIONS))
    if not names:
        raise DataError(f'Input folder {folder} has no images.')
    return names


# ---- LR generation ---------------------------------------------------------------------------

def _generate_lr_task(task: tuple) -> tuple[int, str | None, None]:
    hr_path, lr_stem, mod_stem, scale, level = task
    try:
        hr = mod_crop(read_bands(hr_path), scale)
        if mod_stem is not None:
            write_lossless(hr, mod_stem, level)
        write_lossless(imresize(hr, 1 / scale).astype(hr.dtype, copy=False), lr_stem, level)
    except Exception as err:  # reported per image by run_tasks
        return 0, f'{hr_path}: {err}', None
    return 1, None, None


def generate_lr(hr_folder: str | Path, lr_folder: str | Path, scale: int,
                suffix: str = 'x{scale}', hr_mod_folder: str | Path | None = None,
                compress_level: int = 3, workers: int = 1,
                progress: Callable[[], None] | None = None) -> ToolReport:
    """``lr_folder/<stem><suffix>.png`` = MATLAB bicubic 1/scale of the HR image mod-cropped to a
    multiple of ``scale`` (also written to ``hr_mod_folder`` if given). Images keep their bit
    depth and bands (uint8 / uint16: PNG; float32: TIFF; other band counts: .npy)."""
    suffix = suffix.format(scale=scale)
    tasks = []
    for name in _images(hr_folder):
        stem = os.path.splitext(name)[0]
        mod_stem = Path(hr_mod_folder) / stem if hr_mod_folder else None
        tasks.append((str(Path(hr_folder) / name), Path(lr_folder) / f'{stem}{suffix}',
                      mod_stem, scale, compress_level))
    return run_tasks(_generate_lr_task, tasks, workers, progress, ToolReport())


# ---- sub-images ------------------------------------------------------------------------------

def crop_positions(length: int, crop_size: int, step: int, thresh_size: int) -> list[int]:
    """Top-left corners along one axis: every ``step``, plus a last crop flush with the border if
    more than ``thresh_size`` pixels would be left out (BasicSR's rule)."""
    if length < crop_size:
        return []
    positions = list(range(0, length - crop_size + 1, step))
    if length - (positions[-1] + crop_size) > thresh_size:
        positions.append(length - crop_size)
    return positions


def _extract_task(task: tuple) -> tuple[int, str | None, str | None]:
    hr_path, out_dir, lq_path, lq_out_dir, scale, crop, step, thresh, level = task
    stem = Path(hr_path).stem
    try:
        hr = read_bands(hr_path)
        lq = read_bands(lq_path) if lq_path else None
        h, w = hr.shape[:2]
        if lq is not None and (lq.shape[0] * scale, lq.shape[1] * scale) != (h, w):
            return 0, (f'{lq_path}: size {lq.shape[1]}x{lq.shape[0]} is not {hr_path} '
                       f'({w}x{h}) / {scale}'), None
        ys, xs = crop_positions(h, crop, step, thresh), crop_positions(w, crop, step, thresh)
        if not ys or not xs:
            return 0, None, f'{hr_path}: {w}x{h} is smaller than crop_size {crop}'
        index = 0
        for y in ys:
            for x in xs:
                index += 1
                name = f'{stem}_s{index:03d}'
                write_lossless(hr[y:y + crop, x:x + crop, ...], Path(out_dir) / name, level)
                if lq is not None:
                    ly, lx, lc = y // scale, x // scale, crop // scale
                    write_lossless(lq[ly:ly + lc, lx:lx + lc, ...], Path(lq_out_dir) / name,
                                   level)
    except Exception as err:  # reported per image by run_tasks
        return 0, f'{hr_path}: {err}', None
    return index, None, None


def extract_subimages(input_folder: str | Path, output_folder: str | Path, crop_size: int,
                      step: int, thresh_size: int = 0, lq_folder: str | Path | None = None,
                      lq_output_folder: str | Path | None = None, scale: int = 1,
                      suffix_pattern: str = '{}', compress_level: int = 3, workers: int = 1,
                      progress: Callable[[], None] | None = None) -> ToolReport:
    """Crop every image into ``crop_size`` squares every ``step`` pixels, named
    ``<stem>_s<NNN>.png`` (.tif / .npy for images PNG cannot hold exactly). With ``lq_folder``,
    the LQ image ``suffix_pattern.format(stem)`` of each HR image is cropped at the same places
    (divided by ``scale``), under the same names."""
    if lq_folder is not None:
        if lq_output_folder is None:
            raise DataError('lq_output_folder is required with lq_folder.')
        for value, what in ((crop_size, 'crop_size'), (step, 'step')):
            if value % scale:
                raise DataError(f'{what} {value} must be divisible by scale {scale} so that LQ '
                                f'crops align with HR crops.')
        lq_names = {os.path.splitext(n)[0]: n for n in _images(lq_folder)}
    tasks = []
    for name in _images(input_folder):
        stem = os.path.splitext(name)[0]
        lq_path = None
        if lq_folder is not None:
            lq_stem = suffix_pattern.format(stem)
            if lq_stem not in lq_names:
                raise DataError(f"{Path(input_folder) / name} has no LQ partner '{lq_stem}.*' in "
                                f"{lq_folder} (--suffix-pattern '{suffix_pattern}').")
            lq_path = str(Path(lq_folder) / lq_names[lq_stem])
        tasks.append((str(Path(input_folder) / name), str(output_folder), lq_path,
                      str(lq_output_folder) if lq_output_folder else None, scale, crop_size,
                      step, thresh_size, compress_level))
    return run_tasks(_extract_task, tasks, workers, progress, ToolReport())


# ---- metrics of two folders ------------------------------------------------------------------

def pair_by_name(restored: str | Path, gt: str | Path,
                 restored_tmpl: str = '{}') -> list[tuple[str, Path, Path]]:
    """``(gt stem, restored path, gt path)`` for every GT image; the restored image of ``x.png``
    is ``restored_tmpl.format('x')`` with any image extension."""
    restored_names = {os.path.splitext(n)[0]: n for n in _images(restored)}
    pairs, missing = [], []
    for name in _images(gt):
        stem = os.path.splitext(name)[0]
        match = restored_names.get(restored_tmpl.format(stem))
        if match is None:
            missing.append(restored_tmpl.format(stem))
        else:
            pairs.append((stem, Path(restored) / match, Path(gt) / name))
    if missing:
        found = sorted(restored_names.values())
        raise DataError(f'{len(missing)} GT image(s) have no restored image in {restored} '
                        f"(--restored-tmpl '{restored_tmpl}'): looked for "
                        f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''} (any "
                        f"image extension); that folder has {', '.join(found[:3])}"
                        f"{', ...' if len(found) > 3 else ''}. test.py names its images "
                        f"'<image>_<name>.png': use --restored-tmpl '{{}}_<name>'.")
    return pairs


def folder_metrics(restored: str | Path, gt: str | Path | None, crop_border: int,
                   test_y_channel: bool, restored_tmpl: str = '{}', niqe: bool = False,
                   lpips_net: str | None = None, device: str = 'cpu',
                   data_range: float | None = None) -> list[dict]:
    """Per image (rows ``{'name', 'psnr', 'ssim'[, 'niqe'][, 'lpips']}``, GT sorted by name):
    PSNR and SSIM, NIQE of the restored image with ``niqe``, LPIPS (``lpips_net``: 'alex' or
    'vgg', on ``device``). Without ``gt``, NIQE of every restored image only. A GT image larger
    than the restored one is cropped to it (as when GT was not mod-cropped).

    ``data_range``: the images are read as stored (16-bit, float, any number of bands) and PSNR
    / SSIM use this peak; NIQE and LPIPS score 8-bit RGB images only."""
    if gt is None:
        if not niqe:
            raise DataError('Without GT images only NIQE can be computed (add --niqe).')
        return [{'name': os.path.splitext(name)[0],
                 'niqe': calculate_niqe(imread(Path(restored) / name), crop_border)}
                for name in _images(restored)]
    if data_range is not None and (niqe or lpips_net):
        raise DataError('NIQE and LPIPS score 8-bit RGB images; drop them with --data-range.')
    rows = []
    for stem, restored_path, gt_path in pair_by_name(restored, gt, restored_tmpl):
        if data_range is None:
            img, ref = imread(restored_path), imread(gt_path)
        else:  # as stored, in the file's band order: Y from RGB through the torch forms
            img, ref = read_bands(restored_path), read_bands(gt_path)
        h, w = img.shape[:2]
        if ref.shape[0] < h or ref.shape[1] < w:
            raise DataError(f'{restored_path} ({w}x{h}) is larger than its GT {gt_path} '
                            f'({ref.shape[1]}x{ref.shape[0]}).')
        ref = ref[:h, :w]
        if data_range is None:
            row = {'name': stem,
                   'psnr': calculate_psnr(img, ref, crop_border, test_y_channel=test_y_channel),
                   'ssim': calculate_ssim(img, ref, crop_border, test_y_channel=test_y_channel)}
        else:
            row = {'name': stem, **raw_pair_metrics(img, ref, crop_border, test_y_channel,
                                                    data_range, f'{restored_path} / {gt_path}')}
        if niqe:
            row['niqe'] = calculate_niqe(img, crop_border)
        if lpips_net:
            pair = [img2tensor(x.astype('float32') / 255)[None].to(device) for x in (img, ref)]
            row['lpips'] = float(calculate_lpips_pt(*pair, crop_border, lpips_net)[0])
        rows.append(row)
    return rows


def raw_pair_metrics(img: np.ndarray, ref: np.ndarray, crop_border: int, test_y_channel: bool,
                     data_range: float, what: str) -> dict[str, float]:
    """PSNR and SSIM of two HWC images as stored (file band order) with peak ``data_range``."""
    if img.shape != ref.shape or img.dtype != ref.dtype:
        raise DataError(f'{what}: {img.shape} {img.dtype} vs {ref.shape} {ref.dtype}; the images '
                        f'must have the same bands and pixel type.')
    a, b = (torch.from_numpy(x.transpose(2, 0, 1).astype(np.float64))[None] for x in (img, ref))
    return {'psnr': float(calculate_psnr_pt(a, b, crop_border, test_y_channel, data_range)[0]),
            'ssim': float(calculate_ssim_pt(a, b, crop_border, test_y_channel, data_range)[0])}
