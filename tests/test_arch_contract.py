"""Registry-wide contract tests (timm-style): every registered architecture, old and new, with the
tiny constructor arguments of its case file ``tests/fixtures/arch_cases/<Name>.yml``:

- it has a case file, a row in the capability table and a shipped option file;
- forward and backward at every scale the capability table says it builds (up to 4);
- channels_last output equals NCHW (float tolerance);
- tiled inference equals untiled where the table says it tiles exactly;
- a state-dict round trip through ``torch.save`` / ``torch.load(weights_only=True)`` gives the
  same outputs;
- ONNX export and onnxruntime agree (slow; a case may say ``onnx: <why not>``);
- where the table says ``checkpointing``: ``use_checkpoint`` gives the plain network's gradients
  (drop path on: the random masks are replayed) and keeps fewer bytes for backward.

Parameter counts against papers and released files are in the per-architecture test files
(tests/test_arch_*.py, tests/test_archs.py).
"""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import pytest
import torch
import yaml

from basicsr_lite.archs import build_network
from basicsr_lite.archs.capabilities import ANY_SCALE, CAPABILITIES, capability
from basicsr_lite.archs.constraints import network_needs
from basicsr_lite.registry import ARCH_REGISTRY
from basicsr_lite.runtime.activation_memory import saved_activation_bytes
from basicsr_lite.runtime.speed import network_to_channels_last
from basicsr_lite.runtime.tiling import tiled_inference

ROOT = Path(__file__).resolve().parent.parent
CASES = {p.stem: yaml.safe_load(p.read_text())
         for p in sorted((ROOT / 'tests/fixtures/arch_cases').glob('*.yml'))}
NAMES = ARCH_REGISTRY.keys()
MAX_SCALE = 4


@lru_cache(maxsize=1)
def shipped_network_types() -> frozenset[str]:
    types = set()
    for path in (ROOT / 'options').rglob('*.yml'):
        raw = yaml.safe_load(path.read_text()) or {}
        types |= {raw[key]['type'] for key in ('network_g', 'network_d')
                  if isinstance(raw.get(key), dict) and 'type' in raw[key]}
    return frozenset(types)


def test_every_arch_has_a_case_a_capability_row_and_an_option_file():
    assert sorted(CASES) == NAMES, 'add tests/fixtures/arch_cases/<Name>.yml for new archs'
    assert sorted(CAPABILITIES) == NAMES, 'add a row to basicsr_lite/archs/capabilities.py'
    missing = sorted(set(NAMES) - shipped_network_types())
    assert not missing, f'no shipped option file under options/ uses {missing}'


def case_options(name: str, scale: int | None = None) -> dict:
    options = {'type': name, **CASES[name]['args']}
    if scale is not None:
        options[network_needs(options).scale_key] = scale
    return options


def is_discriminator(name: str) -> bool:
    return capability(case_options(name)).scales == ()


def scales_of(name: str) -> list[int | None]:
    """The scales to build (None: the case as written: not an upscaler, or no scale argument)."""
    options = case_options(name)
    cap = capability(options)
    key = network_needs(options).scale_key
    if cap.scales == () or key not in options or 'condition' in CASES[name]:
        return [None]
    wanted = range(1, MAX_SCALE + 1) if cap.scales is ANY_SCALE else cap.scales
    return [s for s in wanted if s <= MAX_SCALE]


def own_scale(name: str) -> int | None:
    options = case_options(name)
    return options.get(network_needs(options).scale_key)


# The case's own scale in the default run, the other scales in the slow one.
SCALED = [pytest.param(name, scale, id=f'{name}-x{scale}',
                       marks=() if scale in (None, own_scale(name)) else pytest.mark.slow)
          for name in NAMES for scale in scales_of(name)]


def make_inputs(name: str, batch: int | None = None, side: int | None = None) -> list:
    case = CASES[name]
    n, c, h, w = case.get('input', [2, 3, 16, 16])
    n, h, w = batch or n, side or h, side or w
    inputs = [torch.rand(n, c, h, w)]
    condition = case.get('condition')
    if isinstance(condition, list):
        inputs.append(torch.rand(n, *condition[1:]))
    elif condition is not None:
        inputs.append(condition)
    return inputs


def output_scale(name: str, options: dict) -> float:
    condition = CASES[name].get('condition')
    if condition is not None and not isinstance(condition, list):
        return condition  # the scale is the second input (arbitrary-scale networks)
    return network_needs(options).scale or 1


@pytest.mark.parametrize('name,scale', SCALED)
def test_forward_and_backward_at_each_scale(name, scale):
    torch.manual_seed(0)
    options = case_options(name, scale)
    net = build_network(options)
    inputs = make_inputs(name)
    inputs[0].requires_grad_(True)
    out = net(*inputs)
    outs = out if isinstance(out, list) else [out]  # a multiscale D: one logit map per scale
    assert all(torch.isfinite(o).all() for o in outs)
    if not is_discriminator(name):
        n, _, h, w = inputs[0].shape
        factor = output_scale(name, options)
        out_ch = network_needs(options).out_ch or inputs[0].shape[1]
        assert tuple(out.shape) == (n, out_ch, round(h * factor), round(w * factor))
    sum(o.float().mean() for o in outs).backward()
    assert torch.isfinite(inputs[0].grad).all() and inputs[0].grad.abs().sum() > 0
    for key, p in net.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), key


def built(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_network(case_options(name)).eval()


@pytest.mark.parametrize('name', NAMES)
def test_channels_last_equals_nchw(name):
    net = built(name)
    inputs = make_inputs(name)
    with torch.no_grad():
        expected = net(*inputs)
        net = network_to_channels_last(net)
        got = net(inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])
    for g, e in zip(*(o if isinstance(o, list) else [o] for o in (got, expected))):
        # Relative to the output's range: an untrained spectral-norm D outputs values near 1e4.
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5 * max(1.0, e.abs().max().item()))


@pytest.mark.parametrize('name', NAMES)
def test_state_dict_round_trip(name):
    net, other = built(name, seed=0), built(name, seed=1)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    inputs = make_inputs(name)
    with torch.no_grad():
        got, expected = other(*inputs), net(*inputs)
    for g, e in zip(*(o if isinstance(o, list) else [o] for o in (got, expected))):
        assert torch.equal(g, e)


CHECKPOINTING = [n for n in NAMES if capability(case_options(n)).checkpointing]


def test_checkpointing_rows_are_the_networks_that_take_use_checkpoint():
    import inspect
    takes = [n for n in NAMES
             if 'use_checkpoint' in inspect.signature(ARCH_REGISTRY.get(n)).parameters]
    assert CHECKPOINTING == takes and 'SwinIR' in takes


def drop_path_options(name: str) -> dict:
    """The case with stochastic depth on, where the network has it (random masks that the
    checkpointed recomputation must replay)."""
    import inspect
    params = inspect.signature(ARCH_REGISTRY.get(name)).parameters
    return {'drop_path_rate': 0.5} if 'drop_path_rate' in params else {}


# SwinIR in the default run (the first checkpoint of a process imports torch._dynamo: ~2 s),
# every other network in the slow one.
@pytest.mark.parametrize('name', [pytest.param(n, marks=() if n == 'SwinIR' else pytest.mark.slow)
                                  for n in CHECKPOINTING])
def test_checkpointing_gives_the_same_gradients_with_less_saved(name):
    options = {**case_options(name), **drop_path_options(name)}
    torch.manual_seed(0)
    plain = build_network(options).train()
    checkpointed = build_network({**options, 'use_checkpoint': True}).train()
    checkpointed.load_state_dict(plain.state_dict())
    inputs = make_inputs(name, batch=8)  # 8 samples' masks: replayed, not equal by chance
    grads = []
    for net in (plain, checkpointed):
        torch.manual_seed(1)
        net(*inputs).square().mean().backward()
        grads.append([p.grad for p in net.parameters()])
    for g, e in zip(*grads):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)
    torch.manual_seed(1)
    kept_plain = saved_activation_bytes(plain, *inputs)
    torch.manual_seed(1)
    kept = saved_activation_bytes(checkpointed, *inputs)
    assert kept < 0.8 * kept_plain, (kept, kept_plain)


EXACT_TILING = [n for n in NAMES if capability(case_options(n)).tiles_exactly]


@pytest.mark.parametrize('name', EXACT_TILING)
def test_tiled_inference_equals_untiled(name):
    """Tiles of 16 LQ pixels with the case's overlap (covering the tiny net's receptive field)
    on a 40 x 40 input, for the networks the capability table says tile exactly."""
    net = built(name)
    options = case_options(name)
    multiple = capability(options).size_multiple
    side = -(-40 // multiple) * multiple
    lq, *rest = make_inputs(name, batch=1, side=side)
    forward = (lambda x: net(x, *rest)) if rest else net
    with torch.no_grad():
        whole = net(lq, *rest)
    tiled = tiled_inference(forward, lq, round(output_scale(name, options)), tile=16,
                            overlap=CASES[name].get('tile_overlap', 8), clamp=False)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-4)


def test_tiling_check_detects_a_network_with_global_statistics():
    """The check above can fail: RCAN's channel attention pools the whole image, so its tiles
    differ from the untiled output (the table says it does not tile exactly)."""
    torch.manual_seed(0)  # squeeze 16 -> 8 channels: a tiny attention that is not saturated
    net = build_network({**case_options('RCAN'), 'squeeze_factor': 2}).eval()
    lq = make_inputs('RCAN', batch=1, side=40)[0]
    with torch.no_grad():
        whole = net(lq)
    tiled = tiled_inference(net, lq, 2, tile=16, overlap=8, clamp=False)
    assert (tiled - whole).abs().max() > 1e-4


ONNX_CASES = [n for n in NAMES if 'condition' not in CASES[n] and not is_discriminator(n)]


@pytest.mark.slow
@pytest.mark.parametrize('name', ONNX_CASES)
def test_onnx_export_matches_torch(name, tmp_path):
    pytest.importorskip('onnxruntime')
    from basicsr_lite.inference.export import export_onnx, verify_onnx
    reason = CASES[name].get('onnx')
    if isinstance(reason, str):
        pytest.skip(f'{name} does not export to ONNX: {reason}')
    net = built(name)
    _, c, h, _ = make_inputs(name)[0].shape
    multiple = capability(case_options(name)).size_multiple
    side = -(-max(h, 16) // multiple) * multiple
    try:
        export_onnx(net, tmp_path / 'net.onnx', in_channels=c, size=side)
        worst = verify_onnx(net, tmp_path / 'net.onnx',
                            [(1, c, side, side), (2, c, side, 2 * side)])
    except Exception:  # noqa: BLE001 (exporter / onnxruntime types)
        worst = float('inf')
    if worst >= 1e-4:
        # No dynamic-shape export (SAFMN's adaptive pooling; SwinIR's and OmniSR's window masks
        # are traced for one size; the ONNX table of docs/reference/architectures.md): the
        # export for the traced size must hold.
        export_onnx(net, tmp_path / 'net.onnx', in_channels=c, size=side, dynamic=False)
        worst = verify_onnx(net, tmp_path / 'net.onnx', [(1, c, side, side)])
    assert worst < 1e-4
