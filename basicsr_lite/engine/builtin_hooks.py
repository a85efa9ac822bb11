"""The built-in hooks driven by a validation metric: early stopping (``val.early_stopping``),
the best-K checkpoints (``logger.keep_best_checkpoints``), the ReduceLROnPlateau schedule; and
:func:`build_hooks`, which makes every hook a run's options ask for."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from basicsr_lite.data.contract import dataset_codec
from basicsr_lite.engine.checkpoint import find_network_file, save_weights
from basicsr_lite.engine.checkpoint.files import remove_network_file
from basicsr_lite.engine.hooks import HOOK_REGISTRY, Hook, Hooks, Run
from basicsr_lite.engine.progress import ProgressBar
from basicsr_lite.engine.tb_hooks import TrainingStats, ValidationImages
from basicsr_lite.errors import OptionError
from basicsr_lite.registry import build_from_opt
from basicsr_lite.runtime.lr_scheduler import steps_per_iteration
from basicsr_lite.utils.files import atomic_write, replace_with_link

logger = logging.getLogger('basicsr_lite')


@dataclass
class MetricWatch:
    """One validation metric of one dataset, and which way is better."""
    metric: str
    dataset: str
    better: str  # 'higher' or 'lower'

    @classmethod
    def from_opt(cls, section: dict, opt: dict) -> 'MetricWatch':
        """From ``{metric, dataset, better}`` (dataset: the first validation set; better: the
        metric's own direction)."""
        dataset = section.get('dataset') or first_val_dataset(opt)
        better = section.get('better') or opt['val']['metrics'][section['metric']]['better']
        return cls(section['metric'], dataset, better)

    def value(self, results: dict) -> float | None:
        result = results.get(self.dataset)
        return None if result is None else result.means.get(self.metric)

    def beats(self, value: float, reference: float | None, min_delta: float = 0.0) -> bool:
        """Whether ``value`` is better than ``reference`` by more than ``min_delta``."""
        if reference is None:
            return True
        return value - reference > min_delta if self.better == 'higher' \
            else reference - value > min_delta

    def describe(self) -> str:
        return f'{self.metric} on {self.dataset} ({self.better} is better)'


def first_val_dataset(opt: dict) -> str | None:
    names = [d['name'] for key, d in opt['datasets'].items() if key.startswith('val')]
    return names[0] if names else None


class EarlyStopping(Hook):
    """Ends training (as complete) once the watched metric has not improved by more than
    ``min_delta`` for ``patience`` validations in a row. The count is in the training state."""
    state_key = 'early_stopping'

    def __init__(self, watch: MetricWatch, patience: int, min_delta: float = 0.0) -> None:
        self.watch, self.patience, self.min_delta = watch, patience, min_delta
        self.best: float | None = None
        self.best_iter = -1
        self.stale = 0  # validations in a row without an improvement

    def on_validation_end(self, run: Run, it: int, results: dict) -> None:
        value = self.watch.value(results)
        if value is None:
            return
        if self.watch.beats(value, self.best, self.min_delta):
            self.best, self.best_iter, self.stale = value, it, 0
            return
        self.stale += 1
        logger.info(f'Early stopping: no improvement of {self.watch.describe()} for '
                    f'{self.stale} of {self.patience} validation(s) (best {self.best:.4f} at '
                    f'iter {self.best_iter}).')
        if self.stale >= self.patience:
            run.finish(f'early stopping: {self.watch.metric} on {self.watch.dataset} has not '
                       f'improved by more than {self.min_delta} for {self.patience} '
                       f'validations; best {self.best:.4f} at iter {self.best_iter}')

    def state_dict(self) -> dict:
        return {'best': self.best, 'best_iter': self.best_iter, 'stale': self.stale}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_iter, self.stale = state['best'], state['best_iter'], state['stale']


class BestCheckpoints(Hook):
    """Keeps the generator of the ``k`` best validations by a metric: ``models/net_g_best_
    <metric>.pth`` is the best one, ``net_g_best_<metric>_<iter>.pth`` each of the ``k`` best
    (when ``k`` > 1; ``.safetensors`` with ``logger.save_format: safetensors``), and
    ``best_<metric>.json`` lists them, best first."""
    state_key = 'best_checkpoints'

    def __init__(self, watch: MetricWatch, k: int = 1, label: str = 'net_g') -> None:
        self.watch, self.k, self.label = watch, k, label
        self.entries: list[dict[str, Any]] = []  # {'iter', 'value'}, best first

    @property
    def tag(self) -> str:
        return f'best_{self.watch.metric}'

    def on_validation_end(self, run: Run, it: int, results: dict) -> None:
        value = self.watch.value(results)
        if value is None:
            return
        worst = self.entries[-1]['value'] if len(self.entries) >= self.k else None
        if not self.watch.beats(value, worst):
            return
        is_best = not self.entries or self.watch.beats(value, self.entries[0]['value'])
        ranked = sorted([*self.entries, {'iter': it, 'value': value}],
                        key=lambda e: e['value'], reverse=self.watch.better == 'higher')
        self.entries, dropped = ranked[:self.k], ranked[self.k:]
        if run.is_main:
            self._write(run, it, is_best, dropped)

    def _write(self, run: Run, it: int, is_best: bool, dropped: list[dict]) -> None:
        models = Path(run.opt['path']['models'])
        if self.k == 1:  # (only reached with a new best)
            path = save_weights(run.model, run.opt, self.label, self.tag, it)
        else:
            path = save_weights(run.model, run.opt, self.label, f'{self.tag}_{it}', it)
            if is_best:
                best = models / f'{self.label}_{self.tag}{path.suffix}'
                replace_with_link(path, best)
                remove_network_file(models, self.label, self.tag, keep=best)
            for entry in dropped:
                remove_network_file(models, self.label, f"{self.tag}_{entry['iter']}")
        if is_best:
            logger.info(f'New best {self.watch.describe()}: {self.entries[0]["value"]:.4f} at '
                        f'iter {it}; saved {self.label}_{self.tag}{path.suffix}.')
        summary = {'metric': self.watch.metric, 'dataset': self.watch.dataset,
                   'better': self.watch.better, 'k': self.k,
                   'best': [{**e, 'file': self.file_of(models, e['iter'])} for e in self.entries]}
        atomic_write(models / f'{self.tag}.json',
                     lambda f: f.write(json.dumps(summary, indent=2).encode()))

    def file_of(self, models: Path, it: int) -> str:
        """The network file of the entry of iteration ``it`` (in the format it was saved in:
        ``logger.save_format`` may change between runs)."""
        tag = f'{self.tag}_{it}' if self.k > 1 else self.tag
        found = find_network_file(models, self.label, tag)
        return found.name if found is not None else f'{self.label}_{tag}.pth'

    def state_dict(self) -> dict:
        return {'entries': self.entries}

    def load_state_dict(self, state: dict) -> None:
        self.entries = list(state['entries'])


class PlateauSchedule(Hook):
    """Steps the model's ReduceLROnPlateau schedulers (``train.scheduler``) with their metric
    after each validation; their state is in the training state with the other schedulers."""

    def __init__(self, watch: MetricWatch) -> None:
        self.watch = watch

    def on_validation_end(self, run: Run, it: int, results: dict) -> None:
        value = self.watch.value(results)
        if value is None:
            return
        for scheduler in run.model.schedulers:
            if steps_per_iteration(scheduler):
                continue
            before = list(scheduler.scheduled_lrs)
            scheduler.step(value)
            if scheduler.scheduled_lrs != before:
                logger.info(f'ReduceLROnPlateau: {self.watch.describe()} did not improve for '
                            f'{scheduler.patience + 1} validation(s) (best {scheduler.best:.4f}); '
                            f'lr {before[0]:.3e} -> {scheduler.scheduled_lrs[0]:.3e} at iter '
                            f'{it}.')


class BranchOrigin(Hook):
    """Where a branched run came from (``engine.checkpoint.record_branch``), kept in each of its
    training states (and those of its own branches, as their ``parent``)."""
    state_key = 'branched_from'

    def __init__(self, record: dict | None = None) -> None:
        self.record = record

    def state_dict(self) -> dict:
        return self.record or {}

    def load_state_dict(self, state: dict) -> None:
        self.record = state or None


class PixelFormats(Hook):
    """The pixel type, bands and normalisation of each dataset read as stored, kept in every
    training state: a resume that would feed the network other values (a statistics file made
    again from other images, another ``normalize``) is refused before anything runs."""
    state_key = 'pixel_formats'

    def __init__(self, loaders: dict[str, Any]) -> None:
        codecs = {name: dataset_codec(loader.dataset) for name, loader in loaders.items()}
        # as plain lists and floats: what a training state keeps and gives back
        self.formats = {name: json.loads(json.dumps(vars(codec)))
                        for name, codec in codecs.items() if codec is not None}

    def state_dict(self) -> dict:
        return self.formats

    def check_resume(self, saved: dict | None, state_path: Path) -> None:
        """An OptionError when a dataset's format differs from the one ``state_path`` was
        trained with."""
        for name, now in self.formats.items():
            was = (saved or {}).get(name)
            if was is not None and was != now:
                changed = ', '.join(f'{k} {was.get(k)} -> {v}' for k, v in now.items()
                                    if was.get(k) != v)
                raise OptionError(
                    f'Dataset {name} would be read differently from the run being resumed '
                    f'({state_path}): {changed}. Restore its normalize section and statistics '
                    f'file, or start a new run (--branch) to change them.')


def build_hooks(opt: dict, extra: list[Hook] | None = None) -> Hooks:
    """The hooks of a run: the built-ins its options turn on, the ``hooks:`` of the option file,
    then ``extra`` (given in code)."""
    hooks: list[Hook] = [BranchOrigin(), TrainingStats.from_opt(opt)]
    val_opt = opt['val']
    if val_opt is not None and val_opt['early_stopping'] is not None:
        section = val_opt['early_stopping']
        hooks.append(EarlyStopping(MetricWatch.from_opt(section, opt), section['patience'],
                                   section['min_delta']))
    scheduler = (opt.get('train') or {}).get('scheduler') or {}
    if scheduler.get('type') == 'ReduceLROnPlateau' and val_opt is not None:
        hooks.append(PlateauSchedule(MetricWatch.from_opt(scheduler, opt)))
    best = opt['logger']['keep_best_checkpoints']
    if best is not None:
        hooks.append(BestCheckpoints(MetricWatch.from_opt(best, opt), best['k']))
    if val_opt is not None and val_opt['tb_images']:
        hooks.append(ValidationImages(val_opt['tb_images'], val_opt['tb_image_size'],
                                      val_opt['tb_image_fit']))
    if ProgressBar.wanted(opt):
        hooks.append(ProgressBar())
    if opt['logger'].get('check_interop'):
        from basicsr_lite.engine.interop_hook import InteropCheck  # imports the arch tables
        hooks.append(InteropCheck())
    for i, hook_opt in enumerate(opt.get('hooks') or []):
        hooks.append(build_from_opt(HOOK_REGISTRY, hook_opt, f'hooks[{i}]'))
    return Hooks([*hooks, *(extra or [])])
