"""Both code locations load in Dagster's own CLI (real subprocesses)."""

import os
import subprocess
import sys
from pathlib import Path

import yaml
from poolsieve.pipelines.definitions import defs

from tests.repo import REPO_ROOT


def _validates(location: list[str], **env: str) -> None:
    """``dagster definitions validate`` on a code location, in a fresh process, succeeds."""
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", *location],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Validation successful" in proc.stderr + proc.stdout


def test_workspace_yaml_loads_with_dagster_cli(tmp_path):
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    assert (
        workspace["load_from"][0]["python_module"]["module_name"]
        == "poolsieve.pipelines.definitions"
    )
    _validates(["-w", "workspace.yaml"], DAGSTER_HOME=str(tmp_path))


def test_the_demo_location_is_the_same_graph_bound_to_the_demo_world(tmp_path):
    """`make dev` serves poolsieve_demo.definitions: production's graph, the demo's resources."""
    from poolsieve_demo.definitions import defs as demo_defs
    from poolsieve_demo.resources import DemoDownloaderResource

    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert demo_defs.resolve_asset_graph().get_all_asset_keys() == keys
    resources = demo_defs.resources
    assert isinstance(resources["downloader"], DemoDownloaderResource)
    assert resources["curation"].param_profile == "tiny-cpu"
    _validates(
        ["-m", "poolsieve_demo.definitions"],
        DAGSTER_HOME=str(tmp_path),
        POOLSIEVE_LAKE=str(tmp_path / "lake"),
    )
