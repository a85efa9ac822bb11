"""Modules and functions over the style's size limits (STYLE.md: modules mostly under ~300 lines,
functions under ~40):

    python tools/code_size.py [--module-lines 300] [--function-lines 40] [PATH ...]

PATH defaults to the package (basicsr_lite/). A function's size is its span in the file, decorators
and docstring included, nested functions counted with (and also apart from) the one around them.
Prints both lists, longest first, then their counts.
"""
from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_files(paths: list[Path]) -> list[Path]:
    """The ``.py`` files under ``paths`` (files given directly are kept), sorted."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.rglob('*.py')) if path.is_dir() else [path])
    return files


def function_sizes(tree: ast.AST) -> list[tuple[str, int]]:
    """``(qualified name, lines)`` of every function and method in a parsed module."""
    sizes: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                sizes.append((prefix + child.name, child.end_lineno - start + 1))
                visit(child, f'{prefix}{child.name}.')
            elif isinstance(child, ast.ClassDef):
                visit(child, f'{prefix}{child.name}.')
            else:
                visit(child, prefix)

    visit(tree, '')
    return sizes


def oversized(files: list[Path], module_lines: int,
              function_lines: int) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(modules over ``module_lines``, functions over ``function_lines``), longest first."""
    modules, functions = [], []
    for file in files:
        text = file.read_text(encoding='utf-8')
        name = str(file.resolve().relative_to(ROOT)) if file.resolve().is_relative_to(ROOT) \
            else str(file)
        lines = len(text.splitlines())
        if lines > module_lines:
            modules.append((name, lines))
        functions += [(f'{name}:{qual}', size) for qual, size in function_sizes(ast.parse(text))
                      if size > function_lines]
    return (sorted(modules, key=lambda m: -m[1]), sorted(functions, key=lambda f: -f[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('paths', nargs='*', type=Path, default=[ROOT / 'basicsr_lite'])
    parser.add_argument('--module-lines', type=int, default=300)
    parser.add_argument('--function-lines', type=int, default=40)
    args = parser.parse_args(argv)
    modules, functions = oversized(python_files(args.paths), args.module_lines,
                                   args.function_lines)
    print(f'Modules over {args.module_lines} lines:')
    for name, lines in modules:
        print(f'  {lines:5d}  {name}')
    print(f'Functions over {args.function_lines} lines:')
    for name, lines in functions:
        print(f'  {lines:5d}  {name}')
    print(f'{len(modules)} modules, {len(functions)} functions over the limits.')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
