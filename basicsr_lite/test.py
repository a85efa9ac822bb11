"""Evaluation entry point: ``python test.py -opt options/test/x.yml``.

Runs the model on every dataset of the option file, saves the SR images and writes the metrics
per image and on average to ``results/<name>/metrics.csv`` and ``metrics.json``.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

from basicsr_lite.data.loading.loaders import build_eval_loaders
from basicsr_lite.engine.cli import run_cli
from basicsr_lite.engine.constraints import check_constraints, eval_datasets_by_key
from basicsr_lite.engine.experiment import open_run_folder, start_processes
from basicsr_lite.engine.logger import FILE_ONLY, get_root_logger
from basicsr_lite.engine.validate import (check_metrics, format_table, scale_tables, validate,
                                          write_metrics)
from basicsr_lite.models import build_model
from basicsr_lite.options import dict2str, parse_options
from basicsr_lite.utils.misc import set_random_seed

logger = logging.getLogger('basicsr_lite')


def test_pipeline(argv: Sequence[str] | None = None) -> None:
    opt, _ = parse_options(argv, is_train=False)
    device = start_processes(opt)
    get_root_logger(rank=opt['rank'])  # the log file starts once the results folder exists
    logger.info(f'Options:\n{dict2str(opt)}', extra=FILE_ONLY)  # the console keeps to messages
    set_random_seed(opt['manual_seed'])
    # Datasets and weights are checked before the results folder is created or archived.
    loaders = build_eval_loaders(opt, ('val', 'test'))
    if opt['val'] is not None:
        check_metrics(opt['val']['metrics'], loaders)
    check_constraints(opt, eval_datasets_by_key(opt, loaders))
    model = build_model(opt, device)
    open_run_folder(opt)
    save_img = opt['val']['save_img'] if opt['val'] is not None else True
    results = [validate(model, loader, name, 0, None, save_img)
               for name, loader in loaders.items()]
    if opt['rank'] != 0:
        return
    scored = [r for r in results if r.means]
    if scored:
        root = Path(opt['path']['results_root'])
        csv_path = root / 'metrics.csv'
        write_metrics(scored, csv_path, root / 'metrics.json')
        table = format_table({r.dataset_name: r.means for r in scored})
        per_scale = scale_tables(scored, loaders)
        if per_scale:
            table += f'\n\nPer scale:\n{per_scale}'
        logger.info(f'Test results ({opt["name"]}):\n{table}\nPer-image metrics: {csv_path}')
    saved = sum(len(r.rows) for r in results) if save_img else 0  # (corrupt ones are skipped)
    if saved:  # say what was written, and only that
        default = '' if opt['val'] is not None else \
            ' (without a val section images are saved; val.save_img: false turns that off)'
        logger.info(f"SR images: {saved} in {opt['path']['visualization']}{default}")
    elif save_img:
        logger.warning('No SR images were saved: no image was read.')


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(test_pipeline, argv)


if __name__ == '__main__':
    sys.exit(main())
