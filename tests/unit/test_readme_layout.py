"""The README's Layout section matches the tree: every module it names exists, every module that
exists is named, and every top-level folder it lists is there."""

from __future__ import annotations

import re

from tests.repo import REPO_ROOT

PACKAGE = REPO_ROOT / "poolsieve"


def _layout_block() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1]
    return section.split("```", 2)[1].strip("\n").splitlines()


def _listed_stages(lines: list[str]) -> dict[str, set[str]]:
    """{stage: module names} from the indented ``  stage/   a, b, c`` lines (a subpackage:
    ``  stage/sub/   a, b``) and their continuation lines."""
    stages, current = {}, None
    for line in lines:
        match = re.match(r"^  ([\w/]+)/\s+(.*)$", line)
        if match:
            current = match.group(1)
            stages[current] = set()
            rest = match.group(2)
        elif current and re.match(r"^\s{20,}\S", line):
            rest = line
        else:
            current = None
            continue
        stages[current] |= {w.strip() for w in rest.split(",") if w.strip()}
    return stages


def test_every_stage_package_and_module_is_listed_and_exists():
    listed = _listed_stages(_layout_block())
    on_disk = {p.parent.relative_to(PACKAGE).as_posix() for p in PACKAGE.glob("*/**/__init__.py")}
    assert set(listed) == on_disk, (set(listed), on_disk)
    for stage, names in listed.items():
        modules = {p.stem for p in (PACKAGE / stage).glob("*.py") if p.stem != "__init__"}
        data = {f"{p.name}/*.json" for p in (PACKAGE / stage).iterdir() if p.is_dir()} & names
        assert names - data == modules, (stage, names - data ^ modules)


def test_root_modules_and_top_level_folders_exist():
    lines = _layout_block()
    (root_line,) = [line for line in lines if line.strip().startswith("cli.py")]
    root = {p.name for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert set(root_line.split()) == root, root
    top = [line.split()[0] for line in lines if re.match(r"^\S", line)]
    missing = [name for name in top if not (REPO_ROOT / name.rstrip("/")).exists()]
    assert not missing, missing
