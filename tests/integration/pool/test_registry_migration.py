"""A lake whose URL registry, pool order and shard identity were tables of its DuckDB catalog is
migrated to the registry's lake files once, on first use, and decides as before."""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest

from poolsieve.duck import DuckSettings, connect
from poolsieve.lake import Lake
from poolsieve.pool import registry
from poolsieve.pool.dedup import dedup_shards
from poolsieve.pool.ingest import ingest_shard
from tests.conftest import row, write_datacomp
from tests.integration.pool.single_file_registry import fill_from_lake

SETTINGS = DuckSettings(memory_limit="1GB", threads=2)
#: the catalog tables besides url_registry, as the single-file registry's code made them
SHARDS_DDL = """CREATE TABLE shard_registry (
    shard VARCHAR NOT NULL, shard_seq INTEGER NOT NULL, rows BIGINT NOT NULL)"""
SHARDS_SHA_DDL = "ALTER TABLE shard_registry ADD COLUMN IF NOT EXISTS source_sha256 VARCHAR"
ORDER_DDL = """CREATE TABLE shard_order (
    shard VARCHAR PRIMARY KEY, shard_seq INTEGER NOT NULL UNIQUE, source VARCHAR)"""
SHARDS = {"a.parquet": 0, "b.parquet": 1, "c.parquet": 2}
ROWS = {
    "a.parquet": [row(1, url="http://x.org/1.jpg"), row(2), row(3, url="http://x.org/3.jpg")],
    "b.parquet": [row(4, url="http://x.org/1.jpg"), row(2, url="http://y.org/2.jpg"), row(5)],
    "c.parquet": [row(6, url="http://x.org/3.jpg"), row(5, url="http://z.org/5.jpg")],
}


@pytest.fixture
def ingested(tmp_path) -> Lake:
    """The pool ingested and decided by the current code: the expected lake."""
    lake = Lake(tmp_path / "new")
    with connect(":memory:", SETTINGS) as conn:
        for shard, seq in SHARDS.items():
            path = write_datacomp(tmp_path / "source" / shard, ROWS[shard])
            ingest_shard(conn, lake, shard, seq, str(path))
        dedup_shards(conn, lake, list(SHARDS))
    return lake


def _old_catalog(lake: Lake, source: Lake, order=True, shards=True) -> None:
    """``lake``'s catalog with the single-file registry's tables holding what ``source`` holds."""
    lake.root.mkdir(parents=True)
    with connect(lake.catalog, SETTINGS) as conn:
        fill_from_lake(conn, source, SHARDS)
        if shards:
            conn.execute(SHARDS_DDL)
            conn.execute(SHARDS_SHA_DDL)
            conn.execute(
                "INSERT INTO shard_registry SELECT shard, shard_seq, count(*), "
                "'ab' || shard_seq || repeat('0', 61) FROM url_registry GROUP BY ALL"
            )
        if order:
            conn.execute(ORDER_DDL)
            conn.execute(
                "INSERT INTO shard_order SELECT shard, shard_seq, '/pool' FROM shard_registry"
            )
            conn.execute("INSERT INTO shard_order VALUES ('d.parquet', 3, '/pool')")


def _tables(lake: Lake) -> list[str]:
    with duckdb.connect(str(lake.catalog), read_only=True) as conn:
        return [t for (t,) in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()]


def _decide(lake: Lake) -> dict[str, bytes]:
    with connect(":memory:", SETTINGS) as conn:
        dedup_shards(conn, lake, list(SHARDS))
    return {
        s: (lake.partition_dir("url_dedup", s) / "decisions.parquet").read_bytes() for s in SHARDS
    }


def test_a_catalog_registry_is_migrated_once_and_decides_as_before(tmp_path, ingested):
    old = Lake(tmp_path / "old")
    _old_catalog(old, ingested)
    assert registry.pool_order(old) == [*SHARDS, "d.parquet"]  # first use: migrated
    assert _tables(old) == []
    assert registry.registered_shards(old) == SHARDS
    rows = {s: r["rows"] for s, r in registry.shard_records(old).items()}
    assert rows == {"a.parquet": 3, "b.parquet": 3, "c.parquet": 2}
    assert registry.check_content(old, "b.parquet", "ab1" + "0" * 61, replace=False)
    with pytest.raises(registry.ShardIdentityError, match="content changed"):
        registry.check_content(old, "b.parquet", "ff" * 32, replace=False)
    assert _decide(old) == _decide(ingested)
    # the registry files equal those the current code wrote for the same rows and order
    for side in registry.SIDES:
        assert sorted((old.root / "url_registry" / side).rglob("*.parquet")) and [
            p.read_bytes() for p in sorted((old.root / "url_registry" / side).rglob("*.parquet"))
        ] == [
            p.read_bytes()
            for p in sorted((ingested.root / "url_registry" / side).rglob("*.parquet"))
        ]
    assert registry.enroll(old, "/pool", ["e.parquet"]) == {"e.parquet": 4}
    # once: a catalog given the old tables again is not read again
    with connect(old.catalog, SETTINGS) as conn:
        conn.execute(SHARDS_DDL)
    assert registry.pool_order(old) == [*SHARDS, "d.parquet", "e.parquet"]
    assert _tables(old) == ["shard_registry"]


def test_a_catalog_from_before_pool_order_keeps_its_order_and_loses_clashing_numbers(
    tmp_path, lake
):
    with connect(lake.catalog, SETTINGS) as conn:
        fill_from_lake(conn, lake, {})
        conn.execute(SHARDS_DDL)  # no source_sha256 yet, no shard_order
        conn.execute(
            "INSERT INTO shard_registry VALUES ('x', 0, 1), ('y', 0, 1), ('z', 1, 0)"
        )  # two Dagster instances gave x and y the number 0
        conn.execute("INSERT INTO url_registry VALUES ('x', 0, 0, 1, 1, 0), ('y', 0, 0, 1, 2, 0)")
    assert registry.enroll(lake, "/s", ["w"]) == {"w": 3}
    assert registry.pool_order(lake) == ["x", "y", "z", "w"]
    assert registry.registered_shards(lake) == {"x": 0, "y": 1, "z": 2}
    assert registry.check_content(lake, "x", "ab" * 32, replace=False) is None
    order = json.loads((lake.root / "url_registry" / "shard_order.json").read_text())
    assert [e["source"] for e in order["shards"]] == [None, None, None, "/s"]
    registry.enroll(lake, "/s", ["x"])  # the first source to enrol a migrated name owns it
    with pytest.raises(registry.ShardIdentityError, match="'x' \\(from /s\\)"):
        registry.enroll(lake, "/t", ["x"])
    with connect(":memory:", SETTINGS) as conn:  # y's uid 2 and x's uid 1 share one URL
        results = dedup_shards(conn, lake, ["y"])
    assert results["y"].reasons == {"duplicate_url": 1}


def test_a_catalog_from_before_shard_registry_knows_its_shards_from_their_rows(lake):
    with connect(lake.catalog, SETTINGS) as conn:
        fill_from_lake(conn, lake, {})
        conn.execute(
            "INSERT INTO url_registry VALUES ('x', 0, 0, 1, 1, 0), ('y', 1, 0, 2, 2, 0), "
            "('y', 1, 1, 3, 3, 0)"
        )
    assert registry.registered_shards(lake) == {"x": 0, "y": 1}
    assert {s: r["rows"] for s, r in registry.shard_records(lake).items()} == {"x": 1, "y": 2}
    assert _tables(lake) == []


def test_a_migration_cut_short_is_redone_whole(tmp_path, ingested):
    old = Lake(tmp_path / "old")
    _old_catalog(old, ingested)
    shutil.copy(old.catalog, tmp_path / "catalog-before.duckdb")
    registry.pool_order(old)
    # killed before its marker (layout.json) and before the tables were dropped, one record
    # not written yet
    (old.root / "url_registry" / "layout.json").unlink()
    (old.root / "url_registry" / "shards" / "b.parquet.json").unlink()
    shutil.copy(tmp_path / "catalog-before.duckdb", old.catalog)
    assert registry.registered_shards(old) == SHARDS
    assert _tables(old) == []
    assert _decide(old) == _decide(ingested)


def test_a_catalog_with_a_pool_order_and_nothing_ingested_keeps_its_order(lake):
    with connect(lake.catalog, SETTINGS) as conn:
        conn.execute(ORDER_DDL)
        conn.execute("INSERT INTO shard_order VALUES ('p', 0, '/s'), ('q', 1, '/s')")
    assert registry.enroll(lake, "/s", ["r", "q"]) == {"r": 2, "q": 1}
    assert registry.pool_order(lake) == ["p", "q", "r"]
    assert registry.registered_shards(lake) == {}
    assert _tables(lake) == []
