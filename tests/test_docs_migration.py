"""docs/how-to/migrate.md's tables for traiNNer-redux and neosr, against the option check: a file
of each framework (tests/fixtures/foreign/, their keys) is refused only for keys the page's table
of that framework names (also once its misspelt types are put right, which hide the other keys
of their sections), and the same file edited as the table says is accepted."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from basicsr_lite.errors import OptionError
from basicsr_lite.options import validate_options
from basicsr_lite.options.parse import load_option_file

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / 'docs' / 'how-to' / 'migrate.md'
FOREIGN = ROOT / 'tests' / 'fixtures' / 'foreign'
CASES = [('traiNNer-redux', 'trainner_redux_span.yml'), ('neosr', 'neosr_compact.toml')]


def table_keys(framework: str) -> list[str]:
    """The inline code of the table rows in the page's section ``## <framework>``."""
    text = PAGE.read_text()
    section = text.split(f'\n## {framework}\n', 1)[1].split('\n## ', 1)[0]
    rows = [line for line in section.splitlines() if line.startswith('| `')]
    assert rows, f'{PAGE} has no table in its section {framework}'
    return [code for row in rows for code in re.findall(r'`([^`]+)`', row)]


def problems(raw: dict, source: str) -> str:
    with pytest.raises(OptionError) as caught:
        validate_options(raw, True, source=source, check_paths=False)
    return str(caught.value)


def registered_name(message: str, wrong: str) -> str | None:
    """The registered name a 'No <kind> named ...' message offers for ``wrong``: the one equal
    but for case, else its did-you-mean."""
    listed = re.search(r'(?:Registered|Available): (.*?)\.?$', message)
    for name in (listed[1].split(', ') if listed else []):
        if name.lower() == wrong.lower():
            return name
    suggested = re.search(r"[Dd]id you mean '([^']+)'", message)
    return suggested[1] if suggested else None


def set_key(raw: dict, path: str, value: str) -> None:
    keys = [int(k) if k.isdigit() else k for k in re.findall(r'[^.\[\]]+', path)]
    for key in keys[:-1]:
        raw = raw[key]
    raw[keys[-1]] = value


def problem_keys(path: Path) -> list[str]:
    """The option keys the check reports for ``path``, in the page's generic form
    (``datasets.<set>.``, ``val.metrics.<name>.``, ``train.losses[i]``). A misspelt ``type``
    hides its section's other keys, so the check runs again with each one the registry can
    name put right, and the keys of both runs count."""
    raw = load_option_file(path)
    first = problems(raw, str(path))
    keys = re.findall(r'^  - ([\w.\[\]<>]+):', first, re.M)
    assert keys, first
    for line in re.findall(r"^  - ([\w.\[\]]+\.type): No \w+ named '([^']+)'.*$", first, re.M):
        fixed = registered_name(first.split(line[0] + ':', 1)[1].splitlines()[0], line[1])
        if fixed:
            set_key(raw, line[0], fixed)
    keys += re.findall(r'^  - ([\w.\[\]<>]+):', problems(raw, str(path)), re.M)
    generic = []
    for key in keys:
        key = re.sub(r'^datasets\.\w+\.', 'datasets.<set>.', key)
        key = re.sub(r'^val\.metrics\.\w+\.', 'val.metrics.<name>.', key)
        generic.append(re.sub(r'\[\d+\]', '[i]', key))
    return sorted(set(generic))


@pytest.mark.parametrize('framework, name', CASES)
def test_every_key_a_foreign_file_needs_changed_is_in_the_table(framework, name):
    keys = table_keys(framework)
    problems = problem_keys(FOREIGN / name)
    missing = [p for p in problems if not any(p in code for code in keys)]
    assert not missing, f'{PAGE} ({framework}) does not say what to do with {missing}'


@pytest.mark.parametrize('framework, name', CASES)
def test_the_edited_files_are_accepted(framework, name):
    stem, suffix = name.rsplit('.', 1)
    edited = FOREIGN / f'{stem}_here.{suffix}'
    validate_options(load_option_file(edited), True, source=str(edited), check_paths=False)
