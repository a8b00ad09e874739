"""The URL registry: every valid row ever ingested, keyed for dedup, in the DuckDB catalog.

One row per (shard, row_idx): the 128-bit key of the normalized URL (``url_key``), the uid as a
128-bit integer (``uid_key``) and the shard's position in pool order (``shard_seq``). Ingesting a
shard replaces exactly that shard's rows, so re-ingesting is idempotent.

Why this shape: with fixed-width keys, deduplicating a new shard is a hash join built on that
shard that reads only two integer columns of the registry, so the work grows with the new shard
(docs/decisions.md). ``bucket`` (top 10 bits of url_key) is the unit for splitting the registry
across workers or disks: all occurrences of one URL live in one bucket.
"""

from __future__ import annotations

import duckdb

REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS url_registry (
    shard VARCHAR NOT NULL,
    shard_seq INTEGER NOT NULL,
    row_idx BIGINT NOT NULL,
    url_key UHUGEINT NOT NULL,
    uid_key UHUGEINT NOT NULL,
    bucket USMALLINT NOT NULL
)
"""


#: one row per ingested shard, rows or not: a shard with no valid row is ingested too
SHARDS_DDL = """
CREATE TABLE IF NOT EXISTS shard_registry (
    shard VARCHAR NOT NULL,
    shard_seq INTEGER NOT NULL,
    rows BIGINT NOT NULL
)
"""


def ensure_registry(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(REGISTRY_DDL)
    conn.execute(SHARDS_DDL)


def replace_shard(conn: duckdb.DuckDBPyConnection, shard: str, shard_seq: int, rows: str) -> int:
    """Replace ``shard``'s registry rows with those of relation ``rows``; returns rows registered."""
    ensure_registry(conn)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute("DELETE FROM url_registry WHERE shard = $s", {"s": shard})
        conn.execute(
            f"""INSERT INTO url_registry
            SELECT $s, $seq, row_idx, url_key, uid_key, (url_key >> 118)::USMALLINT
            FROM "{rows}" """,
            {"s": shard, "seq": shard_seq},
        )
        rows = _record_shard(conn, shard, shard_seq)
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return rows


def _record_shard(conn: duckdb.DuckDBPyConnection, shard: str, shard_seq: int) -> int:
    """Record ``shard`` as ingested with its registered row count; returns that count."""
    conn.execute("DELETE FROM shard_registry WHERE shard = $s", {"s": shard})
    return conn.execute(
        "INSERT INTO shard_registry SELECT $s, $seq, count(*) FROM url_registry WHERE shard = $s "
        "RETURNING rows",
        {"s": shard, "seq": shard_seq},
    ).fetchall()[0][0]


def registered_shards(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """shard -> shard_seq for every ingested shard (catalogs written before shard_registry
    existed know their shards from their rows)."""
    ensure_registry(conn)
    return dict(
        conn.execute(
            "SELECT shard, shard_seq FROM shard_registry "
            "UNION SELECT DISTINCT shard, shard_seq FROM url_registry"
        ).fetchall()
    )
