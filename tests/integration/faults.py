"""Killing the CLI as the OOM killer would, and reading what it left: helpers of test_faults.py.

``kill_when(argv, env, moment)`` starts ``poolsieve`` in a subprocess, waits (bounded) until
``moment()`` is true, then SIGKILLs that process only (not its process group: its children get
no signal from us) and reports which of its descendants outlived it and whether the lake changed
after it died. ``lake_state`` / ``temporaries`` / ``digests`` read a lake.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

#: how long a killed CLI's descendants may take to go: torch's DataLoader workers (the
#: embedding's, the trainer's) notice a dead parent within 5 s (MP_STATUS_CHECK_INTERVAL)
CHILD_WAIT_S = 20.0
POLL_S = 0.1
#: the demo image server is detached by design: shared by every run on the world, it stops
#: when its last user leaves or after idling (poolsieve_demo/shared.py); it writes nothing
SHARED_SERVER = "poolsieve_demo.server"
TMP_NAME = re.compile(r"^\..*\.tmp$")


@dataclass
class Kill:
    """One SIGKILLed CLI: its pid, exit status, output, and what it left running or changed."""

    pid: int
    returncode: int
    output: str
    survivors: list[str] = field(default_factory=list)
    lake_changed_after_kill: list[str] = field(default_factory=list)


def kill_when(
    argv: list[str],
    env: dict,
    moment: Callable[[psutil.Process], bool],
    lake: Path,
    log: Path,
    deadline_s: float = 600.0,
) -> Kill:
    """Run ``argv``; SIGKILL it as soon as ``moment(process)`` holds (polled every 0.1 s)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    me = psutil.Process(proc.pid)
    end = time.monotonic() + deadline_s
    try:
        while not moment(me):
            if proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"the moment never came: {log.read_text()[-3000:]}")
            time.sleep(POLL_S)
        children = me.children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    at_kill = lake_state(lake)
    survivors = outlived(children, CHILD_WAIT_S)
    after = lake_state(lake)
    changed = sorted(p for p in at_kill.keys() | after.keys() if at_kill.get(p) != after.get(p))
    return Kill(proc.pid, proc.returncode, log.read_text(), survivors, changed)


def outlived(children: list[psutil.Process], wait_s: float) -> list[str]:
    """Those of ``children`` (but the shared demo server) still running after ``wait_s``."""
    watched = [c for c in children if SHARED_SERVER not in _cmdline(c)]
    end = time.monotonic() + wait_s
    alive = watched
    while alive and time.monotonic() < end:
        time.sleep(POLL_S)
        alive = [c for c in alive if _running(c)]
    report = [f"pid {c.pid}: {_cmdline(c)}" for c in alive]
    for child in alive:  # reported by the test; not left behind by it
        child.kill()
    return report


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())[:300]
    except psutil.Error:
        return "?"


def runs_program(proc: psutil.Process, text: str) -> bool:
    """Whether a descendant of ``proc`` has ``text`` in its command line."""
    return any(text in _cmdline(child) for child in proc.children(recursive=True))


def lake_state(lake: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file and folder of the lake but the demo world and the locks."""
    state = {}
    for path in lake.rglob("*"):
        rel = path.relative_to(lake)
        if rel.parts[0] in ("demo", "locks"):
            continue
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        state[str(rel)] = (st.st_size if path.is_file() else 0, st.st_mtime_ns)
    return state


def temporaries(root: Path) -> list[str]:
    """Every temporary name (``.….tmp``) anywhere under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if TMP_NAME.match(p.name))


def digests(lake: Path) -> dict[str, str]:
    """sha256 of every file of the lake but the demo world, the locks and DuckDB's spill, with
    the lake's own path masked (some files name it: where the trusted set or a checkpoint is)."""
    mask = str(lake).encode()
    return {
        str(p.relative_to(lake)): hashlib.sha256(
            p.read_bytes().replace(mask, b"<lake>")
        ).hexdigest()
        for p in sorted(lake.rglob("*"))
        if p.is_file() and p.relative_to(lake).parts[0] not in ("demo", "locks", "duckdb_tmp")
    }
