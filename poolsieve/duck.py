"""DuckDB connections with the limits poolsieve always sets (memory_limit, temp_directory, threads).

With a memory limit a large query spills to ``temp_directory`` and finishes instead of taking
several GB (figures: docs/decisions.md). Every connection also gets the project's macros.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from poolsieve.sqlrunner import SqlProject, read_macros


@dataclass(frozen=True)
class DuckSettings:
    """Resource limits for every DuckDB connection poolsieve opens."""

    memory_limit: str = "2GB"
    threads: int = max(1, os.cpu_count() or 1)
    temp_directory: str | None = None  # default: <database dir>/duckdb_tmp
    lock_wait_s: float = 600.0  # another run holding the catalog: wait this long, then fail


def connect(
    database: str | Path = ":memory:",
    settings: DuckSettings = DuckSettings(),
    project: SqlProject | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open ``database`` (waiting, bounded, while another process holds its lock) with limits set."""
    conn = _connect_waiting(str(database), settings.lock_wait_s)
    temp = settings.temp_directory or _default_temp(database)
    Path(temp).mkdir(parents=True, exist_ok=True)
    conn.execute("SET memory_limit = $m", {"m": settings.memory_limit})
    conn.execute("SET temp_directory = $t", {"t": str(temp)})
    conn.execute("SET threads = $n", {"n": settings.threads})
    conn.execute("SET preserve_insertion_order = false")
    conn.execute("SET enable_progress_bar = false")
    macros = project.macro_sql if project is not None else read_macros()
    if macros.strip():  # the macros only: the models and their YAML are not needed to connect
        conn.execute(macros)
    return conn


def _default_temp(database: str | Path) -> str:
    if str(database) == ":memory:":
        return os.path.join(os.environ.get("TMPDIR", "/tmp"), "poolsieve_duckdb_tmp")
    return str(Path(database).resolve().parent / "duckdb_tmp")


def _connect_waiting(database: str, wait_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(database)
        except duckdb.IOException as err:
            if "lock" not in str(err).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
