"""Short CI version of tools/fault_injection.py: random SIGKILLs (mostly mid-save), resumes."""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_tool():
    spec = importlib.util.spec_from_file_location('fault_injection',
                                                  ROOT / 'tools' / 'fault_injection.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_random_kills_then_resume_end_identical(tmp_path):
    tool = load_tool()
    report = tool.run_fault_injection(kills=3, iters=60, workers=2, save_delay=0.05, seed=1,
                                      work=tmp_path)
    print(report.summary())
    assert len(report.kills) >= 2
    assert report.identical
