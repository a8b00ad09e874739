"""`make dev`'s launcher (`poolsieve dev`) stops cleanly on SIGTERM, even when it
inherited an ignored SIGINT, as every job a shell starts in the background does.

Without the launcher, `dagster dev` keeps the ignored SIGINT and maps SIGTERM onto it: it ignores
both, and only SIGKILL stops it, leaving its webserver, daemon and code server behind.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time

import pytest

from poolsieve_demo.server import free_port
from tests.dagster_ui import DagsterDev, group_members, processes_with_env
from tests.repo import REPO_ROOT

STOP_WITHIN_S = 90  # dagster dev waits up to 60 s for each child; a clean stop takes a few


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.timeout(600)
def test_dev_launched_with_sigint_ignored_stops_on_sigterm_with_its_children(tmp_path):
    home, lake = tmp_path / "home", tmp_path / "lake"
    home.mkdir()
    shutil.copy(REPO_ROOT / "pipelines" / "dagster.yaml", home / "dagster.yaml")
    env = {"POOLSIEVE_LAKE": str(lake), "NO_ALBUMENTATIONS_UPDATE": "1"}
    dev = DagsterDev(home, free_port(), env, tmp_path / "dagster_dev.log")
    dev.start(preexec_fn=_ignore_sigint)
    try:
        dev.wait_answering()
        group = dev.proc.pid
        assert len(group_members(group)) >= 3, dev.tail()  # dagster dev, webserver, daemon, ...
        started = time.monotonic()
        dev.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            dev.proc.wait(timeout=STOP_WITHIN_S)
        assert dev.proc.poll() is not None, f"still running {STOP_WITHIN_S} s after SIGTERM"
        assert time.monotonic() - started < STOP_WITHIN_S
        deadline = time.monotonic() + 15
        while group_members(group) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert group_members(group) == [], dev.tail()
        assert processes_with_env("DAGSTER_HOME", str(home)) == []  # none left the group either
        assert dev.proc.returncode == 0, dev.tail()
    finally:
        dev.stop(grace=5)  # SIGKILL to the group if the test failed with it still running
