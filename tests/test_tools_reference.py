"""docs/reference/tools.md is generated from the tools' own argparse parsers
(tools/tools_reference.py): stale when a tool's arguments change."""
from __future__ import annotations

from tests.conftest import load_tool


def test_the_tools_reference_is_current(capsys):
    assert load_tool('tools_reference').main(['--check']) == 0, capsys.readouterr().out


def test_the_page_holds_every_tool_with_its_arguments():
    tool = load_tool('tools_reference')
    text = tool.page()
    for title in ('`train.py`', '`test.py`', '`basicsr-inference`', '`tools/benchmark_train.py`'):
        assert f'## {title}' in text
    # an argument, its default and its help, as the tool defines them
    assert '| `--tile TILE` | `512` | tile size in input pixels; 0: off |' in text
    assert '| `--auto_resume` | off |' in text
    # machine-dependent defaults in words, so the page is the same everywhere
    assert '| `--workers WORKERS` | the number of CPUs |' in text
    assert '/work/' not in text and str(tool.ROOT) not in text
