"""Staleness, proven on a real graph: what an edit or a new shard makes stale, and nothing else.

One module-scoped run on a small demo world (tests/image_world.py): the scorer, two shards,
pool_features, two strategies trained and evaluated, the leaderboard. Then, in order: edit one
filter, add a shard. Staleness is Dagster's own (CachingStaleStatusResolver over the instance's
event log); ``poolsieve.audit.stale`` adds what lies below Dagster's stale frontier.
"""

from __future__ import annotations

import contextlib
import shutil

import dagster as dg
import polars as pl
import pytest
from poolsieve.pipelines.jobs import SHARD_ASSETS
from poolsieve.pipelines.partitions import SHARDS

from poolsieve.audit.stale import observe_filters, stale_report
from poolsieve.paths import default_sql_dir
from tests.image_world import run_job, run_world, shard_digests

TRAINED = ["basic", "no_filter"]
EDITED = "basic"
STRATEGY_ASSETS = ["subset", "train_shards", "clip_model", "evaluation"]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stale")
    sql = tmp / "dbt_like_sql"
    shutil.copytree(default_sql_dir(), sql)  # the copy the test edits
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        env.setenv("POOLSIEVE_SQL_DIR", str(sql))
        state = run_world(tmp / "lake", instance, rows_per_shard=100, training={"samples": 128})
        for strategy in TRAINED:
            state["runs"][strategy] = run_job(state["defs"], instance, "strategy_job", strategy)
        state["runs"]["leaderboard"] = run_job(state["defs"], instance, "leaderboard_job")
        yield {**state, "sql": sql}


def _report(graph):
    return stale_report(graph["instance"], graph["defs"])


def test_a_fresh_graph_has_nothing_stale(graph):
    checked = set()
    for name, result in graph["runs"].items():
        assert result.success, name
        evaluations = result.get_asset_check_evaluations()
        assert all(c.passed for c in evaluations), (name, evaluations)
        checked |= {c.asset_key.to_user_string() for c in evaluations}
    assert set(STRATEGY_ASSETS) | {"scorer", "leaderboard", "pool_shard"} <= checked
    assert observe_filters(graph["defs"], graph["instance"])  # same files: same versions
    report = _report(graph)
    assert report.stale == {} and report.downstream == []
    assert ("subset", "laion") in report.missing  # never materialized is missing, not stale


@contextlib.contextmanager
def _edited(graph, suffix: str, old: str, new: str):
    """The filter's .sql or .yml with ``old`` replaced by ``new``, restored afterwards."""
    path = graph["sql"] / "filters" / f"{EDITED}{suffix}"
    original = path.read_text()
    assert old in original
    path.write_text(original.replace(old, new, 1))
    try:
        yield
    finally:
        path.write_text(original)


def test_editing_one_filter_stales_exactly_that_strategy_and_its_downstream(graph):
    with _edited(graph, ".yml", "min_words: 2", "min_words: 3"):
        assert observe_filters(graph["defs"], graph["instance"])
        report = _report(graph)
    assert set(report.stale) == {("subset", EDITED)}
    assert report.stale[("subset", EDITED)] == [
        "has a new dependency data version (filter_sql[basic])"
    ]
    below = {(a, EDITED) for a in STRATEGY_ASSETS[1:]} | {("leaderboard", None)}
    assert set(report.downstream) == below
    assert observe_filters(graph["defs"], graph["instance"])  # back to the materialized version
    assert _report(graph).stale == {}


def _rerun_subset(graph) -> str:
    """Observe the filters and re-materialize subset[EDITED]; its kept set's sha256."""
    job = graph["defs"].resolve_job_def("strategy_job")
    result = job.execute_in_process(
        partition_key=EDITED,
        instance=graph["instance"],
        asset_selection=[dg.AssetKey("filter_sql"), dg.AssetKey("subset")],
    )
    assert result.success
    event = result.get_asset_materialization_events()[0].materialization
    return event.metadata["subset_npy_sha256"].value


def test_an_edit_that_keeps_the_same_samples_stales_nothing_below_the_subset(graph):
    kept = _rerun_subset(graph)
    with _edited(graph, ".sql", "FROM", "-- a comment changes the SQL, not the kept set\nFROM"):
        assert _rerun_subset(graph) == kept
        assert _report(graph).stale == {}  # the subset is new; its data version is the kept set
    assert _rerun_subset(graph) == kept


def test_rerunning_an_edited_strategy_moves_the_frontier_down_its_own_chain(graph):
    kept = _rerun_subset(graph)
    with _edited(graph, ".yml", "min_words: 2", "min_words: 6"):
        assert _rerun_subset(graph) != kept
        report = _report(graph)
    assert set(report.stale) == {("train_shards", EDITED)}
    assert set(report.downstream) == {
        ("clip_model", EDITED),
        ("evaluation", EDITED),
        ("leaderboard", None),
    }


def test_adding_a_shard_stales_features_and_subsets_but_no_other_shard(graph):
    lake, instance, defs = graph["lake"], graph["instance"], graph["defs"]
    old = list(graph["world"].truth["shards"])
    before = {s: shard_digests(lake, SHARD_ASSETS, s) for s in old}
    new = _write_new_shard(graph)
    instance.add_dynamic_partitions(SHARDS.name, [new])
    assert run_job(defs, instance, "shard_job", new).success
    report = _report(graph)
    assert ("pool_features", None) in report.stale
    for strategy in TRAINED:
        assert {(a, strategy) for a in STRATEGY_ASSETS} <= set(report.to_rerun)
    shard_nodes = {(a, s) for a in SHARD_ASSETS for s in old + [new]}
    assert not shard_nodes & set(report.to_rerun), "no shard asset is stale"
    assert ("scorer", None) not in report.to_rerun
    assert {s: shard_digests(lake, SHARD_ASSETS, s) for s in old} == before


def _write_new_shard(graph) -> str:
    """A third shard: the first shard's rows under new uids and new URLs the server still serves
    (it routes by path and ignores the query), so nothing in it is a duplicate of another shard."""
    world = graph["world"]
    first = world.source_dir / world.truth["shards"][0]
    rows = pl.read_parquet(first).with_columns(
        pl.col("uid").str.reverse().alias("uid"), (pl.col("url") + "?copy=3").alias("url")
    )
    new = "shard_new.parquet"
    rows.write_parquet(world.source_dir / new)
    return new
