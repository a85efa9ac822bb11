"""``logger.check_interop: true``: after every checkpoint, the saved generator is loaded through
spandrel (the upscaling tools' loader) and compared with ours (``archs/interop.py``); one log
line says whether it passes. Off by default: it needs the optional spandrel package."""
from __future__ import annotations

import logging
from pathlib import Path

from basicsr_lite.archs.interop import SPANDREL_ARCHS, check_file
from basicsr_lite.engine.checkpoint.files import find_network_file
from basicsr_lite.engine.hooks import Hook, Run
from basicsr_lite.errors import UserError

logger = logging.getLogger('basicsr_lite')


class InteropCheck(Hook):
    """Checks ``models/net_g_<iter>.pth`` (or ``.safetensors``) on rank 0; a missing spandrel
    is said once."""

    def __init__(self) -> None:
        self.unavailable = False

    def on_checkpoint(self, run: Run, it: int) -> None:
        if not run.is_main or self.unavailable:
            return
        arch = run.opt['network_g']['type']
        if arch not in SPANDREL_ARCHS:
            self.unavailable = True
            logger.warning(f'logger.check_interop: spandrel 0.4.2 has no {arch}; its files do '
                           f'not open in the upscaling tools (nothing to check).')
            return
        path = find_network_file(run.opt['path']['models'], 'net_g', it)
        if path is None:
            return
        try:
            report = check_file(str(path), run.opt['network_g'])
        except UserError as err:  # spandrel missing or broken
            self.unavailable = True
            logger.warning(f'logger.check_interop: skipped from now on: {err}')
            return
        log = logger.info if report.passed else logger.warning
        log(f'{report.one_line()} ({Path(path).name})')
