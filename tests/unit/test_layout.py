"""The tree keeps its architecture: plain logic apart from Dagster, production code apart from the
demo, every library module in a stage package or the small shared root."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.repo import REPO_ROOT

PACKAGE = REPO_ROOT / "poolsieve"
#: where Dagster may be imported: the wiring, and the audit that reads Dagster's event log
DAGSTER_ALLOWED = [REPO_ROOT / "assets", REPO_ROOT / "pipelines", PACKAGE / "audit"]
STAGES = {"pool", "images", "clip", "curate", "audit"}
SHARED_ROOT = {
    "__init__",
    "cli",
    "lake",
    "mirror",
    "duck",
    "sqlrunner",
    "schema",
    "paths",
    "parent_death",
    "plots",
}
PRODUCTION = [PACKAGE, REPO_ROOT / "assets", REPO_ROOT / "pipelines", REPO_ROOT / "dbt_like_sql"]


def _python_files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _allowed(path: Path) -> bool:
    return any(path.is_relative_to(root) for root in DAGSTER_ALLOWED)


@pytest.mark.parametrize(
    "path", _python_files(PACKAGE), ids=lambda p: str(p.relative_to(REPO_ROOT))
)
def test_plain_logic_does_not_import_dagster(path):
    if _allowed(path):
        return
    dagster = {m for m in _imported_modules(path) if m.split(".")[0].startswith("dagster")}
    assert not dagster, f"{path.relative_to(REPO_ROOT)} imports {sorted(dagster)}"


def test_only_the_adapter_imports_dagsters_private_modules():
    private = re.compile(r"^dagster\._")
    users = [
        str(p.relative_to(REPO_ROOT))
        for p in _python_files(*PRODUCTION[:3])
        if any(private.match(m) for m in _imported_modules(p))
    ]
    assert users == ["poolsieve/audit/dagster_private.py"], users


def test_library_modules_sit_in_a_stage_package_or_the_shared_root():
    root_modules = {p.stem for p in PACKAGE.glob("*.py")}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert root_modules <= SHARED_ROOT, root_modules - SHARED_ROOT
    assert packages == STAGES, packages


def test_production_code_does_not_import_the_demo():
    users = [
        str(p.relative_to(REPO_ROOT))
        for p in _python_files(*PRODUCTION)
        if any(m.split(".")[0] == "poolsieve_demo" for m in _imported_modules(p))
    ]
    assert not users, users
