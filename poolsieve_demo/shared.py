"""One demo image server shared by every run that needs it, stopped by PID when the last leaves.

Why: in the Dagster UI a backfill downloads several shards at once, each in its own process, and
every shard's URLs name the same port (the world's base URL). So the server cannot belong to one
step. ``shared_demo_server(world, lock_dir)`` is the lifecycle each user wraps its work in:

1. take a *shared* flock on ``lock_dir/demo-server.lock`` (held while the work runs);
2. under a short exclusive ``start`` lock: if a server of *this* world answers /_health, use it;
   otherwise start one, detached, so it may outlive this process;
3. on exit, try to convert the lock to *exclusive* without waiting: success means no other
   user holds it, so this one stops the server (SIGTERM to the PID /_health reported, verified
   to be this world's server) and waits until the port is free.

A crashed user releases its flock with its process; the server then exits on its own after
``IDLE_EXIT_S`` without requests, so nothing is left running for long.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from poolsieve_demo.server import DemoImageServer, health, port_in_use

IDLE_EXIT_S = 600.0
STOP_WAIT_S = 10.0
LOCK_FILE = "demo-server.lock"
START_LOCK_FILE = "demo-server.start.lock"


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases its lock


def _ours(world_root: Path, url: str) -> dict | None:
    """/_health of a demo server at ``url`` serving ``world_root`` (None if absent or another)."""
    answer = health(url)
    if answer is None:
        return None
    if answer.get("root") != str(world_root.resolve()):
        raise RuntimeError(
            f"{url} is already served by a demo server of another world ({answer.get('root')}, "
            f"pid {answer.get('pid')}); stop it or give this world another base URL"
        )
    return answer


def port_problem(world_root: Path, port: int) -> str | None:
    """Why this world's server cannot have 127.0.0.1:``port`` (None: the port is free, or this
    world's server already answers there)."""
    answer = health(f"http://127.0.0.1:{port}")
    if answer is not None:
        if answer.get("root") == str(Path(world_root).resolve()):
            return None
        return (
            f"127.0.0.1:{port} is served by the demo server of another world "
            f"({answer.get('root')}, pid {answer.get('pid')})"
        )
    return f"127.0.0.1:{port} is in use by another process" if port_in_use(port) else None


def ensure_started(world_root: Path, port: int, lock_dir: Path) -> int:
    """The PID of this world's server on ``port``, starting a detached one if none answers."""
    url = f"http://127.0.0.1:{port}"
    with _flock(lock_dir / START_LOCK_FILE, fcntl.LOCK_EX):
        answer = _ours(world_root, url)
        if answer is not None:
            return int(answer["pid"])
        server = DemoImageServer(world_root, port, detached_idle_exit=IDLE_EXIT_S).start()
        return server.pid


def stop_pid(world_root: Path, port: int) -> bool:
    """SIGTERM this world's server on ``port`` (by the PID it reports) and wait for the port."""
    url = f"http://127.0.0.1:{port}"
    answer = _ours(world_root, url)
    if answer is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(answer["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while health(url) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def shared_demo_server(world_root: str | Path, port: int, lock_dir: str | Path) -> Iterator[int]:
    """Run the body with this world's server up; yields its PID (see the module doc)."""
    world_root, lock_dir = Path(world_root), Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    with _flock(lock_dir / LOCK_FILE, fcntl.LOCK_SH) as fd:
        pid = ensure_started(world_root, port, lock_dir)
        try:
            yield pid
        finally:
            if _try_exclusive(fd):
                stop_pid(world_root, port)


def _try_exclusive(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
