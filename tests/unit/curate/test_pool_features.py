"""pool_features: the union of the shards' features with dedup, downloads and clusters, in both
curation modes, on a hand-made two-shard pool (real ingest, dedup and shard_features files)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poolsieve.curate.features import EMPTY, build_pool_features, part_paths
from poolsieve.curate.shard_features import FEATURES_FILE, FeatureSettings, build_shard_features
from poolsieve.images.decontamination import RESULT_FILE, RESULT_SCHEMA
from poolsieve.images.status import STATUS_FILE, STATUS_SCHEMA
from poolsieve.pool.dedup import dedup_shards
from poolsieve.pool.ingest import ingest_shard
from poolsieve.sqlrunner import SqlProject, column_test_failures
from tests.conftest import row, uid, write_datacomp

SHARDS = ["s0.parquet", "s1.parquet"]


def _write(lake, asset, shard, name, rows, schema):
    path = lake.partition_dir(asset, shard) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


@pytest.fixture
def pool(conn, lake, source_dir):
    """s0: uid 1 ("red car\\n": a trailing newline), 2 (uid 1's URL), 3; s1: 10, a second copy of
    uid 3 (duplicate_uid), 12. Ingested, deduped and featured for real."""
    s0 = [
        row(1, text="red car\n", clip_l14_similarity_score=0.4),
        row(2, url="http://img.example.com/1.jpg"),
        row(3, text="ein Hund\u00a0im Park", original_width=50),
    ]
    s1 = [row(10, text=None), row(3, url="http://img.example.com/33.jpg"), row(12)]
    for seq, (shard, rows) in enumerate(zip(SHARDS, [s0, s1], strict=True)):
        ingest_shard(conn, lake, shard, seq, str(write_datacomp(source_dir / shard, rows)))
        dedup_shards(conn, lake, [shard])
        build_shard_features(lake, shard, FeatureSettings("fasttext", ""))
    return lake


def _downloads(lake):
    """Kept uids 1, 3, 12 downloaded (3 at 100 px wide), 10 failed; 1 and 3 embedded; 3 an eval
    near-duplicate. Clusters for s0 only."""
    status = {
        "s0.parquet": [(1, "success", 640), (3, "success", 100)],
        "s1.parquet": [(10, "failed", None), (12, "success", 640)],
    }
    for shard, rows in status.items():
        records = [
            {"uid": uid(i), "status": s, "original_width": w, "original_height": w}
            for i, s, w in rows
        ]
        _write(lake, "shard_images", shard, STATUS_FILE, records, STATUS_SCHEMA)
    embedded = {"s0.parquet": [(1, 0.31), (3, 0.22)], "s1.parquet": []}
    for shard, rows in embedded.items():
        records = [{"uid": uid(i), "clip_score": s} for i, s in rows]
        _write(lake, "clip_embeddings", shard, "embeddings.parquet", records, EMPTY["embeddings"])
        flags = [{"uid": uid(i), "max_similarity": 0.5, "flagged": i == 3} for i, _ in rows]
        _write(lake, "eval_decontamination", shard, RESULT_FILE, flags, RESULT_SCHEMA)
    clusters = [{"uid": uid(1), "image_cluster": 5, "exemplar_cluster": True}]
    clusters.append({"uid": uid(3), "image_cluster": 2, "exemplar_cluster": False})
    _write(lake, "shard_clusters", "s0.parquet", "clusters.parquet", clusters, EMPTY["clusters"])


def _by_uid(conn):
    rel = conn.sql("SELECT * FROM pool_features ORDER BY uid")
    columns = rel.columns
    return {r[0]: dict(zip(columns, r, strict=True)) for r in rel.fetchall()}


def test_download_mode_joins_downloads_clusters_and_the_shards_features(conn, pool):
    _downloads(pool)
    result = build_pool_features(conn, pool, SHARDS, FeatureSettings("fasttext", ""))
    got = _by_uid(conn)
    assert sorted(got) == [uid(i) for i in (1, 2, 3, 10, 12)]  # the uid-3 copy is not a row
    assert {u: r["ineligible_reason"] for u, r in got.items()} == {
        uid(1): None,
        uid(2): "duplicate_url",
        uid(3): "eval_near_duplicate",
        uid(10): "download_failed",
        uid(12): "not_embedded",
    }
    one = got[uid(1)]
    assert (one["caption_words"], one["caption_chars"]) == (2, 8)  # DataComp's rule
    assert (one["language"], one["language_cld3"]) == ("en", None)
    assert one["clip_score"] == pytest.approx(0.31)
    assert one["clip_l14_score"] == pytest.approx(0.4)
    assert one["clip_b32_score"] == pytest.approx(0.3)
    assert (one["image_cluster"], one["exemplar_cluster"]) == (5, True)
    three = got[uid(3)]
    assert (three["caption_words"], three["width"], three["meta_width"]) == (4, 100, 50)
    assert three["shard"] == "s0.parquet"  # the first copy of the uid
    assert (got[uid(12)]["image_cluster"], got[uid(12)]["exemplar_cluster"]) == (None, False)
    assert (got[uid(10)]["caption_words"], got[uid(10)]["caption_chars"]) == (0, 0)
    assert (result.rows, result.eligible, result.unclustered_shards) == (5, 1, ["s1.parquet"])
    assert (result.k, result.exemplar_clusters) == (2, 1)
    assert result.detectors == [("fasttext", "")]
    model = SqlProject().model("pool_features")
    assert column_test_failures(conn, model, "pool_features") == []
    # one part per shard, rows in row_idx order (nullability flags may differ between parts)
    parts = part_paths(result.path)
    assert [p.name for p in parts] == [f"{s}.parquet" for s in SHARDS]
    row_idx = [i for p in parts for i in pq.read_table(p).column("row_idx").to_pylist()]
    assert row_idx == [0, 1, 2, 0, 2]


def test_metadata_mode_needs_no_download_and_only_dedup_makes_ineligible(conn, pool):
    result = build_pool_features(conn, pool, SHARDS, FeatureSettings("fasttext", "", "metadata"))
    got = _by_uid(conn)
    assert {u: r["ineligible_reason"] for u, r in got.items()} == {
        uid(1): None,
        uid(2): "duplicate_url",
        uid(3): None,
        uid(10): None,
        uid(12): None,
    }
    for r in got.values():
        assert r["download_status"] is None and r["clip_score"] is None
        assert r["eval_near_duplicate"] is False and r["image_cluster"] is None
    assert got[uid(3)]["width"] == 50  # the metadata's size
    assert got[uid(1)]["clip_l14_score"] == pytest.approx(0.4)
    assert (result.rows, result.eligible) == (5, 4)
    assert result.unclustered_shards == SHARDS


def test_download_mode_names_the_missing_download_assets(conn, pool):
    with pytest.raises(FileNotFoundError, match=r"shard_images\[s0.parquet\]"):
        build_pool_features(conn, pool, SHARDS, FeatureSettings("fasttext", ""))


def test_a_shard_without_features_is_named(conn, pool):
    (pool.partition_dir("shard_features", "s1.parquet") / FEATURES_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"shard_features\[s1.parquet\]"):
        build_pool_features(conn, pool, SHARDS, FeatureSettings(mode="metadata"))


def test_features_are_read_not_recomputed(conn, pool):
    """pool_features takes each shard's language from its features file: a file edited by hand
    shows through (a pool_features that ran language ID itself would answer 'en')."""
    path = pool.partition_dir("shard_features", "s0.parquet") / FEATURES_FILE
    table = pq.read_table(path)
    languages = pa.array(["xx"] * table.num_rows)
    pq.write_table(
        table.set_column(table.schema.get_field_index("language"), "language", languages), path
    )
    build_pool_features(conn, pool, SHARDS, FeatureSettings(mode="metadata"))
    assert _by_uid(conn)[uid(1)]["language"] == "xx"


def test_features_older_than_their_rows_fail_the_yaml_tests(conn, pool, source_dir):
    """s1 re-ingested with other rows, its shard_features not re-run: its rows have no features
    and the not_null tests say so (never a silently shorter pool)."""
    ingest_shard(
        conn, pool, "s1.parquet", 1, str(write_datacomp(source_dir / "s1b.parquet", [row(40)]))
    )
    dedup_shards(conn, pool, ["s1.parquet"])
    build_pool_features(conn, pool, SHARDS, FeatureSettings(mode="metadata"))
    failures = column_test_failures(conn, SqlProject().model("pool_features"), "pool_features")
    assert "pool_features.caption_words: not_null failed for 1 rows" in failures
