"""On Ray the runner runs a shard job as its phases: every shard's ingest, then the rest."""

from __future__ import annotations

from types import SimpleNamespace

import dagster as dg
from poolsieve.pipelines import runner
from poolsieve.pipelines.backfill import BACKFILL_TAG
from poolsieve.pipelines.execution import Execution
from poolsieve.pipelines.resources import resources_from_env

DEFS = SimpleNamespace(resolve_job_def=lambda name: SimpleNamespace(name=name))


def _session(lake, monkeypatch, fails: dict[str, list[str]]):
    ran = []

    def submit(ray, name, instance, keys, tags=None, stop=None):
        ran.append((name, list(keys), _without_backfill(tags)))
        return [k for k in keys if k in fails.get(name, [])]

    monkeypatch.setattr(runner, "_run_each_on_ray", submit)
    ray = runner.RayRuns(Execution(address="127.0.0.1:1"), resources_from_env({}))
    return runner.Session(DEFS, dg.DagsterInstance.ephemeral(), lake, plan=None, ray=ray), ran


def _without_backfill(tags: dict) -> dict | None:
    """The tags a phase's runs carry besides their backfill's."""
    assert tags[BACKFILL_TAG]
    return {k: v for k, v in tags.items() if k != BACKFILL_TAG} or None


def test_every_shard_is_ingested_before_any_is_deduplicated(lake, monkeypatch):
    session, ran = _session(lake, monkeypatch, {})
    keys = ["a.parquet", "b.parquet", "c.parquet"]
    assert session.shards("shard_job", keys, {"t": "1"}) == []
    assert ran == [("pool_shard_job", keys, {"t": "1"}), ("shard_steps_job", keys, {"t": "1"})]


def test_a_shard_whose_ingest_failed_is_not_run_further_and_is_reported(lake, monkeypatch):
    session, ran = _session(lake, monkeypatch, {"pool_shard_job": ["b.parquet"]})
    keys = ["a.parquet", "b.parquet"]
    assert session.shards("metadata_shard_job", keys) == ["b.parquet"]
    assert ran[1] == ("metadata_shard_steps_job", ["a.parquet"], None)


def test_in_process_the_shard_job_is_one_run_per_shard(lake, monkeypatch):
    ran = []
    monkeypatch.setattr(
        runner, "_run_each", lambda job, instance, keys, *a, **k: ran.append(job.name) or []
    )
    session = runner.Session(DEFS, dg.DagsterInstance.ephemeral(), lake, plan=None)
    assert session.shards("shard_job", ["a.parquet"]) == []
    assert ran == ["shard_job"]
