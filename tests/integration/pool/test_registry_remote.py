"""The URL registry on object storage (moto's S3 server on 127.0.0.1): shards ingested on one
machine's working copy are decided on another's, as a lake in a folder decides them, and a
re-ingest on one is what the other reads."""

from __future__ import annotations

from poolsieve.duck import DuckSettings, connect
from poolsieve.lake import Lake
from poolsieve.pool import registry
from poolsieve.pool.dedup import dedup_shards
from poolsieve.pool.ingest import ingest_shard
from tests.conftest import row, uid, write_datacomp

SETTINGS = DuckSettings(memory_limit="1GB", threads=2)
ROWS = {
    "a": [row(1, url="http://x.org/1.jpg"), row(2, url="http://x.org/2.jpg")],
    "b": [row(3, url="http://x.org/1.jpg"), row(2, url="http://y.org/9.jpg"), row(4)],
}


def _ingest(lake: Lake, tmp_path, rows: dict) -> None:
    with connect(":memory:", SETTINGS) as conn:
        for seq, (shard, shard_rows) in enumerate(rows.items()):
            path = write_datacomp(tmp_path / "source" / shard / "f.parquet", shard_rows)
            ingest_shard(conn, lake, shard, seq, str(path))


def _decide(lake: Lake) -> list[tuple]:
    with connect(":memory:", SETTINGS) as conn:
        dedup_shards(conn, lake, ["b"])
        path = lake.partition_dir("url_dedup", "b") / "decisions.parquet"
        return conn.execute(
            "SELECT row_idx, reason, duplicate_of FROM read_parquet($p)", {"p": str(path)}
        ).fetchall()


def test_a_shard_ingested_on_one_machine_is_decided_on_another(s3_server, s3_lake_url, tmp_path):
    a = Lake.at(s3_lake_url, tmp_path / "cache_a", s3_server.options)
    b = Lake.at(s3_lake_url, tmp_path / "cache_b", s3_server.options)
    _ingest(a, tmp_path / "a", ROWS)
    assert registry.registered_shards(b) == {"a": 0, "b": 1}
    assert _decide(b) == [
        (0, "duplicate_url", uid(1)),
        (1, "duplicate_uid", uid(2)),
        (2, None, None),
    ]
    # a re-ingested on machine a without the URL b repeats: b's first row is now kept
    _ingest(a, tmp_path / "a2", {"a": [row(2, url="http://x.org/2.jpg")]})
    assert _decide(b) == [(0, None, None), (1, "duplicate_uid", uid(2)), (2, None, None)]
    version = registry.read_record(b, "a")["version"]
    remote = [p for p in a.mirror.glob("url_registry/by_*/*/*") if "/a." in p]
    assert remote and all(p.endswith(f"/a.{version}.parquet") for p in remote)
