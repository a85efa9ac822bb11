"""How many deliberate bugs does the test suite catch?

    python tools/mutation_check.py --list tools/mutations_round2.yml [--with-changed-since COMMIT]
        [--at COMMIT] [--only ID,...] [--exclude GLOB ...] [--round-robin] [--jobs N]
        [--timeout S] [--verify-clean]

The list (YAML or JSON) holds breaks: ``{id, area, file, old, new, description, tests}``. For each
break a fresh temporary copy of the repository is made (``git ls-files`` plus untracked files git
does not ignore, taken once at start-up; never the .git folder, and the repository itself is never
touched; ``--at COMMIT``: that commit's tree instead), ``old`` (which must occur exactly once in
``file``; a list: alternatives, the first found once) is replaced by ``new``, and pytest runs in
the copy on the break's ``tests`` (plus, with ``--with-changed-since``, every tests/ file added or
changed since that commit) with ``-x -q -p no:cacheprovider``. The copy's code is what runs:
PYTHONPATH points at the copy (checked once at start-up), and no bytecode is written.
``../shared`` is linked beside the copy when the repository has one, so the tests that use it
run as they do here.

Results: ``caught`` (a test failed; flagged ``import`` when the break broke collection or an
import: still caught), ``missed`` (the tests passed) or ``invalid`` (not counted: ``old`` not found
exactly once, no test to run, or the tests ran past ``--timeout``, which on a busy machine says
nothing about the break). Prints a table and ``caught K of N (P%)`` per area and overall; exits 0.
Ctrl-C or SIGTERM stops the run and prints the table of the breaks measured so far.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import fnmatch
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import yaml

from basicsr_lite.engine.cli import tool_main  # noqa: E402
from basicsr_lite.errors import OptionError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
REQUIRED_KEYS = ('id', 'area', 'file', 'old', 'new', 'tests')
PYTEST_ARGS = ('-x', '-q', '-p', 'no:cacheprovider', '-rfE')
FAILED_LINE = re.compile(r'^(?:FAILED|ERROR) (\S+\.py\S*)', re.MULTILINE)
# never run for a break: this tool's own tests (a fake repository: they pass whatever the break)
ALWAYS_EXCLUDED = ('test_mutation_check.py',)
COLLECTION_ERRORS = ('error during collection', 'errors during collection', 'ERROR collecting',
                     'ImportError while loading conftest', 'while importing test module')


@dataclasses.dataclass
class Break:
    """``old`` / ``new``: one replacement, or lists of alternatives (the same bug in two versions
    of the code): the first ``old`` that occurs exactly once is replaced by its ``new``."""
    id: str
    area: str
    file: str
    old: str | list[str]
    new: str | list[str]
    tests: list[str]
    description: str = ''

    def apply(self, text: str) -> tuple[str | None, str]:
        """(the broken text, '') or (None, why it cannot be applied)."""
        olds = self.old if isinstance(self.old, list) else [self.old]
        news = self.new if isinstance(self.new, list) else [self.new]
        counts = [text.count(old) for old in olds]
        for old, new, count in zip(olds, news, counts):
            if count == 1:
                return text.replace(old, new), ''
        return None, f'old text found {" / ".join(map(str, counts))} times in {self.file}'


@dataclasses.dataclass
class Outcome:
    brk: Break
    status: str  # caught | missed | invalid
    flag: str = ''  # import | timeout | why it is invalid
    first_failure: str = ''
    seconds: float = 0.0
    tests: list[str] = dataclasses.field(default_factory=list)
    output: str = ''


def load_breaks(path: Path) -> list[Break]:
    """The breaks of a YAML / JSON list (a list, or ``{breaks: [...]}``), checked for keys and
    unique ids."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise OptionError(f'{path}: cannot read the list of breaks ({err})') from err
    if isinstance(data, dict):
        data = data.get('breaks')
    if not isinstance(data, list):
        raise OptionError(f'{path}: expected a list of breaks (or a mapping with key "breaks")')
    breaks, seen = [], set()
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise OptionError(f'{path}: entry {i} is {type(entry).__name__}, expected a mapping')
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        if missing:
            raise OptionError(f'{path}: entry {i} ({entry.get("id", "no id")}) lacks {missing}')
        unknown = sorted(set(entry) - set(REQUIRED_KEYS) - {'description'})
        if unknown:
            raise OptionError(f'{path}: entry {entry["id"]} has unknown keys {unknown}')
        tests = entry['tests']
        tests = [tests] if isinstance(tests, str) else list(tests or [])
        if entry['id'] in seen:
            raise OptionError(f'{path}: id {entry["id"]!r} occurs twice')
        seen.add(entry['id'])
        old, new = entry['old'], entry['new']
        if isinstance(old, list) != isinstance(new, list) or \
                isinstance(old, list) and (len(old) != len(new) or not old):
            raise OptionError(f'{path}: entry {entry["id"]}: old and new are both texts, or both '
                              f'lists of the same (non-zero) length')
        old, new = ([str(o) for o in old], [str(n) for n in new]) if isinstance(old, list) \
            else (str(old), str(new))
        breaks.append(Break(str(entry['id']), str(entry['area']), str(entry['file']), old, new,
                            [str(t) for t in tests], str(entry.get('description', ''))))
    return breaks


def round_robin(breaks: list[Break]) -> list[Break]:
    """The first break of each area, then the second of each, ...: a run stopped early has
    measured every area about equally."""
    by_area: dict[str, list[Break]] = {}
    for brk in breaks:
        by_area.setdefault(brk.area, []).append(brk)
    rounds = max((len(group) for group in by_area.values()), default=0)
    return [group[i] for i in range(rounds) for group in by_area.values() if i < len(group)]


def git_lines(repo: Path, *args: str) -> list[str]:
    out = subprocess.run(['git', '-C', str(repo), *args], check=True, capture_output=True,
                         text=True).stdout
    return [line for line in out.split('\0' if '-z' in args else '\n') if line]


def repo_files(repo: Path) -> list[str]:
    """Tracked files plus untracked ones git does not ignore (what a commit of it would hold)."""
    return sorted(set(git_lines(repo, 'ls-files', '-z', '--cached', '--others',
                                '--exclude-standard')))


def changed_tests(repo: Path, commit: str) -> list[str]:
    """tests/ files added or changed since ``commit`` (committed or not), untracked ones too."""
    try:
        names = git_lines(repo, 'diff', '--name-only', commit, '--', 'tests')
    except subprocess.CalledProcessError as err:
        raise OptionError(f'--with-changed-since {commit}: not a commit of {repo} '
                          f'({err.stderr.strip()})') from err
    names += git_lines(repo, 'ls-files', '--others', '--exclude-standard', '--', 'tests')
    return sorted({n for n in names if is_test_file(n) and (repo / n).is_file()})


def is_test_file(name: str) -> bool:
    path = Path(name)
    return path.parts[:1] == ('tests',) and path.name.startswith('test_') and path.suffix == '.py'


def make_copy(repo: Path, files: list[str]) -> tuple[Path, Path]:
    """A fresh copy of ``files`` as ``<tmp>/<repo name>`` (``<tmp>/shared`` linked to the
    repository's ``../shared`` when there is one). Returns (tmp, copy)."""
    tmp = Path(tempfile.mkdtemp(prefix='mutation_'))
    copy = tmp / repo.name
    for name in files:
        src = repo / name
        if not src.is_file() and not src.is_symlink():
            continue  # deleted in the working tree, or a submodule
        dst = copy / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    shared = repo.parent / 'shared'
    if shared.is_dir():
        (tmp / 'shared').symlink_to(shared.resolve(), target_is_directory=True)
    return tmp, copy


def copy_env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(copy)] + [p for p in
                                                       env.get('PYTHONPATH', '').split(os.pathsep)
                                                       if p])
    env['PYTHONDONTWRITEBYTECODE'] = '1'
    return env


def commit_snapshot(repo: Path, commit: str, extra: list[str]) -> tuple[Path, Path]:
    """``make_copy`` of the tree of ``commit`` (``git archive``), with the working tree's
    ``extra`` files added."""
    archive = subprocess.run(['git', '-C', str(repo), 'archive', '--format=tar', commit],
                             capture_output=True)
    if archive.returncode:
        raise OptionError(f'--at {commit}: not a commit of {repo} '
                          f'({archive.stderr.decode(errors="replace").strip()})')
    tmp = Path(tempfile.mkdtemp(prefix='mutation_'))
    copy = tmp / repo.name
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(copy, filter='data')
    for name in extra:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, copy / name)
    shared = repo.parent / 'shared'
    if shared.is_dir():
        (tmp / 'shared').symlink_to(shared.resolve(), target_is_directory=True)
    return tmp, copy


def snapshot_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob('*')
                  if p.is_file() or p.is_symlink())


def check_code_under_test(repo: Path, files: list[str], package: str = 'basicsr_lite') -> str:
    """Where ``import <package>`` resolves in a copy; refuses to go on if that is not the copy
    (an installed package would then be measured instead of the broken copy)."""
    tmp, copy = make_copy(repo, files)
    try:
        out = subprocess.run([sys.executable, '-c', f'import {package}; print({package}.__file__)'],
                             cwd=copy, env=copy_env(copy), capture_output=True, text=True)
        where = Path(out.stdout.strip() or '/nonexistent').resolve()
        if copy.resolve() not in where.parents:
            raise OptionError(f'in a copy of the repository, {package} is imported from '
                              f'{where} instead of the copy {copy} ({out.stderr.strip()[-300:]})')
        return str(where.relative_to(tmp.resolve()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


RUNNING: set[subprocess.Popen] = set()  # pytest runs in progress (killed on Ctrl-C)
STOPPING = threading.Event()


def run_pytest(copy: Path, tests: list[str], timeout: float) -> tuple[int | None, str]:
    """pytest's exit code (None on timeout) and its output; a timed-out run's process group is
    killed."""
    proc = subprocess.Popen([sys.executable, '-m', 'pytest', *PYTEST_ARGS, *tests], cwd=copy,
                            env=copy_env(copy), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    RUNNING.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out
    finally:
        RUNNING.discard(proc)


def stop_running() -> None:
    """Ctrl-C: no new break starts, and the pytest runs in progress (own sessions) are killed."""
    STOPPING.set()
    for proc in list(RUNNING):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def classify(rc: int | None, output: str) -> tuple[str, str, str]:
    """(status, flag, first failing test) of one pytest run."""
    match = FAILED_LINE.search(output)
    first = match.group(1) if match else ''
    if rc is None:  # a hang, or only a slow machine: not counted either way
        return 'invalid', 'timed out (not counted)', first
    if any(marker in output for marker in COLLECTION_ERRORS) or rc in (2, 3, 4):
        return 'caught', 'import', first or next(
            (line.strip() for line in output.splitlines() if 'Error' in line), '')
    if rc == 1:
        return 'caught', '', first
    if rc == 5:
        return 'invalid', 'no test ran', ''
    return 'missed', '', ''


def select_tests(brk: Break, extra: list[str], exclude: list[str]) -> list[str]:
    """The break's test files, then ``extra`` ones, less the excluded ones (globs of paths or
    file names)."""
    tests = list(dict.fromkeys(brk.tests + extra))
    exclude = [*exclude, *ALWAYS_EXCLUDED]
    return [t for t in tests if not any(fnmatch.fnmatch(t, pattern) or
                                        fnmatch.fnmatch(Path(t.split('::')[0]).name, pattern)
                                        for pattern in exclude)]


def run_break(repo: Path, files: list[str], brk: Break, tests: list[str],
              timeout: float) -> Outcome:
    """Copy, break, test, clean up."""
    start = time.monotonic()
    if STOPPING.is_set():
        return Outcome(brk, 'invalid', 'not run (interrupted)')
    if not tests:
        return Outcome(brk, 'invalid', 'no test file selected')
    missing = [t for t in tests if not (repo / t.split('::')[0]).is_file()]
    if missing:
        return Outcome(brk, 'invalid', f'no such test file: {", ".join(missing)}', tests=tests)
    tmp, copy = make_copy(repo, files)
    try:
        target = copy / brk.file
        if not target.is_file():
            return Outcome(brk, 'invalid', f'no such file: {brk.file}', tests=tests)
        broken, why = brk.apply(target.read_text())
        if broken is None:
            return Outcome(brk, 'invalid', why, tests=tests)
        target.write_text(broken)
        rc, output = run_pytest(copy, tests, timeout)
        status, flag, first = classify(rc, output)
        return Outcome(brk, status, flag, first, time.monotonic() - start, tests, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def summary_lines(outcomes: list[Outcome]) -> list[str]:
    """``caught K of N (P%)`` per area (in order of first appearance) and overall; invalid breaks
    are listed apart, not counted."""
    lines = []
    areas = list(dict.fromkeys(o.brk.area for o in outcomes))
    for area in areas + [None]:
        group = [o for o in outcomes if (area is None or o.brk.area == area)
                 and o.status != 'invalid']
        caught = sum(o.status == 'caught' for o in group)
        share = f'{100.0 * caught / len(group):.0f}%' if group else 'n/a'
        label = 'overall' if area is None else area
        lines.append(f'{label:<24} caught {caught} of {len(group)} ({share})')
    invalid = [o for o in outcomes if o.status == 'invalid']
    if invalid:
        names = ', '.join(f'{o.brk.id} ({o.flag})' for o in invalid)
        lines.append(f'invalid (not counted): {names}')
    return lines


def table_lines(outcomes: list[Outcome]) -> list[str]:
    width = max([len(o.brk.id) for o in outcomes] + [2])
    area_width = max([len(o.brk.area) for o in outcomes] + [4])
    lines = [f'{"id":<{width}}  {"area":<{area_width}}  {"result":<16}  {"s":>5}  '
             f'first failing test']
    for o in outcomes:
        result = o.status + (f' ({o.flag})' if o.flag and o.status != 'invalid' else '')
        detail = o.first_failure if o.status != 'invalid' else o.flag
        lines.append(f'{o.brk.id:<{width}}  {o.brk.area:<{area_width}}  {result:<16}  '
                     f'{o.seconds:5.1f}  {detail}')
    return lines


def verify_clean(repo: Path, files: list[str], tests: list[str], timeout: float) -> list[str]:
    """Runs the selected tests once on an unbroken copy; returns its failures (none expected:
    a break is only measured against tests that pass without it)."""
    tmp, copy = make_copy(repo, files)
    try:
        rc, output = run_pytest(copy, tests, timeout)
        failures = FAILED_LINE.findall(output)
        if rc is None:
            failures.append(f'(timed out after {timeout:.0f} s)')
        elif rc not in (0, 5) and not failures:
            failures.append(f'(pytest exit code {rc})')
        return failures
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@tool_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--list', default=str(REPO / 'tools' / 'mutations_round2.yml'),
                        help='the breaks (YAML or JSON)')
    parser.add_argument('--repo', default=str(REPO), help='the repository to copy (this one)')
    parser.add_argument('--only', action='append', default=[],
                        help='run only this break id (repeatable, or comma-separated)')
    parser.add_argument('--with-changed-since', metavar='COMMIT', default=None,
                        help='also run every tests/ file added or changed since COMMIT')
    parser.add_argument('--exclude', action='append', default=[], metavar='GLOB',
                        help='never run these test files (a path or a file name glob; repeatable)')
    parser.add_argument('--package', default='basicsr_lite',
                        help='the package whose import must resolve inside the copy')
    parser.add_argument('--at', metavar='COMMIT', default=None,
                        help="measure the code and tests of COMMIT (git archive) instead of the "
                             "working tree (with --with-changed-since: plus those test files)")
    parser.add_argument('--jobs', type=int, default=1, help='breaks tested at once (default 1)')
    parser.add_argument('--timeout', type=float, default=300.0,
                        help='seconds per break before its tests count as hung (default 300)')
    parser.add_argument('--round-robin', action='store_true',
                        help='run the breaks area by area in turn (a partial run covers all areas)')
    parser.add_argument('--verify-clean', action='store_true',
                        help='first run all selected tests once without any break')
    parser.add_argument('--show-output', action='store_true',
                        help="print pytest's output tail of each missed / flagged break")
    args = parser.parse_args(argv)
    # Ctrl-C or a plain kill (SIGTERM) ends the run with the table of what was measured so far
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.jobs < 1:
        raise OptionError(f'--jobs {args.jobs}: expected 1 or more')
    repo = Path(args.repo).resolve()
    breaks = load_breaks(Path(args.list))
    only = {i for item in args.only for i in item.split(',') if i}
    if only:
        unknown = sorted(only - {b.id for b in breaks})
        if unknown:
            raise OptionError(f'--only: no break with id {unknown} in {args.list}')
        breaks = [b for b in breaks if b.id in only]
    if args.round_robin:
        breaks = round_robin(breaks)
    extra = changed_tests(repo, args.with_changed_since) if args.with_changed_since else []
    files = repo_files(repo)
    print(f'code under test: <copy>/{check_code_under_test(repo, files, args.package)}')
    # One snapshot (of the working tree, or of --at's commit plus the selected changed tests),
    # from which every break's copy is made: edits made in the repository while this runs do
    # not reach the measurement.
    if args.at:
        snapshot_tmp, snapshot = commit_snapshot(repo, args.at, extra)
        files = snapshot_files(snapshot)
        print(f'measured at commit {args.at}' + (' plus the changed tests' if extra else ''))
    else:
        snapshot_tmp, snapshot = make_copy(repo, files)
    try:
        return measure(args, snapshot, files, breaks, extra)
    finally:
        shutil.rmtree(snapshot_tmp, ignore_errors=True)


def measure(args: argparse.Namespace, repo: Path, files: list[str], breaks: list[Break],
            extra: list[str]) -> int:
    if extra:
        added = select_tests(Break('', '', '', '', '', []), extra, args.exclude)
        print(f'added to every break: {", ".join(added)}')
    selections = {b.id: select_tests(b, extra, args.exclude) for b in breaks}
    if args.verify_clean:
        union = sorted({t for tests in selections.values() for t in tests})
        failures = verify_clean(repo, files, union, args.timeout * 4)
        print('clean run: ' + ('all selected tests pass' if not failures
                               else 'FAILS without any break: ' + ', '.join(failures)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_break, repo, files, b, selections[b.id], args.timeout)
                   for b in breaks]
        outcomes = []
        try:
            for brk, future in zip(breaks, futures):
                outcome = future.result()
                outcomes.append(outcome)
                print(f'[{len(outcomes)}/{len(breaks)}] {brk.id}: {outcome.status}'
                      f'{" (" + outcome.flag + ")" if outcome.flag else ""} '
                      f'{outcome.seconds:.0f} s {outcome.first_failure}', flush=True)
                if args.show_output and (outcome.status == 'missed' or outcome.flag):
                    print('\n'.join(outcome.output.splitlines()[-15:]))
        except KeyboardInterrupt:  # (SIGINT or SIGTERM) report what was measured so far
            stop_running()
            print(f'interrupted: {len(outcomes)} of {len(breaks)} break(s) measured')
    print()
    print('\n'.join(table_lines(outcomes)))
    print()
    print('\n'.join(summary_lines(outcomes)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
