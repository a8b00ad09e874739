"""The lake's paths: literal file names for DuckDB, partitions without a crash's leftovers."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poolsieve.audit.report import lake_counts
from poolsieve.lake import Lake, literal_path


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("/lake/a.parquet", "/lake/a.parquet"),
        ("/src/part-*.parquet", "/src/part-[*].parquet"),
        ("/src/a?b[1].parquet", "/src/a[?]b[[]1].parquet"),
        ("s3://bucket/d{1,2}.parquet", "s3://bucket/d{1,2}.parquet"),
    ],
)
def test_literal_path_escapes_exactly_the_glob_characters(path, pattern):
    assert literal_path(path) == pattern


def _write(path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table({"reason": [None] * rows}, schema=pa.schema([("reason", pa.string())])), path
    )


def test_hidden_temporary_folders_are_not_partitions(tmp_path):
    lake = Lake(tmp_path / "lake[1]")  # a glob character in the lake's own path, too
    _write(lake.partition_dir("pool_shard", "s0.parquet") / "rows.parquet", 3)
    _write(lake.root / "pool_shard" / ".s0.parquet.0123abcd.tmp" / "rows.parquet", 5)
    files = lake.asset_files("pool_shard", "rows.parquet")
    assert len(files) == 1
    assert duckdb.sql("SELECT count(*) FROM read_parquet($p)", params={"p": files}).fetchall() == [
        (3,)
    ]
    assert lake_counts(lake.root)["dedup"]["keep"] == 3
    assert lake.asset_files("url_dedup", "decisions.parquet") == []
