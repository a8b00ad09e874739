"""The CLI's Dagster instance shared by processes: a SIGKILLed `poolsieve run` leaves no run
STARTED for ever, and processes first using a new DAGSTER_HOME at once all get it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from poolsieve.pipelines.instance import (
    HOST_TAG,
    PID_TAG,
    PROCESS_START_TAG,
    fail_orphaned_runs,
    run_tags,
)

from poolsieve.paths import instance_settings
from tests.conftest import row, write_datacomp

POOLSIEVE = str(Path(sys.executable).parent / "poolsieve")


def _wait_for(predicate, what: str, limit: float = 120.0, every: float = 0.05):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {limit:.0f}s waiting for {what}")


def _started_run(instance: dg.DagsterInstance) -> dg.DagsterRun | None:
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    return runs[0] if runs else None


def test_a_run_killed_mid_step_is_marked_failed_at_the_next_start(tmp_path, source_dir):
    for s in range(3):
        write_datacomp(source_dir / f"s{s}.parquet", [row(s * 1000 + i) for i in range(200)])
    home, log = tmp_path / "home", tmp_path / "first.log"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    args = [POOLSIEVE, "run", "--source", str(source_dir), "--lake", str(tmp_path / "lake")]
    args += ["--job", "ingest_job"]
    with open(log, "w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        # the instance exists once the shards are registered; then wait for a run in a step
        _wait_for(lambda: "shards in" in log.read_text(), "the shards to be registered")
        instance = dg.DagsterInstance.from_config(str(home))
        killed = _wait_for(lambda: _started_run(instance), "a STARTED run")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert killed.tags[PID_TAG] == str(proc.pid), killed.tags
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.STARTED

    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"run {killed.run_id} marked failed" in again.stderr
    assert f"(pid {proc.pid}) is gone" in again.stderr
    run = instance.get_run_by_id(killed.run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    failure = instance.all_logs(killed.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert len(failure) == 1
    assert f"the process running it (pid {proc.pid} on " in failure[0].dagster_event.message
    unfinished = [r.run_id for r in instance.get_runs() if not r.is_finished]
    assert unfinished == []


def _add_run(instance, status, tags) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name="ingest_job", run_id=run_id, status=status, tags=tags))
    return run_id


def test_only_unfinished_runs_of_a_gone_process_on_this_host_are_failed(instance):
    """The sweep fails a run whose pid now belongs to another process (a different start time)
    and leaves runs of live processes, of other hosts, without tags, or already ended."""
    mine = run_tags()
    reused = {**mine, PROCESS_START_TAG: str(float(mine[PROCESS_START_TAG]) - 3600)}
    started = dg.DagsterRunStatus.STARTED
    runs = {
        "reused pid": _add_run(instance, started, reused),
        "reused pid, not started": _add_run(instance, dg.DagsterRunStatus.NOT_STARTED, reused),
        "alive": _add_run(instance, started, mine),
        "other host": _add_run(instance, started, {**reused, HOST_TAG: "elsewhere.invalid"}),
        "no tags (daemon)": _add_run(instance, started, {}),
        "ended": _add_run(instance, dg.DagsterRunStatus.SUCCESS, reused),
    }
    failed = fail_orphaned_runs(instance)
    assert sorted(run_id for run_id, _ in failed) == sorted(
        [runs["reused pid"], runs["reused pid, not started"]]
    )
    status = {name: instance.get_run_by_id(run_id).status for name, run_id in runs.items()}
    assert status == {
        "reused pid": dg.DagsterRunStatus.FAILURE,
        "reused pid, not started": dg.DagsterRunStatus.FAILURE,
        "alive": started,
        "other host": started,
        "no tags (daemon)": started,
        "ended": dg.DagsterRunStatus.SUCCESS,
    }
    assert fail_orphaned_runs(instance) == []


# each process imports, says it is ready, waits for the others, then opens the instance
FIRST_USE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from poolsieve.pipelines.instance import get_instance
    ready, n = Path(sys.argv[1]), int(sys.argv[2])
    (ready / sys.argv[3]).touch()
    deadline = time.monotonic() + 120
    while len(list(ready.iterdir())) < n and time.monotonic() < deadline:
        time.sleep(0.001)
    instance = get_instance()
    instance.get_runs(limit=1)
    instance.get_dynamic_partitions("shards")
    """
)


@pytest.mark.parametrize("attempt", range(5))
def test_processes_first_using_a_new_home_at_once_all_get_the_instance(tmp_path, attempt):
    """Without the lock about one try in three crashes (``table runs already exists`` or a
    UNIQUE constraint on the migration stamp); five tries of three processes."""
    home, ready, n = tmp_path / "home", tmp_path / "ready", 3
    ready.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_USE, str(ready), str(n), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    outcomes = [(p.wait(timeout=180), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    crashed = [err[-1500:] for rc, err in outcomes if rc != 0]
    assert not crashed, crashed
    assert (home / "dagster.yaml").read_text() == instance_settings()
