"""Pool health end to end: a demo world downloaded, checked (all alive), aged to epoch 2 (links
die, images re-encoded or replaced, served by the same running server), and checked again;
pool_health must find exactly what the world's truth planted, and subset_health each subset's
share still downloadable."""

from __future__ import annotations

import dagster as dg
import pyarrow.parquet as pq
import pytest

from poolsieve.images.health import (
    ASSET,
    CHECKS_FILE,
    HISTORY_FILE,
    HISTORY_PLOT,
    SUBSET_ASSET,
    SUBSET_FILE,
)
from poolsieve_demo.aging import age_world
from poolsieve_demo.compare import aging_rates
from tests.image_world import run_job, run_subsets, run_world


def _check_all(pipeline) -> list:
    defs, instance = pipeline["defs"], pipeline["instance"]
    runs = [run_job(defs, instance, "health_job", s) for s in pipeline["world"].truth["shards"]]
    runs.append(run_job(defs, instance, "subset_health_job"))
    return runs


def _metadata(run, asset: str) -> dict:
    (event,) = [e for e in run.get_asset_materialization_events() if e.asset_key.path[-1] == asset]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


@pytest.fixture(scope="module")
def health(tmp_path_factory):
    with dg.instance_for_test() as instance:
        pipeline = run_world(tmp_path_factory.mktemp("health") / "lake", instance, 120)
        subsets = run_subsets(pipeline["defs"], instance)
        before = _check_all(pipeline)
        shares_before = pq.read_table(pipeline["lake"].root / SUBSET_ASSET / SUBSET_FILE)
        record = age_world(pipeline["world"].root)
        after = _check_all(pipeline)
        yield {
            **pipeline,
            "subsets": subsets,
            "before": before,
            "after": after,
            "record": record,
            "shares_before": shares_before.to_pylist(),
        }


def test_every_check_run_succeeds(health):
    assert all(r.success for r in health["subsets"] + health["before"] + health["after"])


def test_before_aging_every_checked_url_is_alive(health):
    for run in health["before"][:-1]:
        meta = _metadata(run, "pool_health")
        assert meta["checked"] == meta["downloaded"] > 0  # the demo checks every row
        assert meta["outcome/alive"] == meta["checked"]
        assert meta["link_rot_rate"] == meta["hash_drift_rate"] == 0.0
    assert {r["downloadable_share"] for r in health["shares_before"]} == {1.0}


def test_after_aging_pool_health_finds_exactly_what_was_planted(health):
    record, lake = health["record"], health["lake"]
    assert all(record[k] for k in ("dead", "reencoded", "replaced"))
    rates = aging_rates(lake.root, health["world"].truth_path)
    assert {k: (v["found"], v["planted"]) for k, v in rates["kinds"].items()} == {
        k: (len(record[k]), len(record[k])) for k in ("dead", "reencoded", "replaced")
    }
    assert rates["false_alarms"] == {} or sum(rates["false_alarms"].values()) == 0
    checks = pq.read_table(lake.asset_files(ASSET, CHECKS_FILE)[0]).to_pylist()
    dead = [c for c in checks if c["outcome"] == "dead"]
    assert dead and all(c["error_category"] == "http_404" for c in dead)
    assert all(c["phash_distance"] <= 6 for c in checks if c["outcome"] == "reencoded")


def test_rates_over_time_are_metadata_and_history(health):
    shard = health["world"].truth["shards"][0]
    meta = _metadata(health["after"][0], "pool_health")
    dead = sum(1 for r in health["record"]["rows"] if r["shard"] == shard and r["kind"] == "dead")
    assert meta["outcome/dead"] == dead
    assert meta["link_rot_rate"] == pytest.approx(round(dead / meta["checked"], 4))
    assert meta["hash_drift_rate"] > 0
    history = pq.read_table(health["lake"].partition_dir(ASSET, shard) / HISTORY_FILE)
    assert history.column("link_rot_rate").to_pylist()[0] == 0.0
    assert history.num_rows == 2 and history.column("dead").to_pylist()[1] == dead
    assert "| checked at |" in meta["history"]
    assert meta["history_plot"].startswith("![history](data:image/png;base64,")
    assert meta["history_plot_path"] == str(history_plot(health["lake"], shard))


def test_each_subset_share_still_downloadable_follows_its_kept_rows(health):
    lake = health["lake"]
    shares = {
        r["strategy"]: r for r in pq.read_table(lake.root / SUBSET_ASSET / SUBSET_FILE).to_pylist()
    }
    gone = set(health["record"]["dead"]) | set(health["record"]["replaced"])
    for strategy, row in shares.items():
        decisions = pq.read_table(lake.partition_dir("subset", strategy) / "decisions.parquet")
        uids, keeps = (decisions.column(c).to_pylist() for c in ("uid", "keep"))
        kept = {u for u, k in zip(uids, keeps, strict=True) if k}
        checked = kept & {
            c["uid"]
            for f in lake.asset_files(ASSET, CHECKS_FILE)
            for c in pq.read_table(f, columns=["uid"]).to_pylist()
        }
        assert row["checked"] == len(checked)
        assert row["downloadable"] == len(checked - gone)
    assert min(r["downloadable_share"] for r in shares.values()) < 1.0
    meta = _metadata(health["after"][-1], "subset_health")
    assert meta["strategies"] == len(shares)
    assert meta["health_per_shard"].startswith("![health_per_shard](data:image/png;base64,")


def history_plot(lake, shard: str):
    return lake.partition_dir(ASSET, shard) / HISTORY_PLOT
