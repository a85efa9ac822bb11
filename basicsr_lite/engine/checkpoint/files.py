"""The file layout of a run's checkpoints: network files (``models/<label>_<iter>.pth``, or
``.safetensors`` with ``logger.save_format: safetensors``), the
training states (``training_states/<iter>.state``) found for a resume, and pruning."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import torch
from torch import nn

from basicsr_lite.errors import CheckpointError
from basicsr_lite.models.protocol import TrainableModel
from basicsr_lite.runtime.dist import unwrap
from basicsr_lite.engine.checkpoint.metadata import network_metadata
from basicsr_lite.runtime.weights import (load_torch, load_weights_into, save_safetensors,
                                          save_torch)

logger = logging.getLogger('basicsr_lite')


# ---- network files ---------------------------------------------------------------------------------
# logger.save_format -> suffix: BasicSR's torch file, or self-describing safetensors (metadata.py)
SUFFIXES = {'pth': '.pth', 'safetensors': '.safetensors'}


def save_format(opt: dict) -> str:
    return (opt.get('logger') or {}).get('save_format') or 'pth'


def network_file(models_dir: str | Path, label: str, tag: int | str, fmt: str = 'pth') -> Path:
    return Path(models_dir) / f'{label}_{tag}{SUFFIXES[fmt]}'


def find_network_file(models_dir: str | Path, label: str, tag: int | str) -> Path | None:
    """The saved ``<label>_<tag>`` file in either format (the newer if both are there: a save
    interrupted before the other format's file was removed), or None."""
    found = [p for fmt in SUFFIXES if (p := network_file(models_dir, label, tag, fmt)).is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def remove_network_file(models_dir: str | Path, label: str, tag: int | str,
                        keep: Path | None = None) -> None:
    """Delete ``<label>_<tag>`` in every format (but ``keep``)."""
    for fmt in SUFFIXES:
        path = network_file(models_dir, label, tag, fmt)
        if path != keep:
            path.unlink(missing_ok=True)


def write_networks(nets: dict[str, nn.Module], path: Path,
                   metadata: dict[str, str] | None = None) -> None:
    """One file holding a state dict per param key (``params``, ``params_ema``): a torch file,
    or for a ``.safetensors`` path the sets as key prefixes with ``metadata``."""
    groups = {key: {k: v.detach().cpu() for k, v in unwrap(net).state_dict().items()}
              for key, net in nets.items()}
    if path.suffix == SUFFIXES['safetensors']:
        save_safetensors(groups, path, metadata or {})
    else:
        save_torch(groups, path)


def save_weights(model: TrainableModel, opt: dict, label: str, tag: int | str,
                 iteration: int) -> Path:
    """Network ``label``'s file (every param key) as ``models/<label>_<tag>`` in
    ``logger.save_format`` (schedule-free: at the averaged point); the same tag's file in the
    other format is removed, so that each tag has one file."""
    model.set_weights_mode(train=False)
    nets = model.networks_to_save()[label]
    fmt = save_format(opt)
    path = network_file(opt['path']['models'], label, tag, fmt)
    metadata = network_metadata(opt, label, iteration, list(nets)) if fmt != 'pth' else None
    write_networks(nets, path, metadata)
    remove_network_file(opt['path']['models'], label, tag, keep=path)
    return path


def save_networks(model: TrainableModel, opt: dict, tag: int | str,
                  iteration: int) -> dict[str, Path]:
    """Every network file of ``model`` as ``<label>_<tag>`` (``tag``: iteration or 'latest');
    returns ``{label: path}``."""
    return {label: save_weights(model, opt, label, tag, iteration)
            for label in model.networks_to_save()}


def load_networks(model: TrainableModel, files: dict[str, Path]) -> None:
    """Load every saved network (each param key) from ``{label: file}``, strictly: the inverse
    of :func:`save_networks`."""
    for label, nets in model.networks_to_save().items():
        for param_key, net in nets.items():
            load_weights_into(net, str(files[label]), True, param_key)
            logger.info(f'Loaded {unwrap(net).__class__.__name__} from {files[label]} '
                        f'[{param_key}].')


def weights_fingerprint(model: TrainableModel) -> str:
    """SHA-256 of every saved network's tensors: equal on all ranks unless they diverged."""
    digest = hashlib.sha256()
    for label, nets in sorted(model.networks_to_save().items()):
        for key, net in sorted(nets.items()):
            for name, tensor in unwrap(net).state_dict().items():
                digest.update(f'{label}.{key}.{name}'.encode())
                digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
    return digest.hexdigest()


# ---- pruning ---------------------------------------------------------------------------------------
def prune_checkpoints(training_states: str | Path, models: str | Path, keep: int,
                      net_labels: tuple[str, ...] = ('net_g',)) -> list[int]:
    """Delete all but the ``keep`` newest checkpoints (state + network files); returns the
    iterations removed. Call it only after the newest checkpoint is completely written."""
    removed = state_iterations(training_states)[keep:]
    for it in removed:
        # The state first: a network file without its state is never picked for resuming.
        (Path(training_states) / f'{it}.state').unlink(missing_ok=True)
        for label in net_labels:
            remove_network_file(models, label, it)
    return removed


# ---- finding ---------------------------------------------------------------------------------------
def state_iterations(folder: str | Path) -> list[int]:
    """Iterations of the ``<iter>.state`` files in ``folder``, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    iters = [int(p.stem) for p in folder.iterdir() if re.fullmatch(r'\d+\.state', p.name)]
    return sorted(iters, reverse=True)


def last_checkpoint_description(training_states: str | Path) -> str:
    """The newest training state's path, or 'none saved yet' (for error messages)."""
    iters = state_iterations(training_states)
    return str(Path(training_states) / f'{iters[0]}.state') if iters else 'none saved yet'


def find_resumable_state(training_states: str | Path, models: str | Path,
                         net_names: tuple[str, ...] = ('net_g',)) -> tuple[Path, dict] | None:
    """``(path, loaded state)`` of the newest ``<iter>.state`` that loads and whose network
    files exist (in either format); None if none. Corrupt or incomplete checkpoints are skipped
    with a warning."""
    for it in state_iterations(training_states):
        state_path = Path(training_states) / f'{it}.state'
        missing = [n for n in net_names if find_network_file(models, n, it) is None]
        if missing:
            logger.warning(f'Skipping {state_path}: network file(s) {missing} for iter {it} are '
                           f'missing.')
            continue
        try:
            return state_path, load_torch(state_path)
        except CheckpointError as err:
            logger.warning(f'Skipping {state_path}: {err}')
    return None


def newest_state(training_states: str | Path, models: str | Path,
                 net_labels: tuple[str, ...]) -> tuple[Path, dict] | None:
    """``(path, state)`` of the newest loadable training state with its network files, checked
    to be a training state; None if there is none."""
    found = find_resumable_state(training_states, models, net_labels)
    return None if found is None else (found[0], check_training_state(*found))


def network_file_for_state(state_path: Path, state: dict, models_dir: str,
                           label: str = 'net_g') -> Path:
    """The ``<label>_<iter>`` file saved with a training state (the name the state records,
    else either format): beside the state's own experiment if there, else in this
    experiment's models folder."""
    it = state['iter']
    recorded = (state.get('network_files') or {}).get(label)
    for folder in (state_path.parent.parent / 'models', Path(models_dir)):
        if recorded and (folder / recorded).is_file():
            return folder / recorded
        found = find_network_file(folder, label, it)
        if found is not None:
            return found
    raise CheckpointError(f'The network file for the training state {state_path} is missing: '
                          f'looked for {recorded or f"{label}_{it}.pth / .safetensors"} in '
                          f"{state_path.parent.parent / 'models'} and {models_dir}.")


def check_training_state(path: Path, state: dict) -> dict:
    for key in ('iter', 'epoch', 'optimizers', 'schedulers'):
        if key not in state:
            raise CheckpointError(f"{path} is not a training state: it has no '{key}' entry.")
    return state


def load_resume_state(path: Path) -> dict:
    return check_training_state(path, load_torch(path))
