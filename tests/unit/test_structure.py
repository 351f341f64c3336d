"""The house's rooms and what each may import (the README's map, "How it is built"):
`domain/` is pure, the flows never reach into the API or the command line, and the
API and the command line do not import each other (both may start flows)."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(folder: str) -> Iterator[tuple[str, str]]:
    """(file, top-level module path) of every import in the Python files of `folder`,
    including imports inside functions."""
    for path in sorted((ROOT / folder).rglob("*.py")) if (ROOT / folder).is_dir() else [ROOT / folder]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                yield from ((str(path.relative_to(ROOT)), alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield str(path.relative_to(ROOT)), node.module


def reaching(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{file}: {module}"
        for file, module in imports(folder)
        if any(module == f or module.startswith(f + ".") for f in forbidden)
    ]


def test_the_domain_imports_only_the_standard_library_and_pydantic() -> None:
    allowed = set(sys.stdlib_module_names) | {"pydantic", "pydantic_core", "domain", "__future__"}
    outside = [f"{file}: {module}" for file, module in imports("domain") if module.split(".")[0] not in allowed]
    assert outside == []


def test_the_flows_never_import_the_api_or_the_command_line() -> None:
    assert reaching("flows", ("api", "cli")) == []


def test_the_api_and_the_command_line_do_not_import_each_other() -> None:
    assert reaching("api", ("cli",)) == []
    assert reaching("cli", ("api",)) == []


def test_the_engine_never_imports_its_callers() -> None:
    assert reaching("engine", ("api", "cli", "flows", "demo")) == []
    assert reaching("domain", ("engine", "flows", "api", "cli", "notifications")) == []


def _messages(folder: str) -> Iterator[tuple[str, int, str]]:
    """Every string a module's code holds (docstrings and comments are not messages)."""
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                yield str(path.relative_to(ROOT)), node.lineno, node.value


def test_the_domain_and_the_services_tell_what_to_do_as_hints_never_as_commands() -> None:
    commands = [
        f"{where}:{line}: {text!r}"
        for folder in ("domain", "engine/services")
        for where, line, text in _messages(folder)
        if re.search(r"\bsip [a-z]", text)
    ]
    assert commands == []
