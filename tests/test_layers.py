"""The layering rule of docs/design.md is a test: the import-linter contracts in
.importlinter (a module imports only from layers below its own; imports inside functions count
too) hold for the package, and a wrong import breaks them with a message naming it."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = ('import sys\n'
        'from importlinter.cli import lint_imports\n'
        'sys.exit(lint_imports(no_cache=True, no_logo=True))\n')


def lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` run on the package under ``root`` with root's .importlinter."""
    env = {**os.environ, 'PYTHONPATH': str(root)}
    return subprocess.run([sys.executable, '-c', LINT], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_package_keeps_its_layers():
    result = lint(ROOT)
    assert 'No module named' not in result.stderr, \
        f'import-linter is missing: pip install -e ".[dev]"\n{result.stderr}'
    assert result.returncode == 0, f'Import contracts broken:\n{result.stdout}{result.stderr}'
    assert 'Contracts: 2 kept, 0 broken.' in result.stdout


def test_an_upward_import_inside_a_function_breaks_the_layers(tmp_path):
    shutil.copytree(ROOT / 'basicsr_lite', tmp_path / 'basicsr_lite',
                    ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(ROOT / '.importlinter', tmp_path)
    (tmp_path / 'basicsr_lite' / 'runtime' / 'upward.py').write_text(
        'def model_type():\n'
        '    from basicsr_lite.models.sr_model import SRModel\n'
        '    return SRModel\n')
    result = lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'basicsr_lite.runtime is not allowed to import basicsr_lite.models' in result.stdout
    assert 'basicsr_lite.runtime.upward -> basicsr_lite.models.sr_model (l.2)' in result.stdout


def test_a_package_outside_the_layers_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / 'basicsr_lite', tmp_path / 'basicsr_lite',
                    ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(ROOT / '.importlinter', tmp_path)
    (tmp_path / 'basicsr_lite' / 'plugins').mkdir()
    (tmp_path / 'basicsr_lite' / 'plugins' / '__init__.py').write_text('')
    result = lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'basicsr_lite.plugins' in result.stdout
