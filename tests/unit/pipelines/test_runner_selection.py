"""The runner's curation loop in metadata mode: which jobs run, in which order, per selection."""

from __future__ import annotations

from types import SimpleNamespace

import dagster as dg
import pytest
from poolsieve.pipelines import runner
from poolsieve.pipelines.partitions import SHARDS, STRATEGIES


def _instance() -> dg.DagsterInstance:
    """A real (in-memory) instance: the partitioned jobs' runs are recorded as backfills."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SHARDS.name, ["a.parquet", "b.parquet"])
    return instance


@pytest.fixture
def calls(monkeypatch, lake):
    ran = []
    monkeypatch.setattr(runner, "_clusters", lambda session: [])
    monkeypatch.setattr(
        runner, "_run_one", lambda job, instance, key, *a, **k: ran.append((job.name, key)) or True
    )
    monkeypatch.setattr(
        runner,
        "_run_each",
        lambda job, instance, keys, *a, **k: ran.append((job.name, keys)) or [],
    )
    board = SimpleNamespace(markdown=lambda: "")
    monkeypatch.setattr("poolsieve.curate.leaderboard.build_leaderboard", lambda s, n: board)
    (lake.root / "url_dedup" / "a.parquet").mkdir(parents=True)  # b.parquet: not ingested
    return ran


DEFS = SimpleNamespace(resolve_job_def=lambda name: SimpleNamespace(name=name))


def _session(lake):
    """--force: every step runs (what is up to date is tests/e2e/test_incremental_run.py's)."""
    return runner.Session(DEFS, _instance(), lake, plan=None)


def test_metadata_mode_stops_at_the_subsets_by_default(calls, lake):
    assert runner._curate(_session(lake), True) == []
    assert [job for job, _ in calls] == ["features_job", "subset_job"]


def test_selected_downloads_then_trains_only_the_chosen_strategies(calls, lake):
    assert runner._curate(_session(lake), True, ("selected", ["basic"])) == []
    assert calls[1:] == [
        ("subset_job", STRATEGIES.get_partition_keys()),
        ("selection_job", [None]),
        ("selected_images_job", ["a.parquet"]),
        ("training_job", ["basic"]),
        ("leaderboard_job", [None]),
    ]


def test_all_trains_every_strategy(calls, lake):
    runner._curate(_session(lake), True, ("all", ["basic"]))
    assert ("training_job", STRATEGIES.get_partition_keys()) in calls


def test_download_mode_is_unchanged(calls, lake):
    runner._curate(_session(lake), False, ("selected", ["basic"]))
    assert [job for job, _ in calls] == [
        "features_job",
        "subset_job",
        "training_job",
        "leaderboard_job",
    ]
