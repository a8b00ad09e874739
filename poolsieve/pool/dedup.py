"""Exact URL dedup across every shard ever ingested (DuckDB over the URL registry's files).

Rule (documented order, independent of materialization order): the pool is ordered by
``(shard_seq, row_idx)`` - shards in the order the lake enrolled them (the sensor enrols new files
sorted by path), rows in file order. Among rows sharing a normalized URL the first in pool order
whose uid is itself a first occurrence wins; every other row is dropped with ``duplicate_of`` =
the winner's uid. A row whose uid already appeared in an earlier shard is dropped as
``duplicate_uid``. Only earlier rows can beat a row, so deciding shard S reads the registry rows
that share a URL or uid with S and never changes because a later shard arrived or because shards
were materialized in another order. Re-deciding S is idempotent.

The registry (poolsieve.pool.registry) is filled at ingest, one folder per bucket group; deciding
is read-only and runs one join per group (dbt_like_sql/dedup/): for each URL group S has rows in,
the group's rows sharing a URL with S (``dedup_url_rows``); for each uid group those rows' uids
fall in, the uids more than one shard holds (``dedup_uid_repeats``); then the decisions over
those two small tables (``url_dedup_decisions``). Any DuckDB connection will do (an in-memory one
is enough): the groups' joins need only the group's files, so any worker can run one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from poolsieve.lake import Lake
from poolsieve.pool import registry
from poolsieve.pool.ingest import write_parquet
from poolsieve.sqlrunner import SqlProject

DEDUP_MODELS = ["dedup_url_rows", "dedup_uid_repeats", "url_dedup_decisions"]
#: what the groups' joins add up to (TEMP tables of the connection), and their columns
URL_ROWS = "dedup_url_rows_all"
UID_REPEATS = "dedup_uid_repeats_all"
COLLECTED = {
    URL_ROWS: "shard VARCHAR, shard_seq INTEGER, row_idx BIGINT, url_key UHUGEINT, "
    "uid_key UHUGEINT, uid_hi UBIGINT, uid_lo UBIGINT, uid_group USMALLINT",
    UID_REPEATS: "uid_hi UBIGINT, uid_lo UBIGINT, first_seq INTEGER",
}
#: a shard re-ingested while another is decided removes the files the decider's records name:
#: the decider reads the records again and redoes its joins, this many times at most
ATTEMPTS = 3


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
    records = _decide(conn, lake, shards, project)
    counts = _decision_counts(conn)
    results = {}
    for shard in shards:
        per = dict(counts.get(shard, {}))
        kept = per.pop("keep", 0)
        path = _write_shard_decisions(conn, lake, shard)
        rows_in = records[shard]["rows"]
        results[shard] = DedupResult(
            [shard], rows_in, kept, per, {"decisions": path}, frozenset(records)
        )
    return results


def _decide(conn, lake: Lake, shards: list[str], project: SqlProject) -> dict[str, dict]:
    """Build ``url_dedup_decisions`` in ``conn``; returns the shard records it was built from."""
    for attempt in range(ATTEMPTS):
        records = registry.shard_records(lake)
        missing = [s for s in shards if s not in records]
        if missing:
            raise LookupError(f"shards {missing} are not ingested (not in the URL registry)")
        try:
            _collect_url_rows(conn, lake, records, shards, project)
            _collect_uid_repeats(conn, lake, records, project)
        except duckdb.IOException:
            if attempt == ATTEMPTS - 1 or records == registry.shard_records(lake):
                raise  # not a record that changed under us
            continue
        sources = {"url_rows": URL_ROWS, "uid_repeats": UID_REPEATS}
        project.run(conn, ["url_dedup_decisions"], sources, {"shards": list(shards)})
        return records
    raise AssertionError("unreachable")


def _collect_url_rows(conn, lake: Lake, records: dict, shards: list[str], project) -> None:
    """``URL_ROWS``: for each URL group the decided shards have rows in, the group's registry
    rows that share a URL with them (dedup_url_rows)."""
    _empty(conn, URL_ROWS)
    groups = sorted({g for s in shards for g in records[s]["by_url"]})
    for group in groups:
        _bind(
            conn, "registry_decided", registry.bucket_files(lake, records, "by_url", group, shards)
        )
        _bind(conn, "registry_url_bucket", registry.bucket_files(lake, records, "by_url", group))
        sources = {"decided_bucket": "registry_decided", "url_bucket": "registry_url_bucket"}
        project.run(conn, ["dedup_url_rows"], sources, {})
        conn.execute(f'INSERT INTO "{URL_ROWS}" BY NAME SELECT * FROM "dedup_url_rows"')


def _collect_uid_repeats(conn, lake: Lake, records: dict, project) -> None:
    """``UID_REPEATS``: for each uid group the URL rows' uids fall in, those uids held by more
    than one registry row, with the first shard holding each (dedup_uid_repeats)."""
    _empty(conn, UID_REPEATS)
    groups = conn.execute(f'SELECT DISTINCT uid_group FROM "{URL_ROWS}" ORDER BY 1').fetchall()
    for (group,) in groups:
        _bind(conn, "registry_uid_bucket", registry.bucket_files(lake, records, "by_uid", group))
        sources = {"uid_bucket": "registry_uid_bucket", "url_rows": URL_ROWS}
        project.run(conn, ["dedup_uid_repeats"], sources, {"group": group})
        conn.execute(f'INSERT INTO "{UID_REPEATS}" BY NAME SELECT * FROM "dedup_uid_repeats"')


def _empty(conn, table: str) -> None:
    conn.execute(f'CREATE OR REPLACE TEMP TABLE "{table}" ({COLLECTED[table]})')


def _bind(conn, name: str, files: list[str]) -> None:
    """``files`` (parquet, literal paths) as relation ``name`` of this connection only (a
    registered view: never one in the lake's catalog)."""
    if not files:  # a record names a group its files are not in: the registry is damaged
        raise FileNotFoundError(f"{name}: no registry file for a group a shard's record names")
    conn.register(name, conn.read_parquet(files))


def _decision_counts(conn: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        "SELECT shard, coalesce(reason, 'keep'), count(*) FROM \"url_dedup_decisions\" GROUP BY ALL"
    ).fetchall()
    counts: dict[str, dict[str, int]] = {}
    for shard, reason, n in rows:
        counts.setdefault(shard, {})[reason] = n
    return counts


def _write_shard_decisions(conn: duckdb.DuckDBPyConnection, lake: Lake, shard: str) -> str:
    return write_parquet(
        conn,
        'SELECT * FROM "url_dedup_decisions" WHERE shard = $s ORDER BY row_idx',
        lake.partition_dir("url_dedup", shard) / "decisions.parquet",
        {"s": shard},
    )
