"""The installed package is whole: a wheel built from the checkout, installed (not editable) into a
fresh virtual environment, runs ``poolsieve`` with its SQL, configs and Dagster code location from
package data, in a folder that is not the checkout.

The fresh environment gets the project's dependencies by a path to this environment's
site-packages (reinstalling torch would cost gigabytes); poolsieve itself comes only from the
wheel, and the test checks that it does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import row, write_datacomp
from tests.repo import REPO_ROOT

pytestmark = pytest.mark.slow

#: what a build must not see: environments, outputs, and setuptools' own leftovers
NOT_SOURCE = [".git", ".venv", "lake", ".dagster_home", "build", "*.egg-info", "__pycache__"]
PACKAGE_DATA = [
    "poolsieve/sql/filters/basic.sql",
    "poolsieve/sql/filters/basic.yml",
    "poolsieve/sql/macros/normalize_url.sql",
    "poolsieve/sql/staging/stg_pool_rows.sql",
    "poolsieve/pipelines/dagster.yaml",
    "poolsieve/pipelines/dagster_postgres.yaml",
    "poolsieve/pipelines/definitions.py",
    "poolsieve/assets/pool_shard.py",
    "poolsieve/clip/configs/poolsieve-tiny.json",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out, src = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("src") / "poolsieve"
    shutil.copytree(REPO_ROOT, src, ignore=shutil.ignore_patterns(*NOT_SOURCE))  # no build/ here
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("poolsieve-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A new venv holding poolsieve from the wheel; dependencies by path to this environment's."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}))
    (site / "poolsieve_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    proc = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def _run(venv: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POOLSIEVE_", "PYTHON"))}
    env["DAGSTER_HOME"] = str(cwd / "home")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_wheel_carries_the_package_data_under_the_poolsieve_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    missing = [n for n in PACKAGE_DATA if n not in names]
    assert not missing, missing
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"poolsieve", "poolsieve_demo"}, top_level


def test_installed_poolsieve_comes_from_the_wheel_not_the_checkout(venv, tmp_path):
    code = (
        "import importlib.util as u, poolsieve, poolsieve.paths as p;"
        "print(poolsieve.__file__); print(p.sql_dir());"
        "print(u.find_spec('assets'), u.find_spec('pipelines'))"
    )
    proc = _run(venv, [str(venv / "bin" / "python"), "-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    module, sql, generic = proc.stdout.splitlines()
    assert module.startswith(str(venv)) and sql.startswith(str(venv)), proc.stdout
    assert generic == "None None", "generic top-level names must not be installed"


def test_installed_console_script_normalizes_urls(venv, tmp_path):
    url = "HTTP://Example.COM:80/a/?utm_source=x&q=1#frag"
    proc = _run(venv, [str(venv / "bin" / "poolsieve"), "normalize-url", url], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == f"{url}\thttp://example.com/a?q=1\n"


def test_installed_console_script_ingests_a_tiny_pool(venv, tmp_path):
    source = tmp_path / "source"
    write_datacomp(source / "a.parquet", [row(1), row(2, url="ftp://x.org/y.jpg"), row(3)])
    write_datacomp(source / "b.parquet", [row(10, url="http://IMG.example.com/1.jpg"), row(11)])
    args = ["run", "--source", str(source), "--lake", str(tmp_path / "lake"), "--job", "ingest_job"]
    proc = _run(venv, [str(venv / "bin" / "poolsieve"), *args], tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "2 shards" in proc.stdout
    decisions = sorted((tmp_path / "lake" / "url_dedup").glob("*/decisions.parquet"))
    assert len(decisions) == 2, decisions
