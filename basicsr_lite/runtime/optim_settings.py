"""The settings of a run's optimizers and schedulers (what the option file sets: lr, betas,
weight_decay, ..., milestones, gamma, periods), compared with those a training state
was saved with, and applied to a restored state (``--branch``: the option file wins).

A restored optimizer keeps its state tensors (moments, step counts) and a restored scheduler its
position (``last_epoch``); only the settings are replaced, and the current learning rate is
recomputed in closed form from the new settings at that position."""
from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Param-group entries that are not settings: the parameters, the scheduled (current) lr, and the
# implementation choice (train.optimizer_impl, applied on every start).
NOT_SETTINGS = frozenset({'params', 'lr', 'initial_lr', 'foreach', 'fused', 'capturable',
                          'differentiable'})
# Constructor arguments of a scheduler that are its position, not a setting.
SCHEDULER_POSITION = frozenset({'self', 'optimizer', 'last_epoch', 'verbose'})


@dataclass
class RunSettings:
    """``optimizers``: ``[(option key, [settings of each param group])]``; ``lr`` is the group's
    base lr (``initial_lr``), not the scheduled one. ``schedulers``: the constructor settings of
    each scheduler."""
    optimizers: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    schedulers: list[dict[str, Any]] = field(default_factory=list)


def plain(value: Any) -> Any:
    """A comparable, printable form: tuples as lists, a ``Counter`` of milestones as the sorted
    list of them (MultiStepLR keeps its milestones as a Counter)."""
    if isinstance(value, Counter):
        return sorted(value.elements())
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


def group_settings(group: dict, arguments: set[str] | None = None) -> dict[str, Any]:
    """A param group's settings; ``arguments``: the optimizer's constructor arguments, to leave
    out what some optimizers keep in their groups as state (schedule-free AdamW's
    ``weight_sum`` and ``train_mode``, Prodigy's ``d``, ADOPT's ``step``)."""
    settings = {k: plain(v) for k, v in group.items()
                if k not in NOT_SETTINGS and (arguments is None or k in arguments)}
    return {'lr': group.get('initial_lr', group['lr']), **settings}


def optimizer_arguments(optimizer) -> set[str]:
    return set(inspect.signature(type(optimizer).__init__).parameters) - {'self', 'params'}


def scheduler_settings(scheduler_class: type, state: dict) -> dict[str, Any]:
    """The entries of a scheduler's ``state_dict()`` that its constructor takes."""
    arguments = set(inspect.signature(scheduler_class.__init__).parameters) - SCHEDULER_POSITION
    return {k: plain(v) for k, v in state.items() if k in arguments}


def current_settings(optimizers: list, optimizer_keys: list[str], schedulers: list
                     ) -> RunSettings:
    """The settings of freshly built optimizers and schedulers (those of the option file)."""
    return RunSettings(
        [(key, [group_settings(g, optimizer_arguments(o)) for g in o.param_groups])
         for key, o in zip(optimizer_keys, optimizers)],
        [scheduler_settings(type(s), s.state_dict()) for s in schedulers])


def saved_settings(state: dict, like: RunSettings, schedulers: list) -> RunSettings:
    """The settings a training state was saved with (named and typed like ``like``)."""
    optimizers = [(key, [group_settings(g) for g in saved['param_groups']])
                  for (key, _), saved in zip(like.optimizers, state['optimizers'])]
    return RunSettings(optimizers,
                       [scheduler_settings(type(s), saved)
                        for s, saved in zip(schedulers, state['schedulers'])])


def setting_changes(old: RunSettings, new: RunSettings) -> list[str]:
    """One line per setting that differs, ``'<option key>: <old> -> <new>'`` (an optimizer
    argument that only one side has came with another torch version, not from the user)."""
    lines = []
    for (key, old_groups), (_, new_groups) in zip(old.optimizers, new.optimizers):
        for i, (was, now) in enumerate(zip(old_groups, new_groups)):
            where = key if len(new_groups) == 1 else f'{key} (param group {i})'
            lines += [f'{where}.{name}: {was[name]} -> {now[name]}'
                      for name in sorted(set(was) & set(now)) if was[name] != now[name]]
    for was, now in zip(old.schedulers, new.schedulers):
        lines += [f'train.scheduler.{name}: {was.get(name)} -> {now.get(name)}'
                  for name in sorted({*was, *now}) if was.get(name) != now.get(name)]
    return list(dict.fromkeys(lines))  # (every optimizer's scheduler has train.scheduler's)


def adopt_settings(optimizers: list, schedulers: list, settings: RunSettings,
                   fresh_schedulers: list[dict], saved_schedulers: list[dict]) -> None:
    """Give restored optimizers the settings of the option file (their state tensors stay) and
    the schedulers their freshly built state (``fresh_schedulers``: the option file's) at the
    saved position; each group's current lr is then the new schedule's value there."""
    for optimizer, (_, groups) in zip(optimizers, settings.optimizers):
        for group, new in zip(optimizer.param_groups, groups):
            for name, value in new.items():
                if name != 'lr':
                    group[name] = tuple(value) if isinstance(group.get(name), tuple) else value
            group['initial_lr'] = group['lr'] = new['lr']
    adopt_schedules(schedulers, fresh_schedulers, saved_schedulers)


def adopt_schedules(schedulers: list, fresh_schedulers: list[dict], saved_schedulers: list[dict]
                    ) -> None:
    """Give restored schedulers their freshly built state (the option file's settings, of
    whatever type it names now) at the saved position, and their optimizers the learning rates
    of the new schedule there. What the saved scheduler kept is dropped, so a scheduler of
    another type leaves nothing behind (a ReduceLROnPlateau starts its patience afresh)."""
    for scheduler, fresh, saved in zip(schedulers, fresh_schedulers, saved_schedulers):
        optimizer = scheduler.optimizer
        scheduler.__dict__.clear()
        scheduler.__dict__['optimizer'] = optimizer
        scheduler.load_state_dict({**fresh, 'last_epoch': saved['last_epoch'],
                                   '_step_count': saved.get('_step_count', 1)})
        scheduler.base_lrs = [g['initial_lr'] for g in optimizer.param_groups]
        lrs = scheduled_lrs(scheduler)
        for group, lr in zip(optimizer.param_groups, lrs):
            group['lr'] = lr
        scheduler._last_lr = list(lrs)


def scheduled_lrs(scheduler) -> list[float]:
    """The learning rates of ``scheduler`` at its ``last_epoch``, in closed form (torch's
    MultiStepLR is chainable: its ``get_lr`` steps from the current lr)."""
    closed_form = getattr(scheduler, '_get_closed_form_lr', None)
    return list(closed_form() if closed_form is not None else scheduler.get_lr())


def scheduler_type_change(schedulers: list, state: dict) -> tuple[str, str] | None:
    """``(saved type, type now)`` when ``train.scheduler`` names another scheduler than the one
    a training state was saved with (states that record it); else None."""
    saved = state.get('scheduler_types')
    now = [type(s).__name__ for s in schedulers]
    if saved and now and saved != now:
        return saved[0], now[0]
    return None


def adopt_edited_schedule(schedulers: list, state: dict, fresh_schedulers: list[dict],
                          changes: list[str], retyped: tuple[str, str] | None
                          ) -> tuple[str, list[str]]:
    """``train.scheduler_change: adopt`` (``--new-schedule``) on a resume: an edited
    ``train.scheduler`` (``changes``: :func:`setting_changes`' lines; ``retyped``: another
    type) applies from the saved position; an unchanged one stays exactly as saved. Returns
    what was adopted (old -> new, '' for nothing) and the other changes (optimizer settings,
    which a resume still does not apply)."""
    edited = [line for line in changes if line.startswith('train.scheduler.')]
    if not edited and retyped is None:
        return '', changes
    adopt_schedules(schedulers, fresh_schedulers, state['schedulers'])
    what = [f'{retyped[0]} -> {retyped[1]}'] if retyped else []
    return '; '.join(what + edited), [line for line in changes if line not in edited]
