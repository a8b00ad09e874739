"""The Dagster UI in a real browser: Debian's chromium driven by Playwright against `dagster dev`.

A small demo world is materialized into a temporary DAGSTER_HOME first (the scorer, two shards,
pool_features, one strategy and the leaderboard). Then `dagster dev` serves the demo's code
location (as `make dev` does) on 127.0.0.1, the test waits for it, launches a partition
materialization over GraphQL (subset of a strategy never built before) and waits for its success,
and checks in the pages that the asset graph, the partition status, the leaderboard's plot and
pool health's plots (one shard checked before and after the world aged) appear. The server (started through `poolsieve.pipelines.dev`, as `make dev` starts it) is stopped by
PID with SIGTERM, and nothing it started may outlive the test.

POOLSIEVE_SCREENSHOTS=DIR keeps the pages it checked as PNGs (the README's come from the full demo:
`make screenshots`, scripts/screenshots.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from poolsieve.curate.strategies import strategy_names
from poolsieve_demo.aging import age_world
from poolsieve_demo.server import free_port
from tests.dagster_ui import (
    FLAGS,
    DagsterDev,
    group_alive,
    open_page,
    processes_with_env,
    show_markdown,
)
from tests.image_world import run_job, run_world
from tests.repo import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
BUILT, LAUNCHED = "no_filter", "laion"
HEALTH_SHARD = "shard_00000.parquet"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make setup)"),
]


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    home = root / "home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "pipelines" / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        state = run_world(root / "lake", instance, rows_per_shard=100, training={"samples": 128})
        state["runs"][BUILT] = run_job(state["defs"], instance, "strategy_job", BUILT)
        state["runs"]["leaderboard"] = run_job(state["defs"], instance, "leaderboard_job")
        state["runs"] |= _check_twice(state, instance)
    assert all(r.success for r in state["runs"].values()), state["runs"]
    env = {"POOLSIEVE_LAKE": str(root / "lake"), "NO_ALBUMENTATIONS_UPDATE": "1"}
    dev = DagsterDev(home, free_port(), env, root / "dagster_dev.log")
    dev.start()
    try:
        location = dev.wait_loaded()[0]["name"]
        run_id = dev.launch("strategy_job", LAUNCHED, ["filter_sql", "subset"], location)
        yield {"dev": dev, "run_status": dev.wait_run(run_id), "shots": _shots_dir(root)}
    finally:
        dev.stop()


def _check_twice(state: dict, instance) -> dict:
    """pool_health of one shard before and after the world ages (two points on its plot), and
    subset_health after."""
    defs, world = state["defs"], state["world"]
    runs = {"health/1": run_job(defs, instance, "health_job", HEALTH_SHARD)}
    age_world(world.root)
    runs["health/2"] = run_job(defs, instance, "health_job", HEALTH_SHARD)
    runs["subset_health"] = run_job(defs, instance, "subset_health_job")
    return runs


def _shots_dir(root: Path) -> Path:
    folder = Path(os.environ.get("POOLSIEVE_SCREENSHOTS") or root / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def page(ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser.new_page(viewport={"width": 1500, "height": 950})
        browser.close()


def _open(page, ui, path: str, ready: str) -> None:
    open_page(page, ui["dev"].url + path, ready)


def test_the_launched_partition_materialization_succeeds(ui):
    assert ui["run_status"] == "SUCCESS"


def test_the_asset_graph_shows_every_stage(ui, page):
    _open(
        page,
        ui,
        "/assets/leaderboard?view=lineage&lineageScope=upstream&lineageDepth=20",
        "pool_features",
    )
    for asset in (
        "pool_shard",
        "url_dedup",
        "shard_images",
        "clip_embeddings",
        "filter_sql",
        "subset",
        "train_shards",
        "clip_model",
        "evaluation",
        "leaderboard",
    ):
        assert page.get_by_text(asset, exact=True).count() >= 1, asset
    page.screenshot(path=str(ui["shots"] / "asset_graph.png"))


def test_the_partition_status_shows_the_launched_strategy(ui, page):
    _open(page, ui, "/assets/subset?view=partitions", LAUNCHED)
    body = page.inner_text("body")
    assert "Materialized (2)" in body, body[:2000]  # the one built before and the one launched
    assert f"Missing ({len(strategy_names()) - 2})" in body
    page.screenshot(path=str(ui["shots"] / "partitions.png"))


def test_the_leaderboard_shows_its_table_and_plot(ui, page):
    _open(page, ui, "/assets/leaderboard", "accuracy_plot")
    assert "poolsieve lineage no_filter" in page.inner_text("body")  # the lineage links table
    plot = show_markdown(page, "accuracy_plot")  # the PNG embedded in the metadata
    assert plot.evaluate("img => img.complete && img.naturalWidth > 100")
    page.screenshot(path=str(ui["shots"] / "leaderboard.png"))


def test_pool_health_shows_a_shards_rates_over_time(ui, page):
    _open(page, ui, f"/assets/pool_health?view=partitions&partition={HEALTH_SHARD}", "history")
    body = page.inner_text("body")
    assert "link_rot_rate" in body and "hash_drift_rate" in body, body[:2000]
    plot = show_markdown(page, "history_plot")  # the shard's checks over time, as a PNG
    assert plot.evaluate("img => img.complete && img.naturalWidth > 300")
    page.screenshot(path=str(ui["shots"] / "pool_health.png"))
    page.keyboard.press("Escape")
    _open(page, ui, "/assets/subset_health", "health_per_shard")
    plot = show_markdown(page, "health_per_shard")  # every shard's, in one plot
    assert plot.evaluate("img => img.complete && img.naturalWidth > 300")


def test_stopping_the_server_leaves_nothing_running(ui, page):
    dev = ui["dev"]
    assert dev.stop(), dev.tail()  # SIGTERM alone stopped it and its whole process group
    assert dev.proc.poll() is not None
    assert not group_alive(dev.proc.pid)
    assert processes_with_env("DAGSTER_HOME", str(dev.home)) == []  # none escaped the group
