"""The URL registry: every valid row ever ingested, keyed for dedup, in the DuckDB catalog.

One row per (shard, row_idx): the 128-bit key of the normalized URL (``url_key``), the uid as a
128-bit integer (``uid_key``) and the shard's position in pool order (``shard_seq``). Ingesting a
shard replaces exactly that shard's rows, so re-ingesting is idempotent.

Pool order and shard identity live here, with the lake, not with a Dagster instance:
``shard_order`` gives every shard name the lake has seen its sequence number (the next free one,
in the order names are enrolled) and the source it came from; ``shard_registry`` records each
ingested shard with the sha256 of the file it was ingested from. So two Dagster instances on one
lake share one pool order, a second source with the same file names is refused (its files are
other files), and a file whose content changed under a known name is replaced only when the run
says so (:class:`ShardIdentityError` otherwise).

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
#: catalogs written before shard identity was recorded gain the column (NULL: not known yet)
SHARDS_SHA_DDL = "ALTER TABLE shard_registry ADD COLUMN IF NOT EXISTS source_sha256 VARCHAR"

#: pool order: one row per shard name the lake has seen, with the source it belongs to
ORDER_DDL = """
CREATE TABLE IF NOT EXISTS shard_order (
    shard VARCHAR PRIMARY KEY,
    shard_seq INTEGER NOT NULL UNIQUE,
    source VARCHAR
)
"""


class ShardIdentityError(ValueError):
    """A file is not the one the lake knows under its shard name; the message says which."""


def ensure_registry(conn: duckdb.DuckDBPyConnection) -> None:
    for ddl in (REGISTRY_DDL, SHARDS_DDL, SHARDS_SHA_DDL, ORDER_DDL):
        conn.execute(ddl)


def enroll(conn: duckdb.DuckDBPyConnection, source: str, shards: list[str]) -> dict[str, int]:
    """shard -> pool sequence number for ``shards`` of ``source``, giving names the lake has not
    seen the next numbers in the order given. A name already enrolled from another source raises
    ShardIdentityError naming both sources (nothing is enrolled then). One transaction: runs that
    enroll at the same time get distinct numbers."""
    ensure_registry(conn)
    conn.execute("BEGIN TRANSACTION")
    try:
        _adopt_legacy_order(conn)
        known = _order_rows(conn, shards)
        _refuse_other_sources(known, source)
        new = [s for s in dict.fromkeys(shards) if s not in known]
        first = conn.execute("SELECT coalesce(max(shard_seq) + 1, 0) FROM shard_order").fetchall()[
            0
        ]
        if new:
            conn.executemany(
                "INSERT INTO shard_order VALUES ($1, $2, $3)",
                [(s, first[0] + i, source) for i, s in enumerate(new)],
            )
        conn.execute(
            "UPDATE shard_order SET source = $src WHERE source IS NULL AND list_contains($s, shard)",
            {"src": source, "s": list(shards)},
        )
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return {s: seq for s, (seq, _) in _order_rows(conn, shards).items()}


def _order_rows(conn: duckdb.DuckDBPyConnection, shards: list[str]) -> dict[str, tuple]:
    rows = conn.execute(
        "SELECT shard, shard_seq, source FROM shard_order WHERE list_contains($s, shard)",
        {"s": list(shards)},
    ).fetchall()
    return {shard: (seq, source) for shard, seq, source in rows}


def _refuse_other_sources(known: dict[str, tuple], source: str) -> None:
    clash = {s: src for s, (_, src) in known.items() if src is not None and src != source}
    if clash:
        shown = ", ".join(f"{s!r} (from {src})" for s, src in sorted(clash.items())[:5])
        raise ShardIdentityError(
            f"source {source}: {len(clash)} file name(s) are shards of another source in this "
            f"lake: {shown}. Their rows would replace that source's rows; use another lake, or "
            "rename the files"
        )


def _adopt_legacy_order(conn: duckdb.DuckDBPyConnection) -> None:
    """A catalog from before shard_order: its shards are enrolled in the order they were
    ingested, numbered 0.. (two Dagster instances may have given two shards one number), and the
    registry's rows take those numbers. Runs once, while shard_order is empty."""
    if conn.execute("SELECT count(*) FROM shard_order").fetchall()[0][0]:
        return
    conn.execute(
        "INSERT INTO shard_order SELECT shard, row_number() OVER (ORDER BY seq, shard) - 1, NULL "
        "FROM (SELECT shard, min(shard_seq) AS seq FROM (SELECT shard, shard_seq FROM "
        "shard_registry UNION SELECT DISTINCT shard, shard_seq FROM url_registry) GROUP BY shard)"
    )
    for table in ("url_registry", "shard_registry"):
        conn.execute(
            f"UPDATE {table} t SET shard_seq = o.shard_seq FROM shard_order o "
            "WHERE o.shard = t.shard AND o.shard_seq <> t.shard_seq"
        )


def check_content(
    conn: duckdb.DuckDBPyConnection, shard: str, source_sha256: str, replace: bool
) -> str | None:
    """The sha256 ``shard`` was last ingested from (None: never, or not recorded). A different
    file under the shard's name raises ShardIdentityError unless ``replace``."""
    ensure_registry(conn)
    row = conn.execute(
        "SELECT source_sha256 FROM shard_registry WHERE shard = $s", {"s": shard}
    ).fetchall()
    previous = row[0][0] if row else None
    if previous not in (None, source_sha256) and not replace:
        raise ShardIdentityError(
            f"shard {shard!r}: the source file's content changed since it was ingested "
            f"(sha256 {previous[:12]}... then, {source_sha256[:12]}... now). Re-ingesting would "
            "replace its rows: run with --replace-changed (the refresh schedule and sensor do so "
            "for files they saw change), or give the new file a new name"
        )
    return previous


def replace_shard(
    conn: duckdb.DuckDBPyConnection,
    shard: str,
    shard_seq: int,
    rows: str,
    source_sha256: str | None = None,
) -> int:
    """Replace ``shard``'s registry rows with those of relation ``rows`` (ingested from a file
    with ``source_sha256``); returns rows registered."""
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
        rows = _record_shard(conn, shard, shard_seq, source_sha256)
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return rows


def _record_shard(
    conn: duckdb.DuckDBPyConnection, shard: str, shard_seq: int, source_sha256: str | None
) -> int:
    """Record ``shard`` as ingested with its registered row count; returns that count."""
    conn.execute("DELETE FROM shard_registry WHERE shard = $s", {"s": shard})
    return conn.execute(
        "INSERT INTO shard_registry (shard, shard_seq, rows, source_sha256) "
        "SELECT $s, $seq, count(*), $sha FROM url_registry WHERE shard = $s RETURNING rows",
        {"s": shard, "seq": shard_seq, "sha": source_sha256},
    ).fetchall()[0][0]


def record_source(conn: duckdb.DuckDBPyConnection, shard: str, source_sha256: str) -> None:
    """Record the sha256 of the file ``shard`` was ingested from (its content identity)."""
    conn.execute(
        "UPDATE shard_registry SET source_sha256 = $sha WHERE shard = $s",
        {"s": shard, "sha": source_sha256},
    )


def registered_shards(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """shard -> shard_seq for every ingested shard (catalogs written before shard_registry
    existed know their shards from their rows)."""
    ensure_registry(conn)
    query = "SELECT shard, shard_seq FROM shard_registry"
    if not _registry_rows_recorded(conn):
        query += " UNION SELECT DISTINCT shard, shard_seq FROM url_registry"
    return dict(conn.execute(query).fetchall())


def _registry_rows_recorded(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether shard_registry accounts for every url_registry row (replace_shard records a
    shard's count in the transaction that writes its rows), so the registry, which grows with
    the pool, need not be scanned for shards recorded nowhere else. Two counts: no scan."""
    recorded, stored = conn.execute(
        "SELECT (SELECT coalesce(sum(rows), 0) FROM shard_registry), "
        "(SELECT count(*) FROM url_registry)"
    ).fetchall()[0]
    return recorded == stored


def pool_order(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Every shard name the lake has enrolled, in pool order."""
    ensure_registry(conn)
    _adopt_legacy_order(conn)
    order = conn.execute("SELECT shard FROM shard_order ORDER BY shard_seq").fetchall()
    return [shard for (shard,) in order]
