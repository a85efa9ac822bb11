"""Where a run's scalars, images and histograms go: TensorBoard (``logger.use_tb_logger``) and,
when configured and installed, Weights & Biases (``logger.wandb``) and Aim (``logger.aim``).
They share TensorBoard's ``SummaryWriter`` interface (``add_scalar`` / ``add_image`` /
``add_histogram`` / ``close``), so the loop and the hooks write to one object."""
from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from basicsr_lite.errors import OptionError
from basicsr_lite.runtime.checkpoint import atomic_write

logger = logging.getLogger('basicsr_lite')


def require(module: str, key: str) -> Any:
    """Import an optional tracker's package, or say how to get it (or turn it off)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise OptionError(f'{key} is set but {module} is not installed ({err}); pip install '
                          f'{module}, or set {key} to null.') from err


def as_hwc(image: Any, dataformats: str) -> np.ndarray:
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return array.transpose(1, 2, 0) if dataformats == 'CHW' else array


def as_numpy(values: Any) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) \
        else np.asarray(values)


class WandbTracker:
    """A Weights & Biases run. Its id is kept in the experiment folder (``wandb_id``), so that a
    resumed experiment continues the same run (``logger.wandb.resume_id`` overrides it)."""

    def __init__(self, section: dict, opt: dict, resuming: bool) -> None:
        self.wandb = require('wandb', 'logger.wandb.project')
        root = Path(opt['path']['experiments_root'])
        id_file = root / 'wandb_id'
        run_id = section['resume_id']
        if run_id is None and resuming and id_file.is_file():
            run_id = id_file.read_text().strip()
        self.run = self.wandb.init(project=section['project'], entity=section['entity'],
                                   name=opt['name'], id=run_id, dir=str(root),
                                   resume='allow' if run_id else None, mode=section['mode'],
                                   config=loggable_config(opt))
        atomic_write(id_file, lambda f: f.write(self.run.id.encode()))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.run.log({tag: float(value)}, step=step)

    def add_image(self, tag: str, image: Any, step: int, dataformats: str = 'CHW') -> None:
        self.run.log({tag: self.wandb.Image(as_hwc(image, dataformats))}, step=step)

    def add_histogram(self, tag: str, values: Any, step: int) -> None:
        self.run.log({tag: self.wandb.Histogram(as_numpy(values))}, step=step)

    def close(self) -> None:
        self.run.finish()


class AimTracker:
    """An Aim run in the repository ``logger.aim.repo`` (default: the experiments folder)."""

    def __init__(self, section: dict, opt: dict) -> None:
        self.aim = require('aim', 'logger.aim.repo')
        repo = section['repo'] or str(Path(opt['path']['experiments_root']).parent)
        self.run = self.aim.Run(repo=repo, experiment=section['experiment'] or opt['name'])
        self.run['hparams'] = loggable_config(opt)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.run.track(float(value), name=tag, step=step)

    def add_image(self, tag: str, image: Any, step: int, dataformats: str = 'CHW') -> None:
        self.run.track(self.aim.Image(as_hwc(image, dataformats)), name=tag, step=step)

    def add_histogram(self, tag: str, values: Any, step: int) -> None:
        self.run.track(self.aim.Distribution(as_numpy(values)), name=tag, step=step)

    def close(self) -> None:
        self.run.close()


def loggable_config(opt: dict) -> dict:
    """The options, minus what is this process's (paths of the machine are kept)."""
    skip = ('rank', 'world_size', 'command_args')
    return {k: v for k, v in opt.items() if k not in skip}


class Trackers:
    """Every configured tracker behind one ``SummaryWriter``-like object."""

    def __init__(self, trackers: list[Any]) -> None:
        self.trackers = trackers

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        for tracker in self.trackers:
            tracker.add_scalar(tag, value, step)

    def add_image(self, tag: str, image: Any, step: int, dataformats: str = 'CHW') -> None:
        for tracker in self.trackers:
            tracker.add_image(tag, image, step, dataformats=dataformats)

    def add_histogram(self, tag: str, values: Any, step: int) -> None:
        for tracker in self.trackers:
            tracker.add_histogram(tag, values, step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


def check_trackers(opt: dict) -> None:
    """At start-up, before anything is written: a configured tracker must be importable."""
    if (opt['logger']['wandb'] or {}).get('project'):
        require('wandb', 'logger.wandb.project')
    if opt['logger']['aim'] is not None:
        require('aim', 'logger.aim.repo')


def init_trackers(opt: dict, resuming: bool) -> Trackers | None:
    """The run's trackers (rank 0), or None when none is on."""
    if opt['rank'] != 0:
        return None
    trackers: list[Any] = []
    log_opt = opt['logger']
    if log_opt['use_tb_logger']:
        from torch.utils.tensorboard import SummaryWriter  # tensorboard is slow to import
        trackers.append(SummaryWriter(log_dir=opt['path']['tb_logger']))
    if (log_opt['wandb'] or {}).get('project'):
        trackers.append(WandbTracker(log_opt['wandb'], opt, resuming))
    if log_opt['aim'] is not None:
        trackers.append(AimTracker(log_opt['aim'], opt))
    return Trackers(trackers) if trackers else None
