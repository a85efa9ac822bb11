"""train.speed_policy: amp / channels_last that would make this machine slower are dropped (or
stop the run), decided from the CPU's flags and a short timed probe (runtime/speed_probe.py)."""
from __future__ import annotations

import copy
import logging
import random
import re

import numpy as np
import pytest
import torch

from basicsr_lite.errors import OptionError
from basicsr_lite.runtime import speed_probe
from basicsr_lite.runtime.cpu_features import CpuInfo, parse_cpuinfo
from basicsr_lite.runtime.speed_probe import Config
from tests.runs import assert_identical, configure, final_weights, train_in_process


@pytest.fixture(autouse=True)
def caplog_sees_the_package_log(caplog):
    """The package logger does not propagate once a run has set it up (get_root_logger)."""
    package_logger = logging.getLogger('basicsr_lite')
    package_logger.addHandler(caplog.handler)
    yield
    package_logger.removeHandler(caplog.handler)

CPU = torch.device('cpu')
EPYC_ZEN2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse2 avx avx2 fma bmi2 sha_ni
"""
SAPPHIRE = """model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: avx2 avx512f avx512_bf16 avx512fp16 amx_tile amx_bf16
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd asimdhp sve bf16 i8mm
"""
NO_BF16 = CpuInfo('stub CPU', 'AVX2', frozenset({'avx2'}), True)
WITH_BF16 = CpuInfo('stub CPU', 'AVX512', frozenset({'avx512_bf16'}), True)


def test_cpuinfo_flags_say_which_low_precision_is_native():
    model, flags, known = parse_cpuinfo(EPYC_ZEN2)
    zen2 = CpuInfo(model, 'AVX2', flags, known)
    assert (model, flags, known) == ('AMD EPYC 7B12', frozenset({'avx2', 'fma'}), True)
    assert zen2.native('bf16') is False and zen2.native('fp16') is False
    spr = CpuInfo('x', 'AVX512', *parse_cpuinfo(SAPPHIRE)[1:])
    assert spr.native('bf16') and spr.native('fp16')
    assert spr.describe() == ('x; torch CPU capability AVX512; flags: avx2 avx512f avx512_bf16 '
                              'avx512fp16 amx_tile amx_bf16')
    arm = CpuInfo('arm', 'DEFAULT', *parse_cpuinfo(GRAVITON3)[1:])
    assert arm.native('bf16') and arm.native('fp16') and 'sve' in arm.flags
    unknown = CpuInfo('mac', 'DEFAULT', *parse_cpuinfo('')[1:])
    assert unknown.native('bf16') is None  # no flag list: the timed probe decides
    capped = CpuInfo('x', 'AVX512', *parse_cpuinfo(SAPPHIRE)[1:], onednn_cap='AVX2')
    assert capped.native('bf16') is False and capped.describe().endswith(
        'amx_bf16; ONEDNN_MAX_CPU_ISA=AVX2')  # oneDNN held to AVX2 emulates an older CPU


def test_cpu_info_reads_the_onednn_cap(monkeypatch, tmp_path):
    (tmp_path / 'cpuinfo').write_text(SAPPHIRE)
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', 'avx2')
    info = speed_probe.cpu_info(tmp_path / 'cpuinfo')
    assert (info.model, info.onednn_cap, info.native('bf16')) == (
        'Intel(R) Xeon(R) Platinum 8480+', 'AVX2', False)
    monkeypatch.delenv('ONEDNN_MAX_CPU_ISA')
    assert speed_probe.cpu_info(tmp_path / 'cpuinfo').native('bf16') is True


class FakeClock:
    """A clock that only the stub steps move: each step of a config costs what ``costs`` says
    (one value per call, the last one repeating)."""

    def __init__(self, costs: dict[Config, list[float]]) -> None:
        self.now, self.costs, self.calls = 0.0, costs, {c: 0 for c in costs}

    def __call__(self) -> float:
        return self.now

    def make_step(self, config: Config):
        def step() -> None:
            costs = self.costs[config]
            self.now += costs[min(self.calls[config], len(costs) - 1)]
            self.calls[config] += 1
        return step


def test_measure_takes_the_minimum_of_interleaved_repeats_within_the_budget():
    fp32, nhwc, bf16 = Config(), Config(None, True), Config('bf16')
    clock = FakeClock({fp32: [0.5, 0.375, 0.25, 0.125], nhwc: [0.75, 0.5, 0.625, 0.0625],
                       bf16: [2.0, 0.0625]})  # (binary fractions: exact sums)
    timings = speed_probe.measure([fp32, nhwc, bf16], clock.make_step, budget_s=2.6, clock=clock)
    # warm-ups 0.5 + 0.75 (bf16's 2.0 > 3 x 0.5: not timed again) -> int(2.6 / 1.25) = 2 rounds
    assert timings == {fp32: 0.25, nhwc: 0.5, bf16: 2.0}
    assert clock.calls == {fp32: 3, nhwc: 3, bf16: 1}
    clock = FakeClock({fp32: [1.0], nhwc: [1.0]})
    speed_probe.measure([fp32, nhwc], clock.make_step, budget_s=100, clock=clock)
    assert clock.calls == {fp32: 4, nhwc: 4}  # at most MAX_REPEATS rounds after the warm-up


def test_choose_keeps_what_was_asked_unless_another_is_clearly_faster():
    fp32, nhwc = Config(), Config(None, True)
    assert speed_probe.choose(nhwc, {fp32: 1.0, nhwc: 1.04}) == nhwc  # within the 5% margin
    assert speed_probe.choose(nhwc, {fp32: 1.0, nhwc: 1.06}) == fp32
    assert speed_probe.choose(fp32, {fp32: 1.0, nhwc: 0.96}) == fp32  # auto: not worth it
    assert speed_probe.choose(fp32, {fp32: 1.0, nhwc: 0.94}) == nhwc


def probe_opt(tiny_opt: dict, **train) -> dict:
    opt = copy.deepcopy(tiny_opt)
    opt['train'].update({'speed_policy': 'warn', **train})
    return opt


def stubbed(monkeypatch, costs: dict[Config, list[float]]) -> FakeClock:
    clock = FakeClock(costs)
    monkeypatch.setattr(speed_probe, 'CLOCK', clock)
    return clock


def test_bf16_on_a_cpu_without_native_bf16_is_dropped_without_timing(tiny_opt, monkeypatch,
                                                                   caplog):
    clock = stubbed(monkeypatch, {Config(): [1.0], Config(None, True): [0.5]})
    opt = probe_opt(tiny_opt, amp='bf16', channels_last=True)
    decision = speed_probe.resolve_speed_options(opt, CPU, make_step=clock.make_step,
                                                 cpu=NO_BF16)
    assert decision.config == Config(None, True) and decision.dropped == ('amp: bf16',)
    assert set(clock.calls) == {Config(), Config(None, True)}  # bf16 never ran
    assert (opt['train']['amp'], opt['train']['channels_last']) == (None, True)
    assert caplog.messages[-1] == (
        'speed probe (MSRResNet, batch 2, LQ 8x8, cpu; s/step, min of repeats): fp32 1.000, '
        'fp32 + channels_last 0.500; bf16 autocast is not native on this cpu (stub CPU; torch '
        'CPU capability AVX2; flags: avx2); emulated it is typically 10-30x slower than fp32: '
        "training with fp32 + channels_last instead of bf16 + channels_last "
        "(train.speed_policy: warn; 'force' keeps it).")
    strict = probe_opt(tiny_opt, amp='bf16', speed_policy='strict')
    with pytest.raises(OptionError, match=r'^train.amp: bf16: slower on this machine '
                                          r'\(train.speed_policy: strict\): speed options '
                                          r'decided without timing \(one candidate\); bf16'):
        speed_probe.resolve_speed_options(strict, CPU, make_step=clock.make_step, cpu=NO_BF16)
    forced = probe_opt(tiny_opt, amp='bf16', speed_policy='force')
    assert speed_probe.resolve_speed_options(forced, CPU, cpu=NO_BF16) is None
    assert forced['train']['amp'] == 'bf16'


@pytest.mark.parametrize('bf16_cost,kept', [(0.5, True), (2.0, False)])
def test_timed_bf16_is_kept_only_when_faster(tiny_opt, monkeypatch, bf16_cost, kept):
    clock = stubbed(monkeypatch, {Config(): [1.0], Config('bf16'): [bf16_cost]})
    opt = probe_opt(tiny_opt, amp='bf16')
    decision = speed_probe.resolve_speed_options(opt, CPU, make_step=clock.make_step,
                                                 cpu=WITH_BF16)
    assert opt['train']['amp'] == ('bf16' if kept else None)
    assert f'fp32 1.000, bf16 {bf16_cost:.3f}' in decision.message
    assert decision.dropped == (() if kept else ('amp: bf16',))
    opt = probe_opt(tiny_opt, amp='bf16', speed_policy='strict')
    if kept:
        speed_probe.resolve_speed_options(opt, CPU, make_step=clock.make_step, cpu=WITH_BF16)
    else:
        with pytest.raises(OptionError, match='train.amp: bf16: slower on this machine'):
            speed_probe.resolve_speed_options(opt, CPU, make_step=clock.make_step,
                                              cpu=WITH_BF16)


def test_auto_picks_what_is_measured_faster(tiny_opt, monkeypatch):
    costs = {Config(): [1.0], Config(None, True): [0.9], Config('bf16'): [0.7],
             Config('bf16', True): [0.8]}
    clock = stubbed(monkeypatch, costs)
    opt = probe_opt(tiny_opt, amp='auto', channels_last='auto')
    decision = speed_probe.resolve_speed_options(opt, CPU, make_step=clock.make_step,
                                                 cpu=WITH_BF16)
    assert decision.config == Config('bf16', False) and decision.dropped == ()
    # without native bf16, auto does not even time it; channels_last still is
    opt = probe_opt(tiny_opt, amp='auto', channels_last='auto')
    decision = speed_probe.resolve_speed_options(opt, CPU, make_step=clock.make_step,
                                                 cpu=NO_BF16)
    assert decision.config == Config(None, True)
    # speed_policy off: auto follows the capability rule (NHWC only on CUDA)
    opt = probe_opt(tiny_opt, amp='auto', channels_last='auto', speed_policy='off')
    decision = speed_probe.resolve_speed_options(opt, CPU, cpu=WITH_BF16)
    assert decision.config == Config('bf16', False)
    assert 'decided without timing (speed_policy: off)' in decision.message


@pytest.mark.slow  # 2-10 s on a shared 2-core host
def test_a_real_probe_of_a_tiny_network_leaves_every_rng_alone(tiny_opt):
    opt = probe_opt(tiny_opt, channels_last=True)
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    before = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    decision = speed_probe.resolve_speed_options(opt, CPU)
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])
    assert re.fullmatch(r'speed probe \(MSRResNet, batch 2, LQ 8x8, cpu; s/step, min of repeats\)'
                        r': fp32 \d+\.\d{3}, fp32 \+ channels_last \d+\.\d{3}: training with '
                        r'fp32( \+ channels_last)?\.', decision.message)
    assert opt['train']['channels_last'] == decision.config.channels_last
    assert opt['train']['speed_choice']['asked'] == {'amp': None, 'channels_last': True,
                                                     'speed_policy': 'warn'}


def test_strict_stops_before_the_experiment_folder_exists(tiny_opt, tmp_path, monkeypatch,
                                                          capsys):
    monkeypatch.setattr(speed_probe, 'cpu_info', lambda: NO_BF16)
    opt = configure(probe_opt(tiny_opt, amp='bf16', speed_policy='strict'), tmp_path / 'x', 2, 2)
    assert train_in_process(tmp_path, opt) == 2
    assert 'Error: train.amp: bf16: slower on this machine' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()


@pytest.mark.slow  # five tiny runs
def test_resume_keeps_the_probes_choice_and_the_probe_perturbs_nothing(tiny_opt, tmp_path,
                                                                       monkeypatch):
    """channels_last: auto, measured faster: a run with the probe equals a run forced to
    channels_last bitwise (the probe changed no RNG state); a resumed run keeps the choice even
    when its own probe would now decide otherwise."""
    monkeypatch.setattr(speed_probe, 'cpu_info', lambda: NO_BF16)
    clock = stubbed(monkeypatch, {Config(): [1.0], Config(None, True): [0.5]})
    monkeypatch.setattr(speed_probe, 'step_factory', lambda *args: clock.make_step)
    probed = configure(probe_opt(tiny_opt, channels_last='auto'), tmp_path / 'probed', 6, 3)
    assert train_in_process(tmp_path, probed) == 0
    forced = configure(probe_opt(tiny_opt, channels_last=True, speed_policy='force'),
                       tmp_path / 'forced', 6, 3)
    assert train_in_process(tmp_path, forced) == 0
    assert_identical(final_weights(tmp_path / 'probed'), final_weights(tmp_path / 'forced'))
    run = configure(probe_opt(tiny_opt, channels_last='auto'), tmp_path / 'run', 3, 3)
    run['train']['scheduler']['periods'] = [6]
    assert train_in_process(tmp_path, run) == 0
    clock.costs[Config(None, True)] = [2.0]  # now NHWC would be measured slower
    run['train']['total_iter'] = 6
    assert train_in_process(tmp_path, run, '--auto_resume') == 0
    assert_identical(final_weights(tmp_path / 'probed'), final_weights(tmp_path / 'run'))
