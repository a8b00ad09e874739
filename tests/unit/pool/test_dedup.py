"""URL dedup across shards: exact decisions, pool-order rule, idempotence, uid repeats."""

import duckdb
import pytest

from poolsieve.pool import registry
from poolsieve.pool.dedup import dedup_shards
from poolsieve.pool.ingest import ingest_shard
from tests.conftest import row, uid, write_datacomp

A = [  # shard a (seq 0)
    row(1, url="http://site.com/cat.jpg"),
    row(2, url="http://site.com/dog.jpg"),
    row(3, url="HTTP://Site.COM:80/cat.jpg#x"),  # same normalized URL as row 1, same shard
    row(4, url="http://site.com/owl.jpg"),
]
B = [  # shard b (seq 1)
    row(10, url="http://site.com/cat.jpg"),  # exact repeat of a's row 1
    row(2, url="http://other.com/new.jpg"),  # uid 2 already in shard a
    row(11, url="http://site.com/dog.jpg/?utm_source=feed"),  # normalization-only repeat of a/2
    row(12, url="http://site.com/emu.jpg"),
]
C = [  # shard c (seq 2)
    row(4, url="http://site.com/yak.jpg"),  # uid 4 repeats a/3: dropped as duplicate_uid
    row(20, url="http://site.com/yak.jpg"),  # first *uid-first* row with yak.jpg: kept
    row(21, url="http://site.com/emu.jpg"),
]
EXPECTED = {
    "a": [
        (0, uid(1), True, None, None),
        (1, uid(2), True, None, None),
        (2, uid(3), False, "duplicate_url", uid(1)),
        (3, uid(4), True, None, None),
    ],
    "b": [
        (0, uid(10), False, "duplicate_url", uid(1)),
        (1, uid(2), False, "duplicate_uid", uid(2)),
        (2, uid(11), False, "duplicate_url", uid(2)),
        (3, uid(12), True, None, None),
    ],
    "c": [
        (0, uid(4), False, "duplicate_uid", uid(4)),
        (1, uid(20), True, None, None),
        (2, uid(21), False, "duplicate_url", uid(12)),
    ],
}
SEQ = {"a": 0, "b": 1, "c": 2}


@pytest.fixture
def shards(tmp_path):
    return {
        k: write_datacomp(tmp_path / "src" / f"{k}.parquet", rows)
        for k, rows in {"a": A, "b": B, "c": C}.items()
    }


def _ingest(conn, lake, shards, key):
    return ingest_shard(conn, lake, key, SEQ[key], str(shards[key]))


def _decisions(lake, key):
    path = lake.partition_dir("url_dedup", key) / "decisions.parquet"
    return duckdb.sql(
        f"SELECT row_idx, uid, keep, reason, duplicate_of FROM '{path}' ORDER BY row_idx"
    ).fetchall()


def test_exact_decisions(conn, lake, shards):
    for key in "abc":
        _ingest(conn, lake, shards, key)
    results = dedup_shards(conn, lake, ["a", "b", "c"])
    for key in "abc":
        assert _decisions(lake, key) == EXPECTED[key]
        assert results[key].conserved
    assert results["b"].reasons == {"duplicate_uid": 1, "duplicate_url": 2}
    assert results["b"].rows_kept == 1


@pytest.mark.parametrize("order", ["abc", "cba", "bca", "cab"])
def test_materialization_order_does_not_matter(conn, lake, shards, order):
    for key in order:  # ingest in this order...
        _ingest(conn, lake, shards, key)
    for key in order:  # ...and decide one shard at a time in the same order
        dedup_shards(conn, lake, [key])
    for key in "abc":
        assert _decisions(lake, key) == EXPECTED[key]


def test_later_shards_do_not_change_earlier_decisions(conn, lake, shards):
    _ingest(conn, lake, shards, "a")
    dedup_shards(conn, lake, ["a"])
    before = _decisions(lake, "a")
    _ingest(conn, lake, shards, "b")
    _ingest(conn, lake, shards, "c")
    dedup_shards(conn, lake, ["a"])
    assert _decisions(lake, "a") == before == EXPECTED["a"]


def test_rematerializing_any_shard_is_idempotent(conn, lake, shards):
    for key in "abc":
        _ingest(conn, lake, shards, key)
    dedup_shards(conn, lake, ["a", "b", "c"])
    for key in "bca":
        _ingest(conn, lake, shards, key)
        dedup_shards(conn, lake, [key])
        for other in "abc":
            assert _decisions(lake, other) == EXPECTED[other]
    records = registry.shard_records(lake)
    assert {s: r["rows"] for s, r in records.items()} == {"a": 4, "b": 4, "c": 3}
    files = sorted(p.name for p in (lake.root / "url_registry").rglob("*.parquet"))
    named = {f"{s}.{r['version']}.parquet" for s, r in records.items()}
    assert set(files) == named  # one version per shard: re-ingesting left nothing behind


def test_changed_shard_replaces_its_registry_rows(conn, lake, shards, tmp_path):
    for key in "ab":
        _ingest(conn, lake, shards, key)
    # shard a is rewritten without cat.jpg: b's copy of cat.jpg is now the first one
    write_datacomp(shards["a"], [row(2, url="http://site.com/dog.jpg")])
    _ingest(conn, lake, shards, "a")
    dedup_shards(conn, lake, ["b"])
    assert _decisions(lake, "b")[0] == (0, uid(10), True, None, None)


def test_deciding_an_unknown_shard_fails_clearly(conn, lake, shards):
    _ingest(conn, lake, shards, "a")
    with pytest.raises(LookupError, match=r"\['zz'\] are not ingested"):
        dedup_shards(conn, lake, ["zz"])


def test_a_shard_with_no_rows_is_ingested_and_deduped_like_any_other(conn, lake, tmp_path):
    empty = write_datacomp(tmp_path / "src" / "empty.parquet", [])
    quarantined = write_datacomp(tmp_path / "src" / "bad.parquet", [row(1, url=None)])
    later = write_datacomp(tmp_path / "src" / "later.parquet", [row(2)])
    for seq, (key, path) in enumerate([("empty", empty), ("bad", quarantined), ("later", later)]):
        ingest_shard(conn, lake, key, seq, str(path))
    results = dedup_shards(conn, lake, ["empty", "bad", "later"])
    assert [(r.rows_in, r.rows_kept) for r in results.values()] == [(0, 0), (0, 0), (1, 1)]
    assert {"empty", "bad"} <= results["later"].registered_shards
    decisions = results["empty"].files["decisions"]
    assert duckdb.sql(
        "SELECT count(*) FROM read_parquet($p)", params={"p": decisions}
    ).fetchall() == [(0,)]
