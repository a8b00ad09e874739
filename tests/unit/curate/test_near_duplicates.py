"""Near-duplicate images by pHash and by embedding (SemDeDup), over a lake's files written here:
which image is dropped, which one it names, pool order, and the per-shard files."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from poolsieve.curate.near_duplicates import (
    ASSET,
    RESULT_FILE,
    ClusterSpill,
    NearDupSettings,
    cluster_duplicates,
    find_near_duplicates,
)
from poolsieve.duck import DuckSettings, connect
from poolsieve.images.hashes import phash64, read_copy_features
from poolsieve.images.pixel_features import copy_embedding
from poolsieve.lake import Lake
from poolsieve.sqlrunner import SqlProject, column_test_failures


def _write(path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _shard(lake: Lake, shard: str, uids: list[str], phashes: list, emb, clusters: list) -> None:
    """The files near_duplicates reads for one shard: rows, hashes, embeddings, clusters."""
    folder = lambda asset: lake.root / asset / shard  # noqa: E731
    _write(
        folder("pool_shard") / "rows.parquet", pa.table({"uid": uids, "row_idx": range(len(uids))})
    )
    _write(
        folder("image_hashes") / "hashes.parquet",
        pa.table({"uid": uids, "phash": pa.array(phashes, pa.int64())}),
    )
    emb = np.asarray(emb, np.float32)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), emb.shape[1])
    _write(
        folder("clip_embeddings") / "embeddings.parquet", pa.table({"uid": uids, "image_emb": flat})
    )
    _write(
        folder("shard_clusters") / "clusters.parquet",
        pa.table({"uid": uids, "image_cluster": pa.array(clusters, pa.int32())}),
    )


def _unit(*v) -> list[float]:
    v = np.asarray(v, np.float64)
    return list(v / np.linalg.norm(v))


@pytest.fixture
def mem():
    with connect(":memory:", DuckSettings(memory_limit="1GB", threads=1)) as conn:
        yield conn


def _found(lake: Lake, shard: str) -> set[tuple]:
    table = pq.read_table(lake.root / ASSET / shard / RESULT_FILE).to_pylist()
    return {(r["uid"], r["rule"], r["duplicate_of"]) for r in table}


def test_later_copies_are_dropped_naming_the_earliest_in_pool_order(lake, mem):
    a = 0x0F0F_0F0F_0F0F_0F0F
    far = 0x7777_0000_FFFF_1234
    # shard s1 comes first in pool order although written second
    _shard(lake, "s0", ["x", "y", "z"], [a ^ 0b11, far, a], [_unit(1, 0, 0)] * 3, [0, 1, 0])
    _shard(lake, "s1", ["p", "q"], [a ^ 0b1, a ^ 0xFF], [_unit(1, 0.01, 0), _unit(0, 1, 0)], [0, 1])
    settings = NearDupSettings(phash_max_distance=2, semantic_threshold=0.99)
    result = find_near_duplicates(mem, lake, {"s1": 0, "s0": 1}, settings)
    # pHash: p (first in pool order) stays; x is 1 bit from p; z has p's neighbour's... z == a is
    # 1 bit from p; y is far from all; q is 7 bits off
    assert {(u, d) for u, r, d in _found(lake, "s0") if r == "phash"} == {("x", "p"), ("z", "p")}
    assert not [r for r in _found(lake, "s1") if r[1] == "phash"]
    # semantic: p, x, z share cluster 0 and one direction: x and z name p; y (cluster 1) and q
    # (cluster 1, orthogonal) stay
    assert {(u, d) for u, r, d in _found(lake, "s0") if r == "semantic"} == {("x", "p"), ("z", "p")}
    assert result.dropped == {"phash": 2, "semantic": 2}
    assert result.images == 5 and result.embedded == 5 and result.clusters == 2
    assert result.failures == []  # the models' YAML tests on this output
    image_rows = SqlProject().model("image_rows")
    assert column_test_failures(mem, image_rows, "image_rows") == []


def test_identical_hashes_name_the_first_and_a_shard_file_is_kept_when_unchanged(lake, mem):
    blank = 0
    _shard(lake, "s0", ["a", "b", "c"], [blank] * 3, [_unit(1, 0)] * 3, [0, 0, 0])
    settings = NearDupSettings(phash_max_distance=0, semantic_threshold=0)
    first = find_near_duplicates(mem, lake, {"s0": 0}, settings)
    assert _found(lake, "s0") == {("b", "phash", "a"), ("c", "phash", "a")}
    assert first.written == ["s0"] and first.dropped["semantic"] == 0
    again = find_near_duplicates(mem, lake, {"s0": 0}, settings)
    assert again.unchanged == ["s0"] and again.written == []


def test_a_shard_without_hashes_or_clusters_is_named_not_fatal(lake, mem):
    _shard(lake, "s0", ["a"], [1], [_unit(1, 0)], [0])
    (lake.root / "image_hashes" / "s0" / "hashes.parquet").unlink()
    (lake.root / "shard_clusters" / "s0" / "clusters.parquet").unlink()
    settings = NearDupSettings(semantic_threshold=0.9)
    result = find_near_duplicates(mem, lake, {"s0": 0}, settings)
    assert result.without_hashes == ["s0"] and result.without_clusters == ["s0"]
    assert _found(lake, "s0") == set()


def test_settings_refuse_values_that_cannot_mean_near_duplicates():
    with pytest.raises(ValueError, match="over 32 bits"):
        NearDupSettings(phash_max_distance=40)
    with pytest.raises(ValueError, match="not in"):
        NearDupSettings(semantic_threshold=1.5)
    with pytest.raises(ValueError, match="semantic_features 'dino'"):
        NearDupSettings(semantic_features="dino")
    with pytest.raises(ValueError, match="semantic_probes 0"):
        NearDupSettings(semantic_probes=0)


def _centroids(lake: Lake, centroids) -> None:
    folder = lake.root / "image_centroids"
    folder.mkdir(parents=True)
    np.save(folder / "centroids.npy", np.asarray(centroids, np.float32))
    (folder / "exemplar_clusters.json").write_text('{"source": "scorer"}')


def _semantic(mem, lake, **settings) -> set[tuple]:
    settings = NearDupSettings(phash_max_distance=-1, semantic_threshold=0.95, **settings)
    find_near_duplicates(mem, lake, {"s0": 0}, settings)
    return {(u, d) for u, _, d in _found(lake, "s0")}


def test_more_probes_find_a_copy_across_a_cluster_border_once(lake, mem):
    """a and its copy b sit either side of the border between clusters 0 and 1 (their CLIP
    embeddings), c is b's copy too in cluster 1: with 1 probe only c-b match; with 2, b names
    a (the earliest) in one row although both clusters hold the pair."""
    emb = [_unit(1, 0.9, 0), _unit(0.9, 1, 0), _unit(0.85, 1, 0), _unit(0, 0, 1)]
    _shard(lake, "s0", ["a", "b", "c", "d"], [1, 2, 3, 4], emb, [0, 1, 1, 2])
    _centroids(lake, [_unit(1, 0, 0), _unit(0, 1, 0), _unit(0, 0, 1)])
    assert _semantic(mem, lake) == {("c", "b")}
    assert _semantic(mem, lake, semantic_probes=2) == {("b", "a"), ("c", "a")}
    rows = pq.read_table(lake.root / ASSET / "s0" / RESULT_FILE).to_pylist()
    assert sorted(r["uid"] for r in rows) == ["b", "c"]  # one row per dropped uid


def test_pixel_features_match_copies_the_clip_embeddings_do_not(lake, mem):
    """The CLIP embeddings of a and its copy b are orthogonal; image_hashes' copy features
    (pixel_features.copy_embedding of the pictures) match them and no third picture."""
    rng = np.random.default_rng(1)
    picture = Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    other = Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    copy = picture.point(lambda v: min(255, int(v * 1.1)))  # re-exposed
    emb = [_unit(1, 0, 0), _unit(0, 1, 0), _unit(0, 0, 1)]
    _shard(lake, "s0", ["a", "b", "c"], [1, 2, 3], emb, [0, 0, 0])
    np.save(
        lake.root / "image_hashes" / "s0" / "copy_features.npy",
        copy_embedding([picture, copy, other]).astype(np.float16),
    )
    assert _semantic(mem, lake) == set()
    assert _semantic(mem, lake, semantic_features="pixel") == {("b", "a")}


def test_semdedup_in_one_cluster_batches_and_names_the_earliest(tmp_path, monkeypatch):
    from poolsieve.curate import near_duplicates

    monkeypatch.setattr(near_duplicates, "QUERY_BATCH", 2)  # several range searches
    spill = ClusterSpill(tmp_path)
    rng = np.random.default_rng(0)
    base = rng.normal(size=(5, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    copy = base[1] + 0.01 * rng.normal(size=16).astype(np.float32)
    emb = np.vstack([base, copy / np.linalg.norm(copy)])
    keys = [50, 10, 20, 30, 40, 5]  # the copy comes FIRST in pool order
    spill.add(3, ["u0", "u1", "u2", "u3", "u4", "c"], "s", keys, emb)
    rows = cluster_duplicates(spill.load(3), 0.98)
    assert [(r["uid"], r["duplicate_of"]) for r in rows] == [("u1", "c")]
    assert 0 <= rows[0]["distance"] < 0.02


def test_phash_matches_a_resized_copy_and_not_another_picture():
    rng = np.random.default_rng(1)
    picture = Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).resize((256, 256))
    other = Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).resize((256, 256))
    h, copy, far = phash64(picture), phash64(picture.resize((200, 200))), phash64(other)
    assert bin((h ^ copy) & (2**64 - 1)).count("1") <= 2
    assert bin((h ^ far) & (2**64 - 1)).count("1") > 16


def test_copy_features_out_of_step_with_the_hashes_are_refused_naming_the_shard(lake):
    _shard(lake, "s0", ["a", "b"], [1, 2], [_unit(1, 0), _unit(0, 1)], [0, 0])
    folder = lake.root / "image_hashes" / "s0"
    np.save(folder / "copy_features.npy", np.zeros((1, 4), np.float16))  # one row for two
    with pytest.raises(ValueError, match="image_hashes/s0: copy_features.npy has 1 rows for 2"):
        read_copy_features(lake, "s0")
