"""The generated option reference (docs/reference/options.md) and JSON Schema
(schemas/options.schema.json): current, complete, and as strict as the framework's own check."""
from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

from basicsr_lite.errors import OptionError
from basicsr_lite.options import load_option_file, validate_options
from basicsr_lite.options.describe import constraint, third_party_versions, walk
from basicsr_lite.options.schema import Value
from basicsr_lite.options.spec import option_spec
from basicsr_lite.registry import MODEL_REGISTRY
from tests.conftest import load_tool

jsonschema = pytest.importorskip('jsonschema')

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / 'docs' / 'reference' / 'options.md'
SCHEMA = ROOT / 'schemas' / 'options.schema.json'
OPTION_FILES = sorted((ROOT / 'options').rglob('*.yml'))
STALE = 'is stale: regenerate it with python tools/{} (and commit it)'


@lru_cache(maxsize=None)
def validator() -> 'jsonschema.Draft202012Validator':
    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))


def schema_errors(opt: dict) -> list[str]:
    """``'<key.path>: <message>'`` of every JSON Schema error, the nested ones of if / then
    branches included (where unknown keys and wrong types are reported)."""
    found = []
    stack = list(validator().iter_errors(opt))
    while stack:
        error = stack.pop()
        found.append('.'.join(map(str, error.absolute_path)) + ': ' + error.message)
        stack.extend(error.context or [])
    return found


def framework_errors(opt: dict, is_train: bool) -> str:
    with pytest.raises(OptionError) as info:
        validate_options(opt, is_train, check_paths=False)
    return str(info.value)


def recorded_versions(text: str) -> dict[str, str]:
    """The torch / pytorch-optimizer versions a generated file says it describes."""
    return dict(re.findall(r'(torch|pytorch-optimizer) ([0-9][^ ,."]*(?:\.[0-9][^ ,."]*)*)',
                           text))


def without_optimizer_entries(text: str, kind: str) -> str:
    """A generated file less the arguments of torch's and pytorch-optimizer's classes."""
    if kind == 'page':
        return re.sub(r'\n## Registered optimizers\n.*?(?=\n## )', '', text, flags=re.S)
    schema = json.loads(text)
    schema['$defs'] = {k: v for k, v in schema['$defs'].items() if not k.startswith('optimizer')}
    return json.dumps(schema)


@pytest.mark.parametrize('tool, path, kind', [('options_reference', PAGE, 'page'),
                                              ('option_schema', SCHEMA, 'schema')])
def test_generated_reference_and_schema_are_current(tool, path, kind):
    fresh, committed = load_tool(tool).render(), path.read_text()
    if recorded_versions(committed) != third_party_versions():
        # other versions of torch / pytorch-optimizer than the file was made with: their
        # signatures may differ; the rest must still be current
        fresh, committed = (without_optimizer_entries(t, kind) for t in (fresh, committed))
    assert fresh == committed, f'{path.relative_to(ROOT)} ' + STALE.format(f'{tool}.py')


def test_every_schema_node_has_a_doc_string_and_known_checks():
    for name in MODEL_REGISTRY.keys():
        for is_train in (True, False):
            for path, node in walk(option_spec(MODEL_REGISTRY.get(name), is_train)):
                assert node.doc.strip(), f'{name}: {path} has no doc string'
                if isinstance(node, Value) and node.check is not None:
                    assert constraint(node.check) is not None, \
                        f'{name}: {path}: describe.py does not know its check {node.check}'


@pytest.mark.slow  # (1.5 s: the meta-schema check of a 300 kB schema)
def test_the_schema_is_a_valid_draft_2020_12_schema():
    schema = json.loads(SCHEMA.read_text())
    assert schema['$schema'] == 'https://json-schema.org/draft/2020-12/schema'
    jsonschema.Draft202012Validator.check_schema(schema)


def sample_of_shipped_files() -> list[Path]:
    """The demo files and one training file of each model type the shipped files use."""
    by_model: dict[str, Path] = {}
    for path in OPTION_FILES:
        if '/train/' in str(path):
            text = path.read_text()
            model = re.search(r'^model_type: *(\w+)', text, re.M)
            by_model.setdefault(model.group(1) if model else 'SRModel', path)
    demos = [p for p in OPTION_FILES if p.name == 'demo.yml']
    return sorted(set(demos) | set(by_model.values()))


@pytest.mark.parametrize('every', [
    False, pytest.param(True, marks=pytest.mark.slow)], ids=['sample', 'all'])
def test_shipped_option_files_validate_against_the_schema(every):
    """A sample in the default run (loading all 100+ files takes seconds), all in the slow one."""
    files = OPTION_FILES if every else sample_of_shipped_files()
    assert len(files) > (50 if every else 5)
    problems = {str(p.relative_to(ROOT)): schema_errors(load_option_file(p)) for p in files}
    assert not {k: v for k, v in problems.items() if v}


@pytest.mark.slow  # (0.5 s: Markdown rendering of the page)
def test_the_reference_page_has_no_dead_anchor():
    markdown = pytest.importorskip('markdown')
    html = markdown.Markdown(extensions=['tables', 'toc', 'fenced_code']).convert(
        PAGE.read_text())
    ids = set(re.findall(r' id="([^"]+)"', html))
    links = set(re.findall(r'href="#([^"]+)"', html))
    assert links and not links - ids


def test_the_page_documents_every_key_and_registered_name():
    page = PAGE.read_text()
    spec = option_spec(MODEL_REGISTRY.get('SRGANModel'), True)
    for path, node in walk(spec):
        if isinstance(node, Value):
            assert f'| `{path.rsplit(".", 1)[-1]}` |' in page, path
    for name in ('MSRResNet', 'PairedImageDataset', 'L1Loss', 'calculate_psnr', 'Adam',
                 'CosineAnnealingRestartLR'):
        assert f'### `{name}`' in page
    assert '# yaml-language-server: $schema=' in page


# ---- a typo or a wrong type: refused by the schema as by the framework -----------------------------

TRAIN_FILE = ROOT / 'options' / 'train' / 'demo.yml'
TEST_FILE = ROOT / 'options' / 'test' / 'demo.yml'


def _set(opt: dict, dotted: str, value) -> None:
    *parents, last = dotted.split('.')
    for key in parents:
        opt = opt[key]
    opt[last] = value


def _rename(opt: dict, dotted: str, new: str) -> None:
    *parents, last = dotted.split('.')
    for key in parents:
        opt = opt[key]
    opt[new] = opt.pop(last)


TYPOS = [  # (edit, the key path both must name)
    (lambda o: _set(o, 'train.optim_g.lr_rate', 1e-3), 'train.optim_g.lr_rate'),
    (lambda o: _rename(o, 'network_g.num_feat', 'num_feats'), 'network_g.num_feats'),
    (lambda o: _rename(o, 'datasets.train.batch_size_per_gpu', 'batch_size_per_gpuu'),
     'datasets.train.batch_size_per_gpuu'),
    (lambda o: _set(o, 'manual_sed', 1), 'manual_sed'),
    (lambda o: _set(o, 'logger.print_frq', 10), 'logger.print_frq'),
    (lambda o: _set(o, 'val.metrics.psnr.crop_boder', 4), 'val.metrics.psnr.crop_boder'),
    (lambda o: _set(o, 'train.scheduler.milestone', [10]), 'train.scheduler.milestone'),
    (lambda o: _set(o, 'datasets.vall', o['datasets']['val']), 'datasets.vall'),
]
WRONG = [  # wrong types, unknown names, values out of range
    (lambda o: _set(o, 'train.total_iter', 'many'), 'train.total_iter'),
    (lambda o: _set(o, 'network_g.num_feat', '64'), 'network_g.num_feat'),
    (lambda o: _set(o, 'datasets.train.use_hflip', 'yes'), 'datasets.train.use_hflip'),
    (lambda o: _set(o, 'val.val_freq', 1.5), 'val.val_freq'),
    (lambda o: _set(o, 'train.optim_g.type', 'Adamm'), 'train.optim_g.type'),
    (lambda o: _set(o, 'network_g.type', 'MSRResNett'), 'network_g.type'),
    (lambda o: _set(o, 'train.ema_decay', 1.5), 'train.ema_decay'),
    (lambda o: _set(o, 'scale', 0), 'scale'),
    (lambda o: _set(o, 'train.amp', 'fp8'), 'train.amp'),
    (lambda o: _set(o, 'logger.wandb', {'project': 'x', 'mode': 'live'}), 'logger.wandb.mode'),
]


@pytest.mark.parametrize('edit, where', TYPOS + WRONG,
                         ids=[where for _, where in TYPOS + WRONG])
def test_a_typo_or_wrong_value_is_refused_by_schema_and_framework(edit, where):
    opt = load_option_file(TRAIN_FILE)
    assert not schema_errors(opt)
    validate_options(opt, True, check_paths=False)
    edit(opt)
    parent, _, key = where.rpartition('.')
    errors = schema_errors(opt)
    assert any(e.split(':')[0] in (parent, where) and key in e for e in errors), errors
    assert where in framework_errors(opt, True)


def test_schema_and_framework_agree_on_model_specific_keys():
    opt = load_option_file(TRAIN_FILE)
    opt['gt_usm'] = True  # a RealESRNetModel key, not an SRModel one
    assert schema_errors(opt) and 'gt_usm' in framework_errors(opt, True)
    opt['model_type'] = 'RealESRNetModel'
    opt['datasets']['train'].update(type='RealESRGANDataset', dataroot_gt='x')
    for key in ('dataroot_lq', 'filename_tmpl', 'gt_size', 'use_rot'):
        opt['datasets']['train'].pop(key, None)
    assert not schema_errors(opt)
    opt['resize_prob'] = [0.5, 0.5]  # two probabilities where the pipeline takes three
    assert schema_errors(opt) and 'resize_prob' in framework_errors(opt, True)


def test_test_files_need_no_train_section_nor_discriminator():
    opt = load_option_file(TEST_FILE)
    assert 'train' not in opt and not schema_errors(opt)
    opt['model_type'] = 'SRGANModel'  # a GAN model's test file: network_d may be left out
    assert not schema_errors(opt)
    train = load_option_file(TRAIN_FILE)
    train['model_type'] = 'SRGANModel'  # ... but not in a training file
    assert any('network_d' in e for e in schema_errors(train))
    assert 'network_d' in framework_errors(train, True)


def test_float_arguments_with_an_integer_default_take_floats():
    """torch's Adam has ``weight_decay=0`` (an int) annotated float: 1e-4 is valid."""
    opt = load_option_file(TRAIN_FILE)
    opt['train']['optim_g'] = {'type': 'Adam', 'lr': 2e-4, 'weight_decay': 1e-4}
    assert not schema_errors(copy.deepcopy(opt))
    validate_options(opt, True, check_paths=False)


# ---- as an editor sees it: yaml-language-server on option files with the modeline ------------------

class LanguageServer:
    """A minimal LSP client of yaml-language-server (stdio): open a file, read its diagnostics,
    ask for completions."""

    def __init__(self, command: str, root: Path) -> None:
        import queue
        import subprocess
        import threading
        self.proc = subprocess.Popen([command, '--stdio'], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.inbox: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        self.request('initialize', {'processId': None, 'rootUri': root.as_uri(),
                                    'capabilities': {'workspace': {'configuration': True}}})
        self.notify('initialized', {})

    def _read(self) -> None:
        while True:
            header = b''
            while not header.endswith(b'\r\n\r\n'):
                byte = self.proc.stdout.read(1)
                if not byte:
                    return
                header += byte
            length = int(re.search(rb'Content-Length: *(\d+)', header, re.I).group(1))
            self.inbox.put(json.loads(self.proc.stdout.read(length)))

    def _send(self, message: dict) -> None:
        body = json.dumps({'jsonrpc': '2.0', **message}).encode()
        self.proc.stdin.write(b'Content-Length: %d\r\n\r\n' % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: dict) -> None:
        self._send({'method': method, 'params': params})

    def request(self, method: str, params: dict):
        self.next_id += 1
        self._send({'id': self.next_id, 'method': method, 'params': params})
        return self.wait(lambda m: m.get('id') == self.next_id and 'method' not in m)['result']

    def wait(self, wanted, timeout: float = 60.0) -> dict:
        import queue
        import time
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                message = self.inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if 'method' in message and 'id' in message:  # a request of the server: settings
                items = message['params'].get('items', []) \
                    if message['method'] == 'workspace/configuration' else None
                self._send({'id': message['id'], 'result': None if items is None else
                            [{'validate': True, 'completion': True, 'hover': True}
                             for _ in items]})
            elif wanted(message):
                return message
        raise TimeoutError('yaml-language-server did not answer')

    def diagnostics(self, path: Path, text: str) -> list[tuple[int, str]]:
        """(line, message) of the problems the server reports once it has read the schema."""
        self.notify('textDocument/didOpen', {'textDocument': {
            'uri': path.as_uri(), 'languageId': 'yaml', 'version': 1, 'text': text}})
        found: list | None = None
        try:
            while True:  # (published more than once: syntax first, then the schema's)
                found = self.wait(lambda m: m.get('method') == 'textDocument/publishDiagnostics'
                                  and m['params']['uri'] == path.as_uri(),
                                  timeout=60 if found is None else 3)['params']['diagnostics']
        except TimeoutError:
            if found is None:
                raise
        return [(d['range']['start']['line'] + 1, d['message']) for d in found]

    def completions(self, path: Path, line: int, column: int) -> list[str]:
        result = self.request('textDocument/completion', {
            'textDocument': {'uri': path.as_uri()},
            'position': {'line': line - 1, 'character': column}})
        items = result.get('items', []) if isinstance(result, dict) else result or []
        return [item['label'] for item in items]

    def close(self) -> None:
        self.proc.kill()


@pytest.mark.slow
def test_yaml_language_server_checks_and_completes_with_the_modeline(tmp_path):
    """What the page promises editors: with the modeline, yaml-language-server marks typos and
    wrong types, and completes the arguments of the chosen architecture."""
    import os
    import shutil
    server = os.environ.get('YAML_LANGUAGE_SERVER') or shutil.which('yaml-language-server')
    if server is None:
        pytest.skip('yaml-language-server is not installed (npm install -g '
                    'yaml-language-server, or set YAML_LANGUAGE_SERVER to its path)')
    folder = tmp_path / 'options' / 'train' / 'X'
    folder.mkdir(parents=True)
    (tmp_path / 'schemas').mkdir()
    shutil.copy(SCHEMA, tmp_path / 'schemas' / SCHEMA.name)
    modeline = re.search(r'^# yaml-language-server: \$schema=\S+$', PAGE.read_text(), re.M)[0]
    good = modeline + '\n' + TRAIN_FILE.read_text()
    bad = (good.replace('batch_size_per_gpu:', 'batch_size_per_gpuu:', 1)
           .replace('  num_feat:', '  num_feats:', 1).replace('total_iter:', 'total_iter: x #', 1))
    lines = good.split('\n')
    net = lines.index('network_g:')
    partial = [line for line in lines if not line.startswith(('  num_feat:', '  num_block:'))]
    partial.insert(net + 2, '  ')
    lsp = LanguageServer(server, tmp_path)
    try:
        assert lsp.diagnostics(folder / 'good.yml', good) == []
        problems = ' | '.join(message for _, message in lsp.diagnostics(folder / 'bad.yml', bad))
        for expected in ('batch_size_per_gpuu is not allowed', 'num_feats is not allowed',
                         'Incorrect type'):
            assert expected in problems, problems
        lsp.diagnostics(folder / 'partial.yml', '\n'.join(partial))
        assert set(lsp.completions(folder / 'partial.yml', net + 3, 2)) >= {'num_feat',
                                                                              'num_block'}
    finally:
        lsp.close()


@pytest.mark.slow
@pytest.mark.parametrize('tool, name', [('options_reference', 'options.md'),
                                        ('option_schema', 'options.schema.json')])
def test_generator_command_lines_write_and_check(tool, name, tmp_path, capsys):
    """``python tools/<tool>.py --out F`` writes F; ``--check`` says whether F is current."""
    module, out = load_tool(tool), tmp_path / name
    assert module.main(['--out', str(out)]) == 0
    assert module.main(['--out', str(out), '--check']) == 0
    out.write_text(out.read_text().replace('a', 'b', 1))
    assert module.main(['--out', str(out), '--check']) == 1
    assert 'is stale; regenerate it with python tools/' in capsys.readouterr().out
