"""Exact URL dedup across every shard ever ingested (DuckDB over the URL registry).

Rule (documented order, independent of materialization order): the pool is ordered by
``(shard_seq, row_idx)`` - shards in the order they were registered as partitions (the sensor
registers new files sorted by path), rows in file order. Among rows sharing a normalized URL the
first in pool order whose uid is itself a first occurrence wins; every other row is dropped with
``duplicate_of`` = the winner's uid. A row whose uid already appeared in an earlier shard is
dropped as ``duplicate_uid``. Only earlier rows can beat a row, so deciding shard S reads the
registry rows that share a URL or uid with S and never changes because a later shard arrived or
because shards were materialized in another order. Re-deciding S is idempotent.

The registry (see poolsieve.pool.registry) is filled at ingest; deciding is a read-only query, so its
cost follows the shard: a hash join on 16-byte keys against two integer columns of the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from poolsieve.lake import Lake
from poolsieve.pool import registry
from poolsieve.pool.ingest import write_parquet
from poolsieve.sqlrunner import SqlProject

DEDUP_MODELS = ["url_dedup_decisions"]


@dataclass
class DedupResult:
    shards: list[str]
    rows_in: int
    rows_kept: int
    reasons: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    registered_shards: frozenset[str] = frozenset()  # the shards it was compared against

    @property
    def conserved(self) -> bool:
        return self.rows_in == self.rows_kept + sum(self.reasons.values())


def dedup_shards(
    conn: duckdb.DuckDBPyConnection,
    lake: Lake,
    shards: list[str],
    project: SqlProject | None = None,
) -> dict[str, DedupResult]:
    """Decide every registered row of ``shards`` and write one decisions.parquet per shard."""
    project = project or SqlProject()
    registry.ensure_registry(conn)
    known = registry.registered_shards(conn)
    missing = [s for s in shards if s not in known]
    if missing:
        raise LookupError(f"shards {missing} are not ingested (not in the URL registry)")
    project.run(conn, DEDUP_MODELS, {"url_registry": "url_registry"}, {"shards": list(shards)})
    counts = _decision_counts(conn)
    registered = _registered_counts(conn, shards)
    results = {}
    for shard in shards:
        per = dict(counts.get(shard, {}))
        kept = per.pop("keep", 0)
        path = _write_shard_decisions(conn, lake, shard)
        results[shard] = DedupResult(
            [shard], registered.get(shard, 0), kept, per, {"decisions": path}, frozenset(known)
        )
    return results


def _decision_counts(conn: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        "SELECT shard, coalesce(reason, 'keep'), count(*) FROM \"url_dedup_decisions\" GROUP BY ALL"
    ).fetchall()
    counts: dict[str, dict[str, int]] = {}
    for shard, reason, n in rows:
        counts.setdefault(shard, {})[reason] = n
    return counts


def _registered_counts(conn: duckdb.DuckDBPyConnection, shards: list[str]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT shard, count(*) FROM url_registry WHERE list_contains($s, shard) GROUP BY shard",
        {"s": list(shards)},
    ).fetchall()
    return dict(rows)


def _write_shard_decisions(conn: duckdb.DuckDBPyConnection, lake: Lake, shard: str) -> str:
    return write_parquet(
        conn,
        'SELECT * FROM "url_dedup_decisions" WHERE shard = $s ORDER BY row_idx',
        lake.partition_dir("url_dedup", shard) / "decisions.parquet",
        {"s": shard},
    )
