"""The folders of `signaling/` and the order in which they may import each other.

DESIGN.md asks that a newcomer finds a feature by its folder and that no two parts import each
other in a circle. Each folder below may import only from folders before it in `LAYERS` (and from
itself); every import counts, also one inside a function or under TYPE_CHECKING, because a lazy
import that dodges a circle at start-up is still a circle in the design.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from signaling.server.features import ADMIN_COMMAND_MODULES, FEATURE_MODULES

PACKAGE = Path(__file__).resolve().parents[2] / "signaling"

# Lowest first. The root modules (config, db, data_dir, csv_safe, metrics) are the base.
LAYERS: list[set[str]] = [
    {""},
    {"wire", "store"},
    {"directory"},
    {"transport"},
    {"flow"},
    {"records"},
    {"in_call", "booking"},
    {"server"},
    {"cli"},
    {"__main__"},  # `python -m signaling`
]
ROOT_MODULES = {"__init__", "__main__", "config", "data_dir", "db", "csv_safe", "metrics"}


def rank(folder: str) -> int:
    for i, layer in enumerate(LAYERS):
        if folder in layer:
            return i
    raise AssertionError(f"signaling/{folder}/ is in no layer of this test")


def folder_of(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "signaling"
    if len(parts) == 1:
        return ""
    if parts[1] == "__main__":
        return "__main__"
    if len(parts) == 2 and parts[1] in ROOT_MODULES:
        return ""
    return parts[1] if len(parts) > 2 or (PACKAGE / parts[1]).is_dir() else ""


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `signaling` import in the file, at any depth."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "signaling":
                found += [(node.lineno, f"signaling.{a.name}") for a in node.names]
            elif node.module.startswith("signaling."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("signaling.")]
    return found


def source_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def test_only_the_base_lives_at_the_root() -> None:
    loose = {p.stem for p in PACKAGE.glob("*.py")} - ROOT_MODULES
    assert not loose, f"put these in a folder of signaling/: {sorted(loose)}"
    for folder in (p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        rank(folder.name)


def test_every_folder_imports_only_from_those_below_it() -> None:
    wrong: list[str] = []
    for path in source_files():
        here = folder_of(module_name(path))
        for line, target in imports_of(path):
            there = folder_of(target)
            if there != here and rank(there) >= rank(here):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    # The check itself can fail: a records module importing the server is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from signaling.server.app import create_app\n")
    ((_line, target),) = imports_of(bad)
    assert rank(folder_of(target)) > rank("records")


@pytest.mark.parametrize("name", FEATURE_MODULES + ADMIN_COMMAND_MODULES)
def test_every_plugged_in_module_exists(name: str) -> None:
    # create_app skips a feature module that does not exist: a wrong name after a move would
    # silently switch a feature off.
    importlib.import_module(name)


def test_every_table_is_declared_in_store() -> None:
    # The store is the one place a newcomer looks for the schema (and the models-vs-migrations
    # check in test_models.py imports exactly it).
    outside: list[str] = []
    for path in source_files():
        if folder_of(module_name(path)) == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id == "Base" for b in node.bases
            ):
                outside.append(f"{path.relative_to(PACKAGE.parent)}: {node.name}")
    assert not outside, "tables outside signaling/store/:\n" + "\n".join(outside)
