"""Curves and an HTML report of a training run:

    python tools/plot_run.py experiments/<name> [--out DIR]

Reads the run's TensorBoard events (or, without them, its train_*.log files) and writes PNG
curves (losses, learning rate, each validation metric, data wait; gradient norm and system load
when recorded) and report.html: the curves, the metrics of every validation, the best
checkpoints, and LR / SR / GT comparisons with a slider (from val.tb_images). The report embeds
everything: it is one file. Default DIR: <experiment>/report.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from basicsr_lite.engine.cli import tool_main
from basicsr_lite.report.html_report import write_charts, write_report
from basicsr_lite.report.run_data import metric_directions, read_run


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('experiment', help='the experiment folder (experiments/<name>)')
    parser.add_argument('--out', default=None, help='output folder (<experiment>/report)')
    parser.add_argument('--no-html', action='store_true', help='PNG curves only')
    args = parser.parse_args(argv)
    experiment = Path(args.experiment)
    out = Path(args.out) if args.out else experiment / 'report'
    data = read_run(experiment)
    charts = write_charts(data, out)
    for title, path in charts:
        print(f'{title}: {path}')
    if not args.no_html:
        write_report(data, charts, out / 'report.html', metric_directions(experiment))
        print(f'report: {out / "report.html"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
