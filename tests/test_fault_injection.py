"""Short version of tools/fault_injection.py: SIGKILLs (every other one the moment a save's temp
file appears), a resume after each, and the end bitwise identical to an uninterrupted run."""
import pytest

from tests.conftest import load_tool


@pytest.mark.slow
def test_kills_mid_save_then_resume_end_identical(tmp_path):
    tool = load_tool('fault_injection')
    report = tool.run_fault_injection(kills=4, iters=60, workers=2, save_delay=0.05, seed=1,
                                      work=tmp_path)
    print(report.summary())
    assert len(report.kills) == 4
    assert sum(kill['mid_save'] for kill in report.kills) >= 2  # kills 1 and 3 aim at a save
    assert report.identical
