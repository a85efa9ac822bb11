"""What a finished (or running) experiment folder tells about its run: scalar curves, validation
images and best checkpoints, read from its TensorBoard events or, without them, its log files."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from basicsr_lite.errors import UserError
from basicsr_lite.metrics import metric_better
from basicsr_lite.options.parse import load_option_file

Series = list[tuple[int, float]]  # (iteration, value), by iteration

ITER_LINE = re.compile(r'\[.{0,5}\.\.\]\[epoch:\s*\d+, iter:\s*([\d,]+), lr:\(([^)]*)\)\] '
                       r'(?:\[eta: [^,]+, time \(data\): ([\d.]+) \(([\d.]+)\)\] )?(.*)$')
LOSS = re.compile(r'(\S+): ([-+\d.eE]+|nan|inf)')
VALIDATION = re.compile(r'Validation (\S+) \(\d+ images\)')
METRIC_LINE = re.compile(r'^\t # (\S+): ([-+\d.eE]+|nan|inf)')


@dataclass
class RunData:
    name: str
    source: str  # 'tensorboard' or 'log'
    scalars: dict[str, Series] = field(default_factory=dict)
    # tag -> (iteration, PNG bytes) of the last validation's LR | SR | GT triplet
    images: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    best: list[dict] = field(default_factory=list)  # the best_<metric>.json files

    def tags(self, prefix: str) -> list[str]:
        return sorted(t for t in self.scalars if t.startswith(prefix))


def read_run(experiment: str | Path) -> RunData:
    """The run of ``experiment`` (a training folder): TensorBoard events if it has them, else
    its ``train_*.log`` files."""
    root = Path(experiment)
    if not root.is_dir():
        raise UserError(f'{root} is not a folder (expected an experiment folder, e.g. '
                        f'experiments/<name>).')
    tb_dir = root / 'tb_logger'
    if tb_dir.is_dir() and any(tb_dir.glob('events.out.tfevents.*')):
        data = read_events(tb_dir, root.name)
    else:
        logs = sorted(root.glob('train_*.log'))
        if not logs:
            raise UserError(f'{root} has neither TensorBoard events (tb_logger/) nor train_*.log '
                            f'files: is it an experiment folder of train.py?')
        data = read_logs(logs, root.name)
    for path in sorted((root / 'models').glob('best_*.json')):
        data.best.append(json.loads(path.read_text()))
    return data


def read_events(tb_dir: Path, name: str) -> RunData:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tb_dir), size_guidance={'scalars': 0, 'images': 0})
    events.Reload()
    data = RunData(name, 'tensorboard')
    for tag in events.Tags()['scalars']:
        data.scalars[tag] = by_iteration((e.step, e.value) for e in events.Scalars(tag))
    for tag in events.Tags()['images']:
        last = max(events.Images(tag), key=lambda e: e.step)
        data.images[tag] = (last.step, last.encoded_image_string)
    return data


def read_logs(logs: list[Path], name: str) -> RunData:
    """Losses, learning rates, timing and validation metrics from train.py's log lines (a
    resumed run's logs follow each other; a repeated iteration keeps its last value)."""
    data = RunData(name, 'log')
    rows: dict[str, dict[int, float]] = {}

    def add(tag: str, it: int, value: float) -> None:
        rows.setdefault(tag, {})[it] = value

    it, dataset = 0, None
    for path in logs:
        for line in path.read_text(errors='replace').splitlines():
            match = ITER_LINE.search(line)
            if match:
                it = int(match.group(1).replace(',', ''))
                for i, lr in enumerate(match.group(2).split(',')):
                    if lr.strip():
                        add(f'lr/group_{i}', it, float(lr))
                if match.group(3):
                    iter_time, data_time = float(match.group(3)), float(match.group(4))
                    add('perf/iter_time', it, iter_time)
                    add('perf/data_wait_share', it, data_time / iter_time if iter_time else 0.0)
                for key, value in LOSS.findall(match.group(5)):
                    add(f'losses/{key}', it, float(value))
                continue
            match = VALIDATION.search(line)
            if match:
                dataset = match.group(1)
                continue
            match = METRIC_LINE.match(line)
            if match and dataset is not None:
                add(f'metrics/{dataset}/{match.group(1)}', it, float(match.group(2)))
            else:
                dataset = None
    data.scalars = {tag: sorted(values.items()) for tag, values in rows.items()}
    return data


def by_iteration(points) -> Series:
    """Sorted by iteration; a resumed run's repeated iterations keep the last value written."""
    latest: dict[int, float] = {}
    for step, value in points:
        latest[int(step)] = float(value)
    return sorted(latest.items())


def metric_directions(experiment: str | Path) -> dict[str, str]:
    """``{metric: 'higher' | 'lower'}`` from the option file copied into the experiment folder
    (empty when there is none or it cannot be read)."""
    copies = sorted([*Path(experiment).glob('*.yml'), *Path(experiment).glob('*.toml')],
                    key=lambda p: p.stat().st_mtime)
    if not copies:
        return {}
    try:
        metrics = ((load_option_file(copies[-1]).get('val') or {}).get('metrics') or {})
        return {name: metric_better(m) for name, m in metrics.items()}
    except (UserError, KeyError, TypeError):
        return {}
