"""Short CI version of tools/fault_injection.py: random SIGKILLs (mostly mid-save), resumes."""
from tests.conftest import load_tool


def test_random_kills_then_resume_end_identical(tmp_path):
    tool = load_tool('fault_injection')
    report = tool.run_fault_injection(kills=3, iters=60, workers=2, save_delay=0.05, seed=1,
                                      work=tmp_path)
    print(report.summary())
    assert len(report.kills) >= 2
    assert report.identical
