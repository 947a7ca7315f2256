"""Keep the layers honest: flows know no channel and no SQL; storage knows no Telegram."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "handlers": {"telegram", "sqlalchemy", "aiohttp", "bot"},
    "storage": {"telegram", "aiohttp", "handlers", "bot"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_do_not_import_what_they_must_not_know(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
        if imported_packages(path) & FORBIDDEN[package]
    }
    assert offenders == {}


def test_nothing_connects_or_reads_the_environment_at_import_time() -> None:
    # Importing every module must not need settings, a database or a network.
    import importlib

    for path in sorted((ROOT / "bot").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module.endswith("__main__"):
            continue
        importlib.import_module(module)
    packages = ("bot", "handlers", "storage", "scheduler")
    source = "\n".join(p.read_text() for name in packages for p in (ROOT / name).rglob("*.py"))
    assert "os.environ" not in source
    assert "getenv(" not in source
