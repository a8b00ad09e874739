"""URL normalization for Python callers: a thin wrapper over the ``normalize_url`` SQL macro.

The rules live in exactly one place, ``dbt_like_sql/macros/normalize_url.sql``; this module runs
that macro in an in-memory DuckDB so Python code (the CLI, tests, pool generators) gets the
same answer as the staging SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import duckdb

from poolsieve.sqlrunner import SqlProject


@lru_cache(maxsize=1)
def _conn() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    SqlProject().load_macros(conn)
    return conn


def normalize_url(url: str | None) -> str | None:
    """The normalized form of one URL, or None when it cannot be parsed."""
    return _conn().execute("SELECT normalize_url($u)", {"u": url}).fetchall()[0][0]


def normalize_urls(urls: Iterable[str | None]) -> list[str | None]:
    """Normalize many URLs in one vectorized query (order preserved)."""
    import pyarrow as pa

    table = pa.table({"u": pa.array(list(urls), type=pa.string())})
    conn = _conn().cursor()
    conn.register("poolsieve_urls_in", table)
    rows = conn.execute("SELECT normalize_url(u) FROM poolsieve_urls_in").fetchall()
    return [r[0] for r in rows]
