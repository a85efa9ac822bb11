"""tools/mutation_check.py on a tiny git repository: a caught, a missed, an import-breaking and
an invalid break; the copies, not the repository, are broken, and their code is what runs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import load_tool

MOD = 'def add(a, b):\n    return a + b\n\n\ndef unused():\n    return 1\n'
TEST = 'from pkg.mod import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n'


def git(repo: Path, *args: str) -> None:
    subprocess.run(['git', '-C', str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    repo = tmp_path / 'work' / 'fake'
    (repo / 'pkg').mkdir(parents=True)
    (repo / 'tests').mkdir()
    (repo / 'pkg' / '__init__.py').write_text('')
    (repo / 'pkg' / 'mod.py').write_text(MOD)
    (repo / 'tests' / 'test_mod.py').write_text(TEST)
    (repo / '.gitignore').write_text('ignored/\n')
    git(repo, 'init', '-q')
    git(repo, 'add', '.')
    git(repo, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'one')
    return repo


def test_caught_missed_import_invalid(fake_repo, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('PYTEST_DISABLE_PLUGIN_AUTOLOAD', '1')  # (speed: the copies' pytest runs)
    tool = load_tool('mutation_check')
    breaks = [
        {'id': 'sub', 'area': 'math', 'file': 'pkg/mod.py', 'old': 'a + b', 'new': 'a - b',
         'tests': ['tests/test_mod.py']},
        {'id': 'dead', 'area': 'math', 'file': 'pkg/mod.py', 'old': 'return 1', 'new': 'return 2',
         'tests': ['tests/test_mod.py']},
        {'id': 'syntax', 'area': 'other', 'file': 'pkg/mod.py', 'old': 'def add(a, b):',
         'new': 'def add(a, b)', 'tests': ['tests/test_mod.py']},
        {'id': 'twice', 'area': 'other', 'file': 'pkg/mod.py', 'old': 'return', 'new': 'yield',
         'tests': ['tests/test_mod.py']},
    ]
    listing = tmp_path / 'breaks.yml'
    listing.write_text(yaml.safe_dump({'breaks': breaks}))
    assert tool.main(['--repo', str(fake_repo), '--list', str(listing), '--package', 'pkg',
                      '--jobs', '3', '--timeout', '60']) == 0
    out = capsys.readouterr().out
    # the copy's package is the one imported (<tmp>/<repo name>/pkg/__init__.py)
    assert 'code under test: <copy>/fake/pkg/__init__.py' in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split()[:1] and line.split()[0] in ('sub', 'dead', 'syntax', 'twice')
            and not line.startswith('[')}
    assert rows['sub'][1:3] == ['math', 'caught']
    assert rows['sub'][-1] == 'tests/test_mod.py::test_add'
    assert rows['dead'][1:3] == ['math', 'missed']
    assert rows['syntax'][1:4] == ['other', 'caught', '(import)']
    assert rows['twice'][1:3] == ['other', 'invalid']
    assert 'old text found 2 times in pkg/mod.py' in out
    assert f'{"math":<24} caught 1 of 2 (50%)' in out
    assert f'{"other":<24} caught 1 of 1 (100%)' in out
    assert f'{"overall":<24} caught 2 of 3 (67%)' in out
    assert 'invalid (not counted): twice (old text found 2 times in pkg/mod.py)' in out
    assert (fake_repo / 'pkg' / 'mod.py').read_text() == MOD  # the repository is untouched


def test_selection_changed_tests_and_exclude(fake_repo):
    tool = load_tool('mutation_check')
    (fake_repo / 'tests' / 'test_new.py').write_text('def test_x():\n    pass\n')  # untracked
    (fake_repo / 'tests' / 'helper.py').write_text('')  # not a test file
    (fake_repo / 'tests' / 'test_mod.py').write_text(TEST + '\n')  # changed since the commit
    (fake_repo / 'ignored').mkdir()
    (fake_repo / 'ignored' / 'big.bin').write_text('x')
    assert tool.changed_tests(fake_repo, 'HEAD') == ['tests/test_mod.py', 'tests/test_new.py']
    brk = tool.Break('b', 'a', 'pkg/mod.py', 'x', 'y', ['tests/test_mod.py'])
    assert tool.select_tests(brk, ['tests/test_new.py', 'tests/test_mod.py'], []) == \
        ['tests/test_mod.py', 'tests/test_new.py']
    assert tool.select_tests(brk, ['tests/test_new.py'], ['test_new.py']) == ['tests/test_mod.py']
    assert tool.select_tests(brk, ['tests/test_mutation_check.py'], []) == ['tests/test_mod.py']
    files = tool.repo_files(fake_repo)
    assert 'tests/test_new.py' in files and 'ignored/big.bin' not in files
    assert not any(f.startswith('.git/') for f in files)


@pytest.mark.parametrize('rc, output, expected', [
    (1, 'F\nFAILED tests/t.py::test_a - assert 1 == 2\n', ('caught', '', 'tests/t.py::test_a')),
    (0, '.\n1 passed\n', ('missed', '', '')),
    (2, 'ERROR collecting tests/t.py\nE   SyntaxError: bad\n1 error during collection\n',
     ('caught', 'import', 'E   SyntaxError: bad')),
    (None, 'FAILED tests/t.py::test_b\n', ('invalid', 'timed out (not counted)',
                                           'tests/t.py::test_b')),
    (5, 'no tests ran\n', ('invalid', 'no test ran', '')),
])
def test_classify(rc, output, expected):
    assert load_tool('mutation_check').classify(rc, output) == expected


def test_bad_list_is_an_option_error(tmp_path, capsys):
    tool = load_tool('mutation_check')
    listing = tmp_path / 'breaks.yml'
    listing.write_text(yaml.safe_dump([{'id': 'x', 'area': 'a', 'file': 'f', 'old': 'o'}]))
    assert tool.main(['--list', str(listing)]) == 2
    assert "entry 0 (x) lacks ['new', 'tests']" in capsys.readouterr().err
    assert sys.modules['mutation_check'] is tool


def test_round_robin_takes_each_area_in_turn():
    tool = load_tool('mutation_check')
    breaks = [tool.Break(i, area, 'f', 'o', 'n', []) for i, area in
              [('g1', 'gan'), ('g2', 'gan'), ('g3', 'gan'), ('s1', 'step'), ('t1', 'tile'),
               ('t2', 'tile')]]
    assert [b.id for b in tool.round_robin(breaks)] == ['g1', 's1', 't1', 'g2', 't2', 'g3']


def test_alternatives_first_found_once_is_applied():
    tool = load_tool('mutation_check')
    brk = tool.Break('b', 'a', 'f.py', ['x = 1', 'y = 2'], ['x = 0', 'y = 0'], [])
    assert brk.apply('y = 2\n') == ('y = 0\n', '')
    assert brk.apply('x = 1\ny = 2\n') == ('x = 0\ny = 2\n', '')
    assert brk.apply('y = 2\ny = 2\n') == (None, 'old text found 0 / 2 times in f.py')


def test_every_round2_break_still_applies_to_the_code():
    """A break whose old text is gone (the code moved or was fixed) measures nothing: each one
    of tools/mutations_round2.yml must find its text exactly once in its file, and name test
    files that exist."""
    tool = load_tool('mutation_check')
    root = Path(__file__).resolve().parent.parent
    stale = []
    for brk in tool.load_breaks(root / 'tools' / 'mutations_round2.yml'):
        path = root / brk.file
        broken, why = tool.Break.apply(brk, path.read_text()) if path.is_file() else \
            (None, f'{brk.file} does not exist')
        missing_tests = [t for t in brk.tests if not (root / t).is_file()]
        if broken is None or missing_tests:
            stale.append(f'{brk.id}: {why or f"no test file {missing_tests}"}')
    assert stale == []
