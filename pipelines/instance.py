"""The Dagster instance the CLI records its runs in (``$DAGSTER_HOME``, default ./.dagster_home).

Two things make it safe to share between processes on one machine:

- **First use under a lock.** Creating an instance creates its storage (SQLite's tables and
  their migration stamp); two processes doing it at once on a new home collide
  (``table runs already exists``). ``get_instance`` creates it, and writes ``dagster.yaml``,
  holding an exclusive ``fcntl`` lock on ``$DAGSTER_HOME/.poolsieve-instance.lock``.
- **Runs whose process died are failed at the next start.** The CLI's runs execute in its own
  process (``execute_in_process``), so nothing outside it reports a run that was SIGKILLed: it
  would stay STARTED for ever (and the backfill it belongs to REQUESTED: pipelines.backfill).
  Each CLI run carries ``run_tags()`` (pid, host, the process's
  start time); ``get_instance`` marks an unfinished run as FAILURE when its process on this
  host is gone (or the pid now belongs to another process), saying so in the run's log. Runs
  without these tags (launched by a daemon or the UI) and runs of other hosts are left to
  Dagster's run monitoring (``run_monitoring`` in dagster.yaml; docs/configuration.md).
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psutil

from poolsieve.paths import instance_settings

PID_TAG = "poolsieve/pid"
HOST_TAG = "poolsieve/host"
PROCESS_START_TAG = "poolsieve/process_start"
LOCK_FILE = ".poolsieve-instance.lock"
#: statuses of a run that has not ended; a run in one of them whose process is gone never will
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def dagster_home() -> Path:
    """``$DAGSTER_HOME``, set to ./.dagster_home when unset (Dagster reads the variable)."""
    return Path(os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / ".dagster_home")))


def get_instance() -> dg.DagsterInstance:
    """The instance at $DAGSTER_HOME: created (with poolsieve's dagster.yaml when it has none)
    under the home's lock, then swept of this host's runs whose process is gone."""
    home = dagster_home()
    with home_lock(home):
        _write_settings_once(home)
        instance = dg.DagsterInstance.get()
        for run_id, pid in fail_orphaned_runs(instance):
            print(
                f"poolsieve: run {run_id} marked failed: the process running it (pid {pid}) "
                "is gone",
                file=sys.stderr,
            )
        for backfill_id, pid in _fail_orphaned_backfills(instance):
            print(
                f"poolsieve: backfill {backfill_id} marked failed: the process running it "
                f"(pid {pid}) is gone",
                file=sys.stderr,
            )
    return instance


@contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``home`` (waits for other processes holding it)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_settings_once(home: Path) -> None:
    settings = home / "dagster.yaml"
    if not settings.exists():
        partial = home / f".dagster.yaml.{os.getpid()}.tmp"
        partial.write_text(instance_settings())
        partial.replace(settings)


def run_tags() -> dict[str, str]:
    """Tags naming the process a run executes in: this one (the CLI runs jobs in process)."""
    me = psutil.Process()
    return {
        PID_TAG: str(me.pid),
        HOST_TAG: socket.gethostname(),
        PROCESS_START_TAG: f"{me.create_time():.3f}",
    }


def process_alive(tags: dict[str, str]) -> bool:
    """Whether the process named by ``run_tags`` (on this host) still runs: the pid exists, is
    not a zombie, and started when the tags say (a reused pid is another process)."""
    try:
        proc = psutil.Process(int(tags[PID_TAG]))
        started = proc.create_time()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    recorded = tags.get(PROCESS_START_TAG)
    return recorded is None or abs(started - float(recorded)) < 1.0


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """Mark FAILURE every unfinished run that this host's CLI started in a process now gone;
    the (run id, pid) of each. The failure event's message names the pid and host."""
    host = socket.gethostname()
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED, tags={HOST_TAG: host}))
    failed = []
    for run in runs:
        if (
            PID_TAG not in run.tags
            or process_alive(run.tags)
            or not _still_unfinished(instance, run)
        ):
            continue
        pid = run.tags[PID_TAG]
        message = (
            f"the process running it (pid {pid} on {host}) is gone: killed or crashed "
            f"mid-run; marked failed by poolsieve (pid {os.getpid()}) at its next start"
        )
        instance.report_run_failed(run, message=message)
        failed.append((run.run_id, pid))
    return failed


def _fail_orphaned_backfills(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    from poolsieve.pipelines.backfill import fail_orphaned  # it reads this module's tags

    return fail_orphaned(instance)


def _still_unfinished(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Read again: the process may have ended the run just before it exited."""
    now = instance.get_run_by_id(run.run_id)
    return now is not None and now.status in UNFINISHED
