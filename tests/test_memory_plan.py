"""The memory planner (train.py --plan, basicsr_lite/plan): the measured step, the fit and its
predictions against real steps, the choice, the messages, the written copy."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from basicsr_lite.errors import UserError
from basicsr_lite.options import parse_options, validate_options
from basicsr_lite.plan import planner
from basicsr_lite.plan.apply import write_planned_copy
from basicsr_lite.plan.measure import Setting, measure_step
from basicsr_lite.plan.planner import Line, LinearFit, Request, make_plan
from basicsr_lite.plan.run import offered_patches, run_plan
from basicsr_lite.utils.sizes import parse_bytes

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device('cpu')
TINY_SWINIR = {'type': 'SwinIR', 'upscale': 4, 'img_size': 16, 'window_size': 4,
               'embed_dim': 24, 'depths': [2, 2], 'num_heads': [2, 2], 'mlp_ratio': 2,
               'upsampler': 'pixelshuffledirect'}


@pytest.fixture
def demo_opt(monkeypatch) -> dict:
    """options/train/demo.yml (MSRResNet x4 on datasets/demo), parsed from the repository."""
    monkeypatch.chdir(ROOT)
    return parse_options(['-opt', 'options/train/demo.yml'], is_train=True)[0]


def with_network(opt: dict, network: dict) -> dict:
    return {**copy.deepcopy(opt), 'network_g': network}


def test_sizes_are_read_as_binary_units_and_bad_ones_are_named():
    assert parse_bytes('24GB') == parse_bytes('24 GiB') == 24 * 2**30
    assert parse_bytes('512MB') == 512 * 2**20 and parse_bytes(1000) == 1000
    with pytest.raises(UserError, match=r"--memory: expected a size such as 24GB.*'24 gigs'"):
        parse_bytes('24 gigs')


def test_bad_plan_section_is_an_option_error(demo_opt):
    raw = yaml.safe_load((ROOT / 'options/train/demo.yml').read_text())
    raw['train']['plan'] = {'memory': 'lots', 'margin': 1.5}
    with pytest.raises(UserError) as err:
        validate_options(raw, is_train=True, source='demo.yml')
    assert 'train.plan.memory' in str(err.value) and 'train.plan.margin' in str(err.value)


def test_patches_respect_the_network_multiple_and_the_smallest_image(demo_opt):
    patches, largest = offered_patches(demo_opt)
    assert largest == 300  # the smallest image in datasets/demo/train_HR
    assert patches[0] == 32 and patches[-1] == 256 and 96 in patches
    assert all(p % 4 == 0 and p <= 300 for p in patches)
    # a network that needs multiples of 8 LQ pixels at x4: GT multiples of 32
    assert planner.candidate_patches(100, 32, 32, 300) == [32, 64, 96, 128, 160, 192, 256]


def with_network_params(opt: dict):
    from basicsr_lite.archs import build_network
    return build_network(opt['network_g']).parameters()


def fit_of(fixed: float, per_pixel: float, updates: float = 0.0) -> LinearFit:
    """A fit whose passes line is given and whose updates peak is a constant."""
    return LinearFit(Line(fixed, per_pixel), Line(updates, 0.0))


def test_the_peak_is_the_larger_of_the_passes_and_the_updates():
    fit = fit_of(100.0, 1.0, updates=1000.0)
    assert fit.predict(Setting(10, 2)) == 1000  # small batch: the optimizer step's transients
    assert fit.predict(Setting(40, 1)) == 1700  # larger: the activations
    assert fit.largest_batch(10, usable=999, cap=64) == 0
    assert fit.largest_batch(10, usable=1300, cap=64) == 12
    assert Line.through((100, 50), (300, 40)).per_pixel == 0  # never decreasing


def fixed_fits(monkeypatch, fits: dict[bool, LinearFit]) -> list[bool]:
    """make_plan with given fits instead of measured ones; returns which were asked for."""
    asked = []

    def fake_fit_for(opt, device, plan, use_checkpoint):
        asked.append(use_checkpoint)
        plan.fits[use_checkpoint] = fits[use_checkpoint]
        return fits[use_checkpoint]

    monkeypatch.setattr(planner, 'fit_for', fake_fit_for)
    return asked


def test_choice_keeps_the_patch_and_accumulates_to_the_effective_batch(demo_opt, monkeypatch):
    fit = fit_of(100 * 2**20, 1000.0)  # 9.2 MB per 96x96 image
    asked = fixed_fits(monkeypatch, {False: fit})
    request = Request(budget=2**30, margin=0.1, effective_batch=256, world_size=2)
    plan = make_plan(demo_opt, CPU, request, [32, 64, 96, 128], can_checkpoint=True)
    # (0.9 GiB - 100 MiB) / (1000 * 96^2) = 93 -> capped at 64 per process
    assert plan.chosen == Setting(96, 64) and plan.accumulate == 2 and asked == [False]
    request = Request(budget=2**30, margin=0.1, effective_batch=None, world_size=2)
    plan = make_plan(demo_opt, CPU, request, [32, 64, 96, 128], can_checkpoint=True)
    assert plan.chosen == Setting(96, 8) and plan.accumulate == 1  # the file's batch 8 x 2 = 16
    request = Request(budget=150 * 2**20, margin=0.0, effective_batch=64)
    plan = make_plan(demo_opt, CPU, request, [32, 64, 96, 128], can_checkpoint=True)
    assert plan.chosen == Setting(96, 5) and plan.accumulate == 13  # ceil(64 / 5)


def test_smaller_patch_then_checkpointing_only_when_nothing_fits(demo_opt, monkeypatch):
    plain = fit_of(100 * 2**20, 10_000.0)
    checkpointed = fit_of(100 * 2**20, 1_000.0)
    asked = fixed_fits(monkeypatch, {False: plain, True: checkpointed})
    # 96 x 96 needs 88 MiB at batch 1: 150 MiB fits only 64 x 64 without checkpointing
    plan = make_plan(demo_opt, CPU, Request(budget=150 * 2**20, margin=0.0), [32, 64, 96],
                     can_checkpoint=True)
    assert plan.chosen == Setting(64, 1) and asked == [False]
    assert 'gt_size 96 does not fit even at batch 1' in ' '.join(plan.notes)
    asked.clear()
    plan = make_plan(demo_opt, CPU, Request(budget=105 * 2**20, margin=0.0), [32, 64, 96],
                     can_checkpoint=True)
    assert asked == [False, True] and plan.chosen.use_checkpoint
    assert plan.chosen == Setting(64, 1, True)


def test_a_budget_that_fits_nothing_is_one_clear_message(demo_opt, monkeypatch):
    fixed_fits(monkeypatch, {False: fit_of(500 * 2**20, 10.0)})
    with pytest.raises(UserError) as err:
        make_plan(demo_opt, CPU, Request(budget=2**29, margin=0.1), [32, 64], False)
    message = str(err.value)
    assert 'nothing fits 512 MiB with a 10% margin (461 MiB usable)' in message
    assert 'gt_size 32 at batch 1, needs 500 MiB' in message


def test_apply_writes_a_valid_copy_and_leaves_the_original(demo_opt, tmp_path, monkeypatch):
    source = tmp_path / 'demo.yml'
    original = (ROOT / 'options/train/demo.yml').read_text()
    source.write_text(original)
    fixed_fits(monkeypatch, {False: fit_of(1e6, 1e4), True: fit_of(1e6, 1e3)})
    plan = make_plan(demo_opt, CPU, Request(budget=10**8, effective_batch=32), [32, 64, 96],
                     can_checkpoint=True)
    plan.chosen = Setting(64, 4, use_checkpoint=False)
    out = write_planned_copy(source, plan)
    assert out == tmp_path / 'demo_planned.yml' and source.read_text() == original
    written = yaml.safe_load(out.read_text())
    opt = validate_options(written, is_train=True, source=str(out))
    assert opt['datasets']['train']['gt_size'] == 64
    assert opt['datasets']['train']['batch_size_per_gpu'] == 4
    assert opt['train']['accumulate_grad_batches'] == plan.accumulate
    assert 'use_checkpoint' not in opt['network_g']


@pytest.mark.slow
def test_checkpointing_is_measured_and_written_when_only_it_fits(demo_opt, tmp_path, monkeypatch):
    """A tiny SwinIR: a budget between the checkpointed and the plain step at the smallest
    patch makes the planner measure with use_checkpoint and write it into the copy."""
    opt = with_network(demo_opt, TINY_SWINIR)
    plain = measure_step(opt, CPU, Setting(32, 1))
    checkpointed = measure_step(opt, CPU, Setting(32, 1, use_checkpoint=True))
    assert checkpointed.saved_activations < 0.5 * plain.saved_activations
    assert checkpointed.peak < plain.peak
    budget = (plain.peak + checkpointed.peak) // 2
    plan = make_plan(opt, CPU, Request(budget=budget, margin=0.0), [32, 64, 96], True)
    assert plan.chosen.use_checkpoint and plan.chosen.gt_size == 32
    source = tmp_path / 'swinir.yml'
    raw = yaml.safe_load((ROOT / 'options/train/demo.yml').read_text())
    source.write_text(yaml.safe_dump({**raw, 'network_g': TINY_SWINIR}))
    written = yaml.safe_load(write_planned_copy(source, plan).read_text())
    assert written['network_g']['use_checkpoint'] is True


@pytest.mark.slow
@pytest.mark.parametrize('network', ['demo', 'swinir', 'esrgan'])
def test_prediction_against_measured_peaks(network, demo_opt, random_vgg, tmp_path):
    """Several networks and models (an SR model, a transformer, a GAN with G, D, VGG and two
    optimizers), fitted as the planner fits, checked at twice the batch and at the next larger
    patch: every prediction within 10% of the measured peak."""
    opt = demo_opt if network == 'demo' else with_network(demo_opt, TINY_SWINIR)
    if network == 'esrgan':
        random_vgg('conv2_2')
        esrgan = yaml.safe_load((ROOT / 'options/train/ESRGAN/train_ESRGAN_x4.yml').read_text())
        raw = yaml.safe_load((ROOT / 'options/train/demo.yml').read_text())
        raw.update(model_type='ESRGANModel', network_d={**esrgan['network_d'], 'num_feat': 16},
                   train={**esrgan['train'], 'total_iter': 10, 'scheduler': None})
        raw['train']['perceptual_opt']['layer_weights'] = {'conv2_2': 1.0}  # a short VGG
        raw['network_g'] = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16,
                            'num_block': 2, 'num_grow_ch': 8}
        raw['network_d']['num_in_ch'] = 3
        raw['path'] = {'experiments_root': str(tmp_path / 'experiments')}
        path = tmp_path / 'esrgan.yml'
        path.write_text(yaml.safe_dump(raw))
        opt = parse_options(['-opt', str(path)], is_train=True)[0]
    patches = offered_patches(opt)[0]
    if network == 'esrgan':  # the VGG-style D takes 128 x 128 only: the patch is fixed
        assert patches == [128]
    plan = planner.Plan(Request(budget=0), patches)
    fit = planner.fit_for(opt, CPU, plan, False)  # as the planner fits: adaptive first batch
    fitted = plan.measured[-1].setting
    larger = [p for p in patches if p > fitted.gt_size][:1]
    checks = [Setting(fitted.gt_size, 2 * fitted.batch)] + \
        [Setting(p, fitted.batch) for p in larger]
    for setting in checks:
        step = measure_step(opt, CPU, setting)
        assert abs(fit.predict(setting) / step.peak - 1) < 0.10, (setting, fit, step.peak)
    if network == 'demo':  # the parts: G and its EMA copy, Adam's two moments per weight
        n_weights = sum(p.numel() for p in with_network_params(opt)) * 4
        assert step.weights == 2 * n_weights and step.optimizer_states >= 2 * n_weights
        assert step.gradients == n_weights and 0 < step.saved_activations < step.peak


@pytest.mark.slow
def test_cli_plan_verify(tmp_path):
    """train.py --plan verify on the demo: a table, a recommendation, the real-step check on the
    process's peak within 10%, and no experiment folder (apply: tested in-process above)."""
    source = tmp_path / 'demo.yml'
    source.write_text((ROOT / 'options/train/demo.yml').read_text()
                      .replace('datasets/demo', str(ROOT / 'datasets/demo')))
    run = subprocess.run([sys.executable, str(ROOT / 'train.py'), '-opt', str(source), '--plan',
                          'verify', '--memory', '1GB', '--effective-batch', '32'],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    assert '| gt_size | batch 1 | largest batch that fits | its peak |' in out
    assert 'Recommendation: datasets.train.gt_size: 96, batch_size_per_gpu: 32' in out
    ratio = float(out.split('predicted / measured = ')[1].split('.\n')[0].rstrip('.'))
    assert 0.9 <= ratio <= 1.1, out
    assert not (tmp_path / 'experiments').exists()


@pytest.mark.slow
def test_run_plan_prints_the_table_and_the_recommendation(demo_opt, capsys):
    plan = run_plan(demo_opt, 'show', memory='256MB', effective_batch=16)
    out = capsys.readouterr().out
    assert plan.chosen.gt_size == 96 and plan.chosen.batch == 16 and plan.accumulate == 1
    assert 'Memory plan for demo_MSRResNet_x4 (MSRResNet, SRModel, amp off) on cpu' in out
    assert 'Recommendation: datasets.train.gt_size: 96, batch_size_per_gpu: 16' in out
    assert '(patches up to the smallest training image, 300 pixels)' in out


def test_transformers_are_offered_multiples_of_their_window(demo_opt):
    """HAT pads to its 16-pixel window: at x4, GT patches are multiples of 64 (padded sizes
    would cost memory the pixel count does not show: the fit was 1.7x off on CUDA before)."""
    hat = with_network(demo_opt, {'type': 'HAT', 'upscale': 4, 'window_size': 16,
                                  'embed_dim': 12, 'depths': [1], 'num_heads': [2]})
    patches, _ = offered_patches(hat)
    assert patches == [64, 128, 192, 256]


def test_the_fit_waits_until_activations_outweigh_the_gradients(monkeypatch):
    """Below that, the end of backward (every gradient allocated) is the peak and memory does
    not grow in proportion to the pixels: the first measured batch grows (x4) until the saved
    activations reach twice the gradients."""
    from basicsr_lite.plan.measure import StepMemory
    measured = []

    def fake_measure(opt, device, setting):
        measured.append(setting)
        saved = setting.pixels // 10
        return StepMemory(setting, passes_peak=5000 + 2 * saved, updates_peak=3000, weights=1000,
                          gradients=1000, optimizer_states=2000, saved_activations=saved)

    monkeypatch.setattr(planner, 'measure_step', fake_measure)
    plan = planner.Plan(Request(budget=0), [32, 64, 96])
    fit = planner.fit_for({}, CPU, plan, False)
    # saved = 102.4 x batch at 32 x 32: batch 2 and 8 fall short of 2000, 32 does not
    assert measured == [Setting(32, 2), Setting(32, 8), Setting(32, 32), Setting(64, 64)]
    assert [m.setting for m in plan.measured] == measured[2:]
    assert fit.passes.per_pixel == pytest.approx(0.2, rel=1e-4)
