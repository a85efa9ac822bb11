"""Where a run's scalars, images and histograms go: TensorBoard (``logger.use_tb_logger``) and,
when configured and installed, Weights & Biases (``logger.wandb``) and Aim (``logger.aim``).
They share TensorBoard's ``SummaryWriter`` interface (``add_scalar`` / ``add_image`` /
``add_histogram`` / ``close``), so the loop and the hooks write to one object."""
from __future__ import annotations

import importlib
import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse
from typing import Any

import numpy as np
import torch

from basicsr_lite.errors import OptionError
from basicsr_lite.utils.files import atomic_write

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


WANDB_LOCAL_MODES = ('offline', 'disabled', 'dryrun')


def has_wandb_credentials(host_url: str) -> bool:
    """Whether wandb will find an API key for ``host_url`` without asking: ``WANDB_API_KEY``,
    an identity token file, or a netrc entry (what ``wandb login`` writes)."""
    if os.environ.get('WANDB_API_KEY') or os.environ.get('WANDB_IDENTITY_TOKEN_FILE'):
        return True
    path = Path(os.environ.get('NETRC') or Path.home() / '.netrc')
    try:
        return netrc.netrc(str(path)).authenticators(urlparse(host_url).hostname or '') \
            is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_problem(section: dict) -> str | None:
    """Why a wandb run in ``section``'s mode cannot start here (an online run needs a key;
    offline and disabled ones do not), or None."""
    mode = section['mode'] or os.environ.get('WANDB_MODE') or 'online'
    if mode in WANDB_LOCAL_MODES or os.environ.get('WANDB_DISABLED', '').lower() in ('1', 'true'):
        return None
    host = os.environ.get('WANDB_BASE_URL') or 'https://api.wandb.ai'
    if has_wandb_credentials(host):
        return None
    return (f"logger.wandb: mode {mode} logs to {host}, but no wandb API key was found "
            f"(WANDB_API_KEY, or the netrc entry 'wandb login' writes); run wandb login, set "
            f"WANDB_API_KEY, or set logger.wandb.mode: offline (wandb sync uploads it later).")


def check_trackers(opt: dict) -> None:
    """At start-up, before anything is written: a configured tracker must be importable, and
    an online wandb run must have credentials (without them wandb.init fails, or waits for a
    key on the terminal, after the experiment folder exists)."""
    if (opt['logger']['wandb'] or {}).get('project'):
        require('wandb', 'logger.wandb.project')
        problem = wandb_problem(opt['logger']['wandb'])
        if problem is not None:
            raise OptionError(problem)
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
