"""The partitions of a job that ``poolsieve run`` executes are one Dagster backfill.

``dagster job backfill`` records a backfill, creates its runs and hands them to the instance's
run launcher. The CLI does the same, except that it executes the runs itself (in process, or
their steps on the Ray cluster: pipelines.runner) instead of handing them to a launcher, since
it has no daemon: it records the backfill (every partition already taken, so a daemon that sees
it launches nothing), tags every run with it (``dagster/backfill``), and records how it ended:

- ``COMPLETED_SUCCESS`` when every run succeeded, ``COMPLETED_FAILED`` when one failed;
- ``CANCELED`` when someone cancelled it in the UI (status ``CANCELING``): the CLI starts no
  run after it sees that, and reports the partitions not run as failed;
- ``FAILED`` when the CLI was interrupted (``fail``), or died before the end: then its next
  start says so (``fail_orphaned``), as pipelines.instance does for the runs.

The UI's Backfills tab then shows one row per job of a ``poolsieve run``, with every partition's
run, as for a backfill launched from the UI. The backfill names the code location by the module
the workspace loads (``workspace.yaml``: poolsieve.pipelines.definitions; the demo's
poolsieve_demo.definitions), which is how the UI finds its partition set.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import dagster as dg
from poolsieve.pipelines.instance import HOST_TAG, PID_TAG, process_alive

from poolsieve.audit.dagster_private import backfill_statuses, new_job_backfill, now_timestamp

LOCATION = "poolsieve.pipelines.definitions"
BACKFILL_TAG = "dagster/backfill"


@dataclass
class Backfill:
    """One job's backfill, recorded in ``instance``; ``record`` as last written."""

    instance: dg.DagsterInstance
    record: object

    @property
    def backfill_id(self) -> str:
        return self.record.backfill_id

    @property
    def run_tags(self) -> dict[str, str]:
        """The tags that make a run one of this backfill's (as Dagster's launcher sets them)."""
        return {BACKFILL_TAG: self.backfill_id}

    def canceled(self) -> bool:
        """Whether someone asked (in the UI) to cancel it since it started."""
        status = backfill_statuses()
        now = self.instance.get_backfill(self.backfill_id)
        return now is not None and now.status in (status.CANCELING, status.CANCELED)

    def finish(self, failed: list, canceled: bool) -> None:
        """Record how it ended: cancelled, some run failed, or every run succeeded."""
        status = backfill_statuses()
        if canceled:
            end = status.CANCELED
        else:
            end = status.COMPLETED_FAILED if failed else status.COMPLETED_SUCCESS
        self.record = self.record.with_status(end).with_end_timestamp(now_timestamp())
        self.instance.update_backfill(self.record)

    def fail(self) -> None:
        """Record that it ended without finishing (its process was interrupted)."""
        status = backfill_statuses()
        self.record = self.record.with_status(status.FAILED).with_end_timestamp(now_timestamp())
        self.instance.update_backfill(self.record)


def start_backfill(
    instance: dg.DagsterInstance, job_name: str, keys: list[str], tags: dict, location: str
) -> Backfill:
    """Record a backfill of ``job_name`` over ``keys`` (in this order), its runs to carry
    ``tags`` (the CLI's process tags among them, which ``fail_orphaned`` reads)."""
    record = new_job_backfill(location, job_name, keys, tags)
    instance.add_backfill(record)
    return Backfill(instance, record)


def fail_orphaned(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """Mark FAILED every backfill this host's CLI started in a process now gone (it will not
    record its end); the (backfill id, pid) of each."""
    status, host = backfill_statuses(), socket.gethostname()
    failed = []
    for record in instance.get_backfills(status=status.REQUESTED):
        tags = record.tags or {}
        if tags.get(HOST_TAG) != host or PID_TAG not in tags or process_alive(tags):
            continue
        instance.update_backfill(
            record.with_status(status.FAILED).with_end_timestamp(now_timestamp())
        )
        failed.append((record.backfill_id, tags[PID_TAG]))
    return failed
