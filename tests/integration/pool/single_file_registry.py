"""The reference: the URL registry as it was before it became lake files - one DuckDB table of
every registered row - and the dedup SQL that ran over it, verbatim (commit fd2100e). The
bucket-partitioned registry must decide exactly as this did, byte for byte."""

from __future__ import annotations

from pathlib import Path

import duckdb

from poolsieve.lake import Lake
from poolsieve.pool.ingest import write_parquet

#: the single-file registry's table (poolsieve/pool/registry.py at fd2100e)
REGISTRY_DDL = """
CREATE TABLE url_registry (
    shard VARCHAR NOT NULL,
    shard_seq INTEGER NOT NULL,
    row_idx BIGINT NOT NULL,
    url_key UHUGEINT NOT NULL,
    uid_key UHUGEINT NOT NULL,
    bucket USMALLINT NOT NULL
)
"""

#: dbt_like_sql/dedup/url_dedup_decisions.sql at fd2100e, its source() set to the table
DECISIONS_SQL = """
WITH batch AS (
    SELECT shard, shard_seq, row_idx, url_key, uid_key
    FROM url_registry
    WHERE list_contains($shards, shard)
),
url_rows AS (  -- every registered row sharing a URL with the batch (the batch included)
    SELECT shard_seq, row_idx, url_key, uid_key
    FROM url_registry
    WHERE url_key IN (SELECT url_key FROM batch)
),
uid_repeats AS (  -- uids held by more than one shard, with the first shard holding each
    SELECT uid_key, min(shard_seq) AS first_seq
    FROM url_registry
    WHERE uid_key IN (SELECT uid_key FROM url_rows)
    GROUP BY uid_key
    HAVING count(*) > 1
),
url_candidates AS (  -- url_rows whose uid is a first occurrence
    SELECT u.*
    FROM url_rows u
    LEFT JOIN uid_repeats r ON r.uid_key = u.uid_key
    WHERE r.first_seq IS NULL OR r.first_seq = u.shard_seq
),
url_winner AS (  -- URLs held by more than one candidate row, with the first such row
    SELECT
        url_key,
        arg_min(uid_key, (shard_seq::BIGINT << 40) + row_idx) AS winner_uid_key,
        min((shard_seq::BIGINT << 40) + row_idx) AS winner_order
    FROM url_candidates
    GROUP BY url_key
    HAVING count(*) > 1
),
decided AS (
    SELECT
        b.shard,
        b.row_idx,
        b.uid_key,
        CASE
            WHEN r.first_seq < b.shard_seq THEN 'duplicate_uid'
            WHEN w.winner_order < (b.shard_seq::BIGINT << 40) + b.row_idx THEN 'duplicate_url'
        END AS reason,
        CASE
            WHEN r.first_seq < b.shard_seq THEN b.uid_key
            WHEN w.winner_order < (b.shard_seq::BIGINT << 40) + b.row_idx THEN w.winner_uid_key
        END AS duplicate_of_key
    FROM batch b
    LEFT JOIN uid_repeats r ON r.uid_key = b.uid_key
    LEFT JOIN url_winner w ON w.url_key = b.url_key
)
SELECT
    shard,
    row_idx,
    lower(lpad(to_hex(uid_key), 32, '0')) AS uid,
    reason IS NULL AS keep,
    reason,
    lower(lpad(to_hex(duplicate_of_key), 32, '0')) AS duplicate_of
FROM decided
"""


def fill_from_lake(conn: duckdb.DuckDBPyConnection, lake: Lake, seqs: dict[str, int]) -> None:
    """The single-file registry of what ``lake`` holds: every shard's valid rows (its
    pool_shard rows.parquet) keyed as staging keys them (the project's macros)."""
    conn.execute(REGISTRY_DDL)
    for shard, seq in seqs.items():
        rows = lake.partition_dir("pool_shard", shard) / "rows.parquet"
        conn.execute(
            "INSERT INTO url_registry SELECT $s, $seq, row_idx, url_key(url_norm), "
            "uid_key(uid), (url_key(url_norm) >> 118)::USMALLINT FROM read_parquet($p)",
            {"s": shard, "seq": seq, "p": str(rows)},
        )


def reference_decisions(
    conn: duckdb.DuckDBPyConnection, shards: list[str], out: Path
) -> dict[str, Path]:
    """Each shard's decisions.parquet as the single-file registry's dedup wrote it."""
    conn.execute("CREATE OR REPLACE TEMP TABLE decided AS " + DECISIONS_SQL, {"shards": shards})
    return {
        shard: Path(
            write_parquet(
                conn,
                "SELECT * FROM decided WHERE shard = $s ORDER BY row_idx",
                out / f"{shard}.parquet",
                {"s": shard},
            )
        )
        for shard in shards
    }
