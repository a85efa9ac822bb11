"""The cockpit: hooks, early stopping, best checkpoints, epoch cadence, branching, quick checks,
TensorBoard extras and the progress bar."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from basicsr_lite.engine.builtin_hooks import BestCheckpoints, EarlyStopping, MetricWatch
from basicsr_lite.engine.hooks import HOOK_REGISTRY, Hook, Run
from basicsr_lite.engine.validate import ValidationResult
from basicsr_lite.errors import OptionError
from basicsr_lite.train import train_pipeline
from tests.conftest import write_yaml
from tests.runs import assert_identical, final_weights, load, saved_iterations, train_in_process


@HOOK_REGISTRY.register()
class RecordingHook(Hook):
    """Records every call; counts iterations in its state (so resuming shows up in it)."""
    state_key = 'recording'
    instances: list['RecordingHook'] = []

    def __init__(self, tag: str = 'code') -> None:
        self.tag, self.calls, self.iterations, self.loaded = tag, [], 0, None
        RecordingHook.instances.append(self)

    def on_train_start(self, run: Run) -> None:
        self.calls.append(('start', run.loop.current_iter))

    def on_iter_end(self, run: Run, it: int, log) -> None:
        self.iterations += 1
        self.calls.append(('iter', it, log is not None and 'l_pix' in log))

    def on_validation_end(self, run: Run, it: int, results: dict) -> None:
        self.calls.append(('validation', it, sorted(results), round(results['tiny_val'].means[
            'psnr'], 6)))

    def on_checkpoint(self, run: Run, it: int) -> None:
        self.calls.append(('checkpoint', it))

    def on_train_end(self, run: Run, finished: bool) -> None:
        self.calls.append(('end', finished))

    def state_dict(self) -> dict:
        return {'iterations': self.iterations, 'tag': self.tag}

    def load_state_dict(self, state: dict) -> None:
        self.loaded = dict(state)
        self.iterations = state['iterations']


def run_with(tmp_path: Path, opt: dict, *extra: str, hooks=None, name: str = 'opt.yml') -> None:
    train_pipeline(['-opt', str(write_yaml(tmp_path / name, opt)), *extra], hooks=hooks)


def experiment(opt: dict) -> Path:
    return Path(opt['path']['experiments_root'])


def log_text(root: Path) -> str:
    return ''.join(p.read_text() for p in sorted(root.glob('train_*.log')))


def logged_psnr(root: Path) -> dict[int, float]:
    """{iteration: PSNR} of each validation during training, read from the log."""
    values = {}
    for it, psnr in re.findall(r'\[tiny\.\.\]\[epoch:\s*\d+, iter:\s*([\d,]+).*?\n(?:.*\n)*?'
                               r'.*Validation tiny_val.*\n\t # psnr: ([\d.]+)', log_text(root)):
        values[int(it.replace(',', ''))] = float(psnr)
    return values


# ---- hooks -----------------------------------------------------------------------------------

def test_hooks_are_called_at_their_points_and_their_state_is_resumed(tiny_opt, tmp_path):
    hook = RecordingHook()
    run_with(tmp_path, tiny_opt, hooks=[hook])
    psnr = [c for c in hook.calls if c[0] == 'validation']
    assert hook.calls == [
        ('start', 0),
        ('iter', 1, True), ('iter', 2, True), ('iter', 3, True),
        psnr[0], ('checkpoint', 3),  # validation first: the checkpoint holds its outcome
        ('iter', 4, True), ('iter', 5, True), ('iter', 6, True),
        psnr[1], ('checkpoint', 6),  # the final validation is one too (and runs once)
        ('end', True)]
    assert psnr[0][:3] == ('validation', 3, ['tiny_val'])
    assert psnr[1][:3] == ('validation', 6, ['tiny_val'])
    state = load(experiment(tiny_opt) / 'training_states' / '3.state')
    assert state['hooks']['recording'] == {'iterations': 3, 'tag': 'code'}

    # Resumed from iteration 3: the new instance starts from the saved state.
    resumed = RecordingHook()
    opt = copy.deepcopy(tiny_opt)
    opt['path']['resume_state'] = str(experiment(tiny_opt) / 'training_states' / '3.state')
    run_with(tmp_path, opt, hooks=[resumed], name='resume.yml')
    assert resumed.loaded == {'iterations': 3, 'tag': 'code'}
    assert resumed.calls[0] == ('start', 3) and resumed.iterations == 6


def test_hooks_from_the_option_file(tiny_opt, tmp_path):
    RecordingHook.instances.clear()
    tiny_opt['hooks'] = [{'type': 'RecordingHook', 'tag': 'from_yaml'}]
    assert train_in_process(tmp_path, tiny_opt) == 0
    (hook,) = RecordingHook.instances
    assert hook.tag == 'from_yaml' and hook.calls[-1] == ('end', True)


@pytest.mark.parametrize('hooks, message', [
    ([{'type': 'RecordingHok'}], "hooks[0].type: No hook named 'RecordingHok'. Did you mean "
                                 "'RecordingHook'?"),
    ([{'type': 'RecordingHook', 'tags': 1}], 'hooks[0].tags: unknown argument of hook '
                                             "RecordingHook; did you mean 'tag'?"),
    ({'type': 'RecordingHook'}, 'hooks: expected a list'),
])
def test_bad_hook_options_are_reported(tiny_opt, tmp_path, hooks, message):
    tiny_opt['hooks'] = hooks
    with pytest.raises(OptionError) as err:
        run_with(tmp_path, tiny_opt)
    assert message in str(err.value)
    assert not experiment(tiny_opt).exists()


# ---- early stopping and best checkpoints -----------------------------------------------------

def results(psnr: float) -> dict:
    return {'val': ValidationResult('val', [{'name': 'a', 'psnr': psnr}])}


class FakeRun:
    finish_reason = None
    is_main = False

    def finish(self, reason: str) -> None:
        self.finish_reason = reason


def test_early_stopping_counts_validations_without_a_large_enough_improvement():
    stop = EarlyStopping(MetricWatch('psnr', 'val', 'higher'), patience=2, min_delta=0.1)
    run = FakeRun()
    for it, value in enumerate([20.0, 20.05, 20.5, 20.55], start=1):
        stop.on_validation_end(run, it, results(value))
    assert stop.state_dict() == {'best': 20.5, 'best_iter': 3, 'stale': 1}
    assert run.finish_reason is None
    stop.on_validation_end(run, 5, results(20.58))  # +0.08: not more than min_delta
    assert 'best 20.5000 at iter 3' in run.finish_reason
    lower = EarlyStopping(MetricWatch('lpips', 'val', 'lower'), patience=1)
    for it, value in enumerate([0.3, 0.2], start=1):
        lower.on_validation_end(run := FakeRun(), it, {'val': ValidationResult(
            'val', [{'name': 'a', 'lpips': value}])})
    assert lower.best == 0.2 and run.finish_reason is None


def test_best_checkpoints_rank_the_k_best():
    best = BestCheckpoints(MetricWatch('psnr', 'val', 'higher'), k=2)
    for it, value in enumerate([20.0, 22.0, 21.0, 19.0, 23.0], start=1):
        best.on_validation_end(FakeRun(), it, results(value))
    assert best.entries == [{'iter': 5, 'value': 23.0}, {'iter': 2, 'value': 22.0}]


def early_opt(tiny_opt: dict, total: int, patience: int, min_delta: float) -> dict:
    opt = copy.deepcopy(tiny_opt)
    opt['train']['total_iter'] = total
    opt['val'].update(val_freq=1, save_img=False,
                      early_stopping={'metric': 'psnr', 'patience': patience,
                                      'min_delta': min_delta})
    opt['logger']['save_checkpoint_freq'] = 2
    return opt


def test_early_stopping_ends_the_run_as_complete(tiny_opt, tmp_path):
    opt = early_opt(tiny_opt, 20, patience=2, min_delta=100.0)  # nothing improves by 100 dB
    assert train_in_process(tmp_path, opt) == 0
    root = experiment(opt)
    log = log_text(root)
    assert 'Training ends at iteration 3: early stopping: psnr on tiny_val has not improved ' \
           'by more than 100.0 for 2 validations' in log
    assert saved_iterations(root) == [2, 3]  # the stop saves its state
    assert load(root / 'training_states' / '3.state')['hooks']['early_stopping']['stale'] == 2
    assert (root / 'models' / 'net_g_latest.pth').is_file()
    assert 'Final validation on tiny_val' in log


def test_a_resumed_run_keeps_its_patience_count(tiny_opt, tmp_path):
    first = early_opt(tiny_opt, 3, patience=2, min_delta=100.0)  # validations at 1, 2
    assert train_in_process(tmp_path, first) == 0
    assert load(experiment(first) / 'training_states' / '2.state')[
        'hooks']['early_stopping']['stale'] == 1
    longer = early_opt(tiny_opt, 20, patience=2, min_delta=100.0)
    longer['path']['resume_state'] = str(experiment(first) / 'training_states' / '2.state')
    assert train_in_process(tmp_path, longer) == 0
    # Counted afresh, validation 3 would be the first (best) and the run would stop at 5.
    assert 'Training ends at iteration 3: early stopping' in log_text(experiment(first))


@pytest.mark.parametrize('k', [1, 2])
def test_best_k_checkpoints_on_disk(tiny_opt, tmp_path, k):
    tiny_opt['val'].update(val_freq=1, save_img=False)
    tiny_opt['logger']['keep_best_checkpoints'] = {'metric': 'psnr', 'k': k}
    assert train_in_process(tmp_path, tiny_opt) == 0
    models = experiment(tiny_opt) / 'models'
    psnr = logged_psnr(experiment(tiny_opt))
    assert sorted(psnr) == [1, 2, 3, 4, 5, 6]  # (6: the final validation, a validation too)
    ranked = sorted(psnr, key=lambda it: -psnr[it])[:k]
    listing = json.loads((models / 'best_psnr.json').read_text())
    assert [e['iter'] for e in listing['best']] == ranked
    assert [round(e['value'], 4) for e in listing['best']] == [psnr[it] for it in ranked]
    best = load(models / 'net_g_best_psnr.pth')
    assert set(best) == {'params', 'params_ema'}
    kept = sorted(p.name for p in models.glob('net_g_best_psnr_*.pth'))
    if k == 1:
        assert kept == [] and listing['best'][0]['file'] == 'net_g_best_psnr.pth'
    else:
        assert kept == sorted(f'net_g_best_psnr_{it}.pth' for it in ranked)
        assert_identical(best, load(models / f'net_g_best_psnr_{ranked[0]}.pth'))


# ---- checkpoint cadence, limits ----------------------------------------------------------------

def test_checkpoints_every_epoch_and_limited_epochs(tiny_opt, tmp_path):
    # 4 images x enlarge 2 / batch 2 = 4 iterations per epoch.
    tiny_opt['logger'].update(save_checkpoint_freq=1000, save_checkpoint_freq_epochs=1)
    tiny_opt['train']['total_iter'] = 9
    tiny_opt['val']['val_freq'] = 1000
    assert train_in_process(tmp_path, tiny_opt) == 0
    assert saved_iterations(experiment(tiny_opt)) == [4, 8]
    tiny_opt['train']['limit_train_batches'] = 3
    tiny_opt['logger']['save_checkpoint_freq_epochs'] = 2
    tiny_opt['path']['experiments_root'] += '_limited'
    assert train_in_process(tmp_path, tiny_opt) == 0
    assert saved_iterations(experiment(tiny_opt)) == [6]
    assert '3 iters per epoch' in log_text(experiment(tiny_opt))


def test_limited_epochs_resume_exactly(tiny_opt, tmp_path):
    tiny_opt['train'].update(total_iter=8, limit_train_batches=0.75)  # 3 of 4 batches
    tiny_opt['val'].update(val_freq=1000, limit_batches=1)
    tiny_opt['logger']['save_checkpoint_freq'] = 4
    straight = copy.deepcopy(tiny_opt)
    straight['path']['experiments_root'] += '_straight'
    assert train_in_process(tmp_path, straight) == 0
    tiny_opt['train']['total_iter'] = 4
    assert train_in_process(tmp_path, tiny_opt) == 0
    tiny_opt['train']['total_iter'] = 8
    assert train_in_process(tmp_path, tiny_opt, '--auto_resume') == 0
    assert_identical(final_weights(experiment(straight)), final_weights(experiment(tiny_opt)))
    assert 'Final validation on tiny_val (1 images)' in log_text(experiment(tiny_opt))


# ---- branching -----------------------------------------------------------------------------------

def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob('*')}


def test_branch_from_a_saved_state(tiny_opt, tmp_path):
    tiny_opt['val']['val_freq'] = 1000
    assert train_in_process(tmp_path, tiny_opt) == 0  # states 3 and 6
    source = experiment(tiny_opt)
    before = tree(source)
    state_3 = source / 'training_states' / '3.state'
    assert train_in_process(tmp_path, tiny_opt, '--branch', 'tiny_b', '--force_yml',
                            f'path:resume_state={state_3}') == 0
    branch = source.with_name('tiny_b')
    assert tree(source) == before  # the source run is untouched
    record = json.loads((branch / 'branch.json').read_text())
    assert record['from_state'] == str(state_3.resolve()) and record['iter'] == 3
    assert 'iter:       4' in log_text(branch) and 'iter:       1,' not in log_text(branch)
    assert saved_iterations(branch) == [6]
    state = load(branch / 'training_states' / '6.state')
    assert state['hooks']['branched_from']['from_state'] == str(state_3.resolve())
    # Same options: the branch continues exactly where the source went.
    assert_identical(final_weights(source), final_weights(branch))

    # An interrupted branch resumes itself; path.branch_from takes a whole experiment folder.
    tiny_opt['name'] = 'tiny_c'
    tiny_opt['path'].update(experiments_root=str(source.with_name('tiny_c')),
                            branch_from=str(branch))
    tiny_opt['train']['total_iter'] = 9
    assert train_in_process(tmp_path, tiny_opt) == 0
    record = json.loads((source.with_name('tiny_c') / 'branch.json').read_text())
    assert record['iter'] == 6 and record['parent']['iter'] == 3
    assert train_in_process(tmp_path, tiny_opt, '--auto_resume') == 0
    assert 'Resumed from ' + str(source.with_name('tiny_c') / 'training_states' / '9.state') \
        in log_text(source.with_name('tiny_c'))


def test_branch_without_a_state_is_an_error(tiny_opt, tmp_path):
    (tmp_path / 'empty').mkdir()
    tiny_opt['path']['branch_from'] = str(tmp_path / 'empty')
    assert train_in_process(tmp_path, tiny_opt) == 2
    assert not experiment(tiny_opt).exists()


# ---- quick checks -------------------------------------------------------------------------------

def test_fast_dev_run_leaves_nothing(tiny_opt, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv('TMPDIR', str(tmp_path / 'tmp'))
    (tmp_path / 'tmp').mkdir()
    tiny_opt['train']['total_iter'] = 1000
    tiny_opt['logger']['use_tb_logger'] = True
    import tempfile
    monkeypatch.setattr(tempfile, 'tempdir', None)  # TMPDIR is read again
    assert train_in_process(tmp_path, tiny_opt, '--fast_dev_run') == 0
    err = capfd.readouterr().err
    assert 'iter:       4' in err and 'iter:       5' not in err
    assert 'Saving models and training state at iter 4' in err
    assert 'Final validation on tiny_val (2 images)' in err
    assert '--fast_dev_run: the pipeline works.' in err and '--fast_dev_run: removed' in err
    assert not experiment(tiny_opt).exists()
    assert list((tmp_path / 'tmp').glob('basicsr_lite_*')) == []  # (torch may cache there)


# ---- TensorBoard and the progress bar ---------------------------------------------------------

def test_tensorboard_extras(tiny_opt, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tiny_opt['logger'].update(use_tb_logger=True, tb_histogram_freq=2)
    tiny_opt['val'].update(tb_images=1, tb_image_size=16)
    assert train_in_process(tmp_path, tiny_opt) == 0
    events = EventAccumulator(str(experiment(tiny_opt) / 'tb_logger'),
                              size_guidance={'images': 0, 'histograms': 0, 'scalars': 0})
    events.Reload()
    tags = events.Tags()
    for tag in ('lr/g', 'grad_norm/net_g', 'perf/iter_time', 'perf/data_wait_share',
                'system/cpu_percent', 'system/rss_mb', 'losses/l_pix', 'metrics/tiny_val/psnr'):
        assert tag in tags['scalars'], tag
    norms = [e.value for e in events.Scalars('grad_norm/net_g')]
    assert len(norms) == 6 and all(0 < n < 1e3 for n in norms)
    assert [e.value for e in events.Scalars('lr/g')][:4] == pytest.approx([1e-3] * 4)
    images = events.Images('images/tiny_val/a')  # validations at 3 and 6 (the final one)
    # LR | SR | GT of the 32x40 GT image, each downsized to 16 pixels on its longer side
    assert [image.step for image in images] == [3, 6]
    assert all((image.height, image.width) == (13, 3 * 16 + 2 * 4) for image in images)
    hists = [t for t in tags['histograms'] if t.startswith('grads/net_g/')]
    assert hists and [e.step for e in events.Histograms(hists[0])] == [2, 4, 6]


def test_gradients_kept_for_histograms_leave_training_unchanged(tiny_opt, tmp_path):
    tiny_opt['val']['val_freq'] = 1000
    plain = copy.deepcopy(tiny_opt)
    plain['path']['experiments_root'] += '_plain'
    assert train_in_process(tmp_path, plain) == 0
    tiny_opt['logger'].update(use_tb_logger=True, tb_histogram_freq=1)
    assert train_in_process(tmp_path, tiny_opt) == 0
    assert_identical(final_weights(experiment(plain)), final_weights(experiment(tiny_opt)))


@pytest.mark.parametrize('setting, shown', [(True, True), ('auto', False), (False, False)])
def test_progress_bar(tiny_opt, tmp_path, capsys, setting, shown):
    tiny_opt['logger']['progress_bar'] = setting  # 'auto': pytest's stderr is not a terminal
    assert train_in_process(tmp_path, tiny_opt) == 0
    err = capsys.readouterr().err
    assert ('6/6 [' in err) == shown
    assert err.count('iter:       6') == 1  # log lines still printed, once


# ---- options -------------------------------------------------------------------------------------

@pytest.mark.parametrize('change, message', [
    (lambda o: o['val'].update(early_stopping={'metric': 'psrn', 'patience': 2}),
     "val.early_stopping.metric: 'psrn' is not one of val.metrics (psnr, ssim); did you mean "
     "'psnr'?"),
    (lambda o: o['val'].update(early_stopping={'metric': 'psnr'}),
     'val.early_stopping.patience: required'),
    (lambda o: o['logger'].update(keep_best_checkpoints={'metric': 'psnr', 'dataset': 'val'}),
     "logger.keep_best_checkpoints.dataset: 'val' is not the name of a validation dataset "
     "(tiny_val)"),
    (lambda o: o.update(val=None) or o['logger'].update(keep_best_checkpoints={'metric': 'psnr'}),
     'logger.keep_best_checkpoints: needs validation'),
    (lambda o: o['train'].update(limit_train_batches=1.5),
     'train.limit_train_batches: expected a number of batches >= 1 or a fraction in (0, 1]'),
    (lambda o: o['logger'].update(progress_bar='yes'), 'logger.progress_bar: '),
    (lambda o: o['logger'].update(save_checkpoint_freq_epochs=0),
     'logger.save_checkpoint_freq_epochs: '),
    (lambda o: o['val'].update(tb_image_fit='squash'), "val.tb_image_fit: 'squash' is not one of"),
    (lambda o: o['path'].update(branch_from='/nonexistent/run'),
     'path.branch_from: /nonexistent/run does not exist.'),
])
def test_cockpit_options_are_checked(tiny_opt, tmp_path, change, message):
    change(tiny_opt)
    with pytest.raises(OptionError) as err:
        run_with(tmp_path, tiny_opt)
    assert message in str(err.value)


def test_fast_dev_run_needs_a_positive_count(tiny_opt, tmp_path):
    with pytest.raises(OptionError, match='--fast_dev_run: expected a number of iterations'):
        run_with(tmp_path, tiny_opt, '--fast_dev_run', '0')


def test_hook_state_keys_must_differ():
    from basicsr_lite.engine.hooks import Hooks
    with pytest.raises(ValueError, match='same state_key'):
        Hooks([RecordingHook(), RecordingHook()])


@pytest.mark.slow  # a run under a pseudo-terminal: about 4 s
def test_progress_bar_auto_shows_on_a_terminal(tiny_opt, tmp_path):
    """'auto' in a real pseudo-terminal: the bar, with the log lines still printed."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios

    from tests.runs import train_command
    master, child_side = pty.openpty()
    # a terminal's size, as a real one has (tqdm shows nothing on a 0-row terminal)
    fcntl.ioctl(child_side, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 120, 0, 0))
    proc = subprocess.Popen(train_command(write_yaml(tmp_path / 'opt.yml', tiny_opt)),
                            stdin=child_side, stdout=child_side, stderr=child_side, cwd=tmp_path)
    os.close(child_side)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the run ended and closed its side
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    out = b''.join(chunks).decode(errors='replace')
    assert '6/6 [' in out and 'iter:       6' in out
