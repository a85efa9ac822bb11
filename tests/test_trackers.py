"""Optional trackers beside TensorBoard: Weights & Biases (offline) and Aim, each tested with the
real package when it is installed; a configured tracker that is not installed is a clear error."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.runs import train_in_process


def experiment(opt: dict) -> Path:
    return Path(opt['path']['experiments_root'])


def test_wandb_offline_run_and_its_resume(tiny_opt, tmp_path, monkeypatch):
    """The real wandb in offline mode; what reaches ``Run.log`` is recorded on the way (the
    offline run file is read only by wandb's own sync)."""
    wandb = pytest.importorskip('wandb', reason='wandb is not installed (optional tracker)')
    monkeypatch.setenv('WANDB_SILENT', 'true')
    logged: list[tuple[int, dict]] = []
    real_log = wandb.sdk.wandb_run.Run.log

    def spy(self, data, step=None, **kwargs):
        logged.append((step, dict(data)))
        return real_log(self, data, step=step, **kwargs)

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, 'log', spy)
    tiny_opt['logger'].update(use_tb_logger=False, wandb={'project': 'tiny', 'mode': 'offline'})
    tiny_opt['val'].update(tb_images=1, val_freq=2)
    tiny_opt['train']['total_iter'] = 3
    assert train_in_process(tmp_path, tiny_opt) == 0
    root = experiment(tiny_opt)
    run_id = (root / 'wandb_id').read_text()
    assert len(list((root / 'wandb').glob(f'offline-run-*-{run_id}/run-{run_id}.wandb'))) == 1
    keys = {key for _, data in logged for key in data}
    for key in ('losses/l_pix', 'lr/g', 'grad_norm/net_g', 'system/rss_mb',
                'metrics/tiny_val/psnr', 'images/tiny_val/a'):
        assert key in keys, key
    images = [(step, data['images/tiny_val/a']) for step, data in logged
              if 'images/tiny_val/a' in data]
    assert [step for step, _ in images] == [2, 3]  # validation at 2, and the final one at 3
    assert all(isinstance(image, wandb.Image) for _, image in images)
    assert [step for step, data in logged if 'losses/l_pix' in data] == [1, 2, 3]
    # Resuming continues the same wandb run, at the next steps.
    logged.clear()
    tiny_opt['train']['total_iter'] = 6
    assert train_in_process(tmp_path, tiny_opt, '--auto_resume') == 0
    assert (root / 'wandb_id').read_text() == run_id
    assert [step for step, data in logged if 'losses/l_pix' in data] == [4, 5, 6]


def test_aim_run(tiny_opt, tmp_path, monkeypatch):
    """The real Aim; what the run holds is read from it just before it is closed."""
    pytest.importorskip('aim', reason='aim is not installed (optional tracker)')
    from basicsr_lite.engine import trackers
    seen: dict = {}
    real_close = trackers.AimTracker.close

    def close(self):
        seen['experiment'] = self.run.experiment
        seen['hparams'] = self.run['hparams']['name']
        seen['metrics'] = {m.name: sorted(m.values.values_numpy()) for m in self.run.metrics()}
        real_close(self)

    monkeypatch.setattr(trackers.AimTracker, 'close', close)
    tiny_opt['logger'].update(use_tb_logger=False, aim={'repo': str(tmp_path / 'aim')})
    assert train_in_process(tmp_path, tiny_opt) == 0
    assert seen['experiment'] == 'tiny' and seen['hparams'] == 'tiny'
    assert len(seen['metrics']['losses/l_pix']) == 6  # one per iteration
    assert len(seen['metrics']['metrics/tiny_val/psnr']) == 2  # iteration 3, final report
    assert (tmp_path / 'aim' / '.aim').is_dir()


@pytest.mark.parametrize('section, key', [('wandb', 'logger.wandb.project'),
                                          ('aim', 'logger.aim.repo')])
def test_a_tracker_that_is_not_installed_is_a_clear_error(tiny_opt, tmp_path, monkeypatch,
                                                          capsys, section, key):
    monkeypatch.setitem(sys.modules, section, None)  # import fails as if not installed
    tiny_opt['logger'][section] = {'project': 'p'} if section == 'wandb' else {'repo': None}
    assert train_in_process(tmp_path, tiny_opt) == 2
    err = capsys.readouterr().err
    assert f'Error: {key} is set but {section} is not installed' in err
    assert f'pip install {section}, or set {key} to null.' in err
    assert not experiment(tiny_opt).exists()


def test_basicsr_wandb_block_means_off(tiny_opt, tmp_path):
    tiny_opt['logger']['wandb'] = {'project': None, 'resume_id': None}
    assert train_in_process(tmp_path, tiny_opt) == 0
    assert not (experiment(tiny_opt) / 'wandb').exists()
