"""`poolsieve run` launches each partitioned job's runs as one Dagster backfill: recorded in the
instance with every run, its end status, cancellable from the UI, failed when the CLI died, and
found by the UI (GraphQL over the workspace workspace.yaml loads) with each partition's run."""

from __future__ import annotations

import os
import socket
import subprocess

import dagster as dg
import pytest
from poolsieve.pipelines import runner
from poolsieve.pipelines.backfill import BACKFILL_TAG, LOCATION, start_backfill
from poolsieve.pipelines.instance import HOST_TAG, PID_TAG, PROCESS_START_TAG, get_instance
from poolsieve.pipelines.resources import resources_from_env

from poolsieve.audit.dagster_private import backfill_statuses
from tests.conftest import row, write_datacomp
from tests.repo import REPO_ROOT

STATUS = backfill_statuses()
SHARDS = ["s0.parquet", "s1.parquet", "s2.parquet"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _resources(lake, source):
    fields = {"lake_dir": str(lake.root), "source": str(source), "duckdb_threads": 2}
    return resources_from_env(env={}, lake=fields)


def _source(source_dir) -> None:
    for s, name in enumerate(SHARDS):
        write_datacomp(source_dir / name, [row(s * 100 + i) for i in range(20)])


def _only_backfill(instance) -> object:
    backfills = instance.get_backfills()
    assert len(backfills) == 1, [b.backfill_id for b in backfills]
    return backfills[0]


def _backfill_runs(instance, backfill_id: str) -> list:
    return instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))


def test_each_partitioned_job_is_one_backfill_with_a_run_per_shard(home, lake, source_dir):
    _source(source_dir)
    status, _ = runner.run_main_job(_resources(lake, source_dir), "ingest_job")
    assert status == 0
    instance = dg.DagsterInstance.get()
    backfill = _only_backfill(instance)
    assert backfill.status == STATUS.COMPLETED_SUCCESS
    assert backfill.backfill_end_timestamp >= backfill.backfill_timestamp
    assert list(backfill.partition_names) == SHARDS  # pool order
    assert backfill.partition_set_origin.partition_set_name == "ingest_job_partition_set"
    assert backfill.tags[PID_TAG] == str(os.getpid())
    runs = _backfill_runs(instance, backfill.backfill_id)
    assert sorted(r.tags["dagster/partition"] for r in runs) == SHARDS
    assert {r.job_name for r in runs} == {"ingest_job"}
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert len(instance.get_runs()) == len(runs)  # every run of the job is the backfill's


def test_a_failed_shard_completes_the_backfill_as_failed(home, lake, source_dir):
    _source(source_dir)
    resources = _resources(lake, source_dir)
    assert runner.run_main_job(resources, "ingest_job")[0] == 0
    write_datacomp(source_dir / SHARDS[1], [row(999)])  # changed content: its shard fails
    assert runner.run_main_job(resources, "ingest_job")[0] == 1
    instance = dg.DagsterInstance.get()
    latest = instance.get_backfills()[0]
    assert latest.status == STATUS.COMPLETED_FAILED
    assert list(latest.partition_names) == [SHARDS[1]]  # the others were up to date
    [run] = _backfill_runs(instance, latest.backfill_id)
    assert run.status == dg.DagsterRunStatus.FAILURE


def test_cancelling_in_the_ui_stops_the_runs_not_started(home, lake, source_dir, monkeypatch):
    _source(source_dir)
    real_run_one = runner._run_one

    def run_then_cancel(job, instance, key, *args, **kwargs):
        """After the first shard's run, cancel its backfill as the UI does (CANCELING)."""
        ok = real_run_one(job, instance, key, *args, **kwargs)
        backfill = instance.get_backfills()[0]
        instance.update_backfill(backfill.with_status(STATUS.CANCELING))
        return ok

    monkeypatch.setattr(runner, "_run_one", run_then_cancel)
    status, _ = runner.run_main_job(_resources(lake, source_dir), "ingest_job")
    assert status == 1
    instance = dg.DagsterInstance.get()
    backfill = _only_backfill(instance)
    assert backfill.status == STATUS.CANCELED
    runs = _backfill_runs(instance, backfill.backfill_id)
    assert [r.tags["dagster/partition"] for r in runs] == [SHARDS[0]]


def test_a_backfill_whose_cli_died_is_marked_failed_at_the_next_start(home):
    instance = get_instance()
    gone = subprocess.Popen(["true"])
    gone.wait()
    tags = {PID_TAG: str(gone.pid), HOST_TAG: socket.gethostname(), PROCESS_START_TAG: "1.0"}
    dead = start_backfill(instance, "ingest_job", ["a.parquet"], tags, LOCATION)
    mine = start_backfill(instance, "ingest_job", ["b.parquet"], runner.run_tags(), LOCATION)
    instance = get_instance()
    assert instance.get_backfill(dead.backfill_id).status == STATUS.FAILED
    assert instance.get_backfill(mine.backfill_id).status == STATUS.REQUESTED


QUERY = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      numPartitions
      partitionSet { name }
      partitionStatuses { results { partitionName runStatus } }
    }
  }
}
"""


def test_the_ui_finds_the_backfill_and_each_partitions_run(home, lake, source_dir, monkeypatch):
    """What the UI's backfill page asks, against the workspace `dagster dev` serves."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    _source(source_dir)
    monkeypatch.chdir(REPO_ROOT)  # workspace.yaml's working directory, as for `make dev`
    assert runner.run_main_job(_resources(lake, source_dir), "ingest_job")[0] == 0
    instance = dg.DagsterInstance.get()
    backfill_id = _only_backfill(instance).backfill_id
    target = WorkspaceFileTarget(paths=[str(REPO_ROOT / "workspace.yaml")])
    with WorkspaceProcessContext(instance, target) as context:
        result = execute_dagster_graphql(
            context.create_request_context(), QUERY, variables={"id": backfill_id}
        )
    found = result.data["partitionBackfillOrError"]
    assert found["__typename"] == "PartitionBackfill", found
    assert found["status"] == "COMPLETED_SUCCESS"
    assert found["numPartitions"] == len(SHARDS)
    assert found["partitionSet"] == {"name": "ingest_job_partition_set"}
    statuses = {p["partitionName"]: p["runStatus"] for p in found["partitionStatuses"]["results"]}
    assert statuses == dict.fromkeys(SHARDS, "SUCCESS")


def test_an_interrupted_backfill_is_recorded_failed_at_once(home, lake, source_dir, monkeypatch):
    _source(source_dir)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_run_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.run_main_job(_resources(lake, source_dir), "ingest_job")
    assert _only_backfill(dg.DagsterInstance.get()).status == STATUS.FAILED
