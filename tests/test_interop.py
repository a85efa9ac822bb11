"""Round trips to the upscaling tools (issue 28): every shipped architecture that spandrel knows
loads there from a file saved here (random init, 0 training steps) with the same outputs; RCAN,
saved in BasicSR's keys, through its export into the authors' layout, which loads back here.

spandrel is imported through tests/spandrel_support.py, which stands in for torchvision (absent
here) in sys.modules for the test only: see its docstring."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from basicsr_lite.archs import build_network
from basicsr_lite.archs.interop import SPANDREL_ARCHS, TOLERANCE, check_state_dict
from basicsr_lite.registry import ARCH_REGISTRY
from basicsr_lite.runtime.weights import load_weights_into, save_torch
from tests.spandrel_support import spandrel  # noqa: F401  (fixture)

CASES = Path(__file__).resolve().parent / 'fixtures' / 'arch_cases'


def tiny_options(name: str) -> dict:
    """The contract test's tiny case, with the values spandrel assumes for what it cannot
    detect (e.g. RRDBNet's num_grow_ch 32)."""
    args = yaml.safe_load((CASES / f'{name}.yml').read_text())['args']
    return {'type': name, **args, **SPANDREL_ARCHS[name].assumes}


def perturbed(net: torch.nn.Module, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {k: v + 0.01 * torch.randn(v.shape, generator=generator) if v.is_floating_point()
            else v for k, v in net.state_dict().items()}


SHIPPED = [name for name in SPANDREL_ARCHS if name in ARCH_REGISTRY.keys()]


@pytest.mark.parametrize('name', SHIPPED)
def test_every_arch_spandrel_knows_passes_the_check(spandrel, name):
    torch.manual_seed(0)
    options = tiny_options(name)
    net = build_network(options)
    report = check_state_dict(options, net.state_dict(), spandrel)
    assert report.passed, '\n'.join(report.lines())
    assert report.spandrel_arch == SPANDREL_ARCHS[name].name
    # relative to the output's size: SPAN's untrained outputs reach ~100 (img_range 255 inside)
    assert report.max_diff is not None and \
        report.max_diff <= TOLERANCE * max(1.0, report.max_output)
    assert report.spandrel_fp16 is not None


def test_the_table_covers_what_spandrel_has(spandrel):
    """Every spandrel name in the table is an architecture id of spandrel."""
    ids = {arch.architecture.id for arch in spandrel.MAIN_REGISTRY.architectures()}
    for name, entry in SPANDREL_ARCHS.items():
        assert entry.name in ids, name


def test_a_value_spandrel_cannot_detect_is_reported(spandrel):
    options = {**tiny_options('RRDBNet'), 'num_grow_ch': 4}
    report = check_state_dict(options, build_network(options).state_dict(), spandrel)
    assert not report.passed
    assert 'spandrel cannot detect num_grow_ch and builds 32; this network has 4' in \
        report.problems[0]


def test_an_arch_spandrel_lacks_is_reported():
    options = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
               'upscale': 2}
    report = check_state_dict(options, build_network(options).state_dict())
    assert not report.passed and 'spandrel 0.4.2 has no EDSR' in report.problems[0]


def test_rcan_exports_the_authors_layout_and_loads_it_back(spandrel, tmp_path):
    """Non-default img_range and mean: the export's mean-shift convolutions carry them."""
    options = {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_group': 2,
               'num_block': 2, 'upscale': 3, 'img_range': 100.0, 'rgb_mean': [0.3, 0.5, 0.6]}
    net = build_network(options)
    state = perturbed(net)
    report = check_state_dict(options, state, spandrel)
    assert report.passed and report.exported, '\n'.join(report.lines())
    assert report.hyperparameters['n_resgroups'] == 2 and report.scale == 3
    from basicsr_lite.archs.interop import spandrel_layout
    authors = spandrel_layout(options, state)
    assert 'head.0.weight' in authors and 'body.0.body.2.weight' in authors
    save_torch({'params': authors}, tmp_path / 'authors.pth')
    other = build_network(options)
    load_weights_into(other, str(tmp_path / 'authors.pth'))  # mapping on load
    assert all(torch.equal(other.state_dict()[k], v) for k, v in state.items())
    save_torch({'params': state}, tmp_path / 'basicsr.pth')  # BasicSR's layout still loads
    load_weights_into(other, str(tmp_path / 'basicsr.pth'))


def test_omnisr_signed_range_is_compared_with_the_mapping_and_noted(spandrel):
    options = tiny_options('OmniSR')
    report = check_state_dict(options, perturbed(build_network(options)), spandrel)
    assert report.passed, '\n'.join(report.lines())
    assert any('signed_range=True' in n for n in report.notes)


def test_a_missing_spandrel_is_one_clear_error(monkeypatch):
    import sys
    from basicsr_lite.archs.interop import import_spandrel
    from basicsr_lite.errors import UserError
    monkeypatch.setitem(sys.modules, 'spandrel', None)  # what an absent package looks like
    with pytest.raises(UserError, match=r'needs spandrel: pip install -e "\.\[interop\]"'):
        import_spandrel()
