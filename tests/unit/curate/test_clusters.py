"""Image clusters: a seeded, order-independent sample; k-means on it; batched assignment; bounded
memory whatever the pool's size."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pyarrow.parquet as pq
import pytest

from poolsieve.clip.encode import EmbedResult
from poolsieve.clip.npz import write_embeddings_parquet
from poolsieve.curate.clusters import (
    CentroidSettings,
    assign_shard,
    build_centroids,
    load_exemplars,
    nearest_centroid,
    sample_embeddings,
    sample_pool,
    shard_embeddings,
    uid_hashes,
    unit,
)
from poolsieve.lake import Lake


def _no_tars(tars):
    raise AssertionError(f"nothing to embed here, got {tars}")


def _write_shard(lake: Lake, shard: str, uids: list[str], emb: np.ndarray) -> None:
    """A clip_embeddings output (embeddings.parquet) for ``shard``."""
    folder = lake.partition_dir("clip_embeddings", shard)
    folder.mkdir(parents=True, exist_ok=True)
    emb16 = emb.astype(np.float16)
    result = EmbedResult(list(uids), list(uids), emb16, emb16, np.zeros(len(uids), np.float32))
    write_embeddings_parquet(result, folder / "embeddings.parquet")


def _pool(rng, shards: int, rows: int, dims: int, centers: int = 6):
    """(shard, uids, emb) per shard: noisy copies of a few directions, uids unique."""
    axes = rng.standard_normal((centers, dims))
    pool = []
    for s in range(shards):
        pick = rng.integers(0, centers, rows)
        emb = axes[pick] + 0.3 * rng.standard_normal((rows, dims))
        uids = [f"{s:04d}{i:028x}" for i in rng.permutation(rows)]
        pool.append((f"part-{s:05d}.parquet", uids, emb.astype(np.float32)))
    return pool


def test_the_sample_is_the_smallest_hashes_whatever_the_batches():
    rng = np.random.default_rng(0)
    pool = _pool(rng, shards=5, rows=300, dims=8)
    whole = sample_embeddings(
        [("all", [u for _, uids, _ in pool for u in uids], np.concatenate([e for *_, e in pool]))],
        size=100,
        seed=3,
    )
    by_shard = sample_embeddings(reversed(pool), size=100, seed=3)
    assert by_shard.rows_read == 1500 and len(by_shard.uids) == 100
    assert by_shard.uids.tolist() == whole.uids.tolist()
    assert np.array_equal(by_shard.emb, whole.emb)
    all_hashes = np.sort(uid_hashes([u for _, uids, _ in pool for u in uids], 3))
    assert np.array_equal(by_shard.hashes, all_hashes[:100])
    assert uid_hashes(["a", "ab"], 3)[0] == uid_hashes(["a"], 3)[0]  # not the batch's width
    assert uid_hashes(["a"], 3)[0] != uid_hashes(["a"], 4)[0]  # the seed picks another sample


@pytest.mark.parametrize("zeros", [0, 50, 1000])
def test_the_two_pass_sample_equals_the_one_pass_sample(tmp_path, zeros):
    """sample_pool reads only the sampled rows' embeddings; rows without one (zero) are skipped
    as sample_embeddings skips them, even when so many are zero that the candidates run out."""
    rng = np.random.default_rng(4)
    pool = _pool(rng, shards=4, rows=300, dims=8)
    flat = rng.permutation(1200)[:zeros]
    for i in flat:
        pool[i // 300][2][i % 300] = 0
    lake = Lake(tmp_path)
    for shard, uids, emb in pool:
        _write_shard(lake, shard, uids, emb)
    shards = [p[0] for p in pool]
    for size in (1, 150, 1200):
        expected = sample_embeddings(
            [(s, *shard_embeddings(lake, s, "scorer")) for s in shards], size=size, seed=2
        )
        found = sample_pool(lake, shards[::-1], "scorer", size=size, seed=2)
        assert found.uids.tolist() == expected.uids.tolist()
        assert found.shards.tolist() == expected.shards.tolist()
        assert np.array_equal(found.emb, expected.emb) and found.rows_read == 1200


def test_centroids_do_not_depend_on_the_order_of_shards_or_rows(tmp_path):
    """k-means seeds its first centroids by row position: trained on rows in read order, the
    centroids would change with the order shards were registered or rows downloaded in."""
    rng = np.random.default_rng(1)
    pool = _pool(rng, shards=6, rows=400, dims=16)
    settings = CentroidSettings(k=8, sample=900, seed=5)
    written = []
    for run, order in enumerate([range(6), [3, 5, 0, 2, 4, 1]]):
        lake = Lake(tmp_path / f"lake{run}")
        for shard, uids, emb in pool:
            perm = rng.permutation(len(uids)) if run else np.arange(len(uids))
            _write_shard(lake, shard, [uids[i] for i in perm], emb[perm])
        shards = [pool[i][0] for i in order]
        result = build_centroids(lake, shards, settings, "", _no_tars)
        assert (result.k, result.sample_rows, result.pool_rows) == (8, 900, 2400)
        written.append((result.centroids.read_bytes(), result.exemplar_clusters.read_text()))
    assert written[0] == written[1]


def test_assignment_is_the_brute_force_nearest_centroid():
    rng = np.random.default_rng(2)
    emb = rng.standard_normal((1000, 12)).astype(np.float32)
    centroids = rng.standard_normal((30, 12)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    expected = np.argmax(emb @ centroids.T, axis=1)
    assert np.array_equal(nearest_centroid(emb, centroids, batch=7), expected)
    assert np.array_equal(nearest_centroid(emb, centroids), expected)


def test_shard_clusters_sorted_by_uid_with_the_exemplar_clusters(tmp_path):
    rng = np.random.default_rng(3)
    lake = Lake(tmp_path)
    axes = np.eye(4, 8, dtype=np.float32)
    uids = [f"u{i:03d}" for i in range(80)]
    pick = np.arange(80) % 4
    emb = axes[pick] + 0.01 * rng.standard_normal((80, 8)).astype(np.float32)
    emb[7] = 0  # a row without an embedding gets no cluster
    perm = rng.permutation(80)
    _write_shard(lake, "s0", [uids[i] for i in perm], emb[perm])
    exemplars = tmp_path / "exemplars.npy"
    np.save(exemplars, axes[:2] * 3)  # not unit: normalized on load
    result = build_centroids(lake, ["s0"], CentroidSettings(k=4, seed=0), str(exemplars), _no_tars)
    assert (result.k, result.exemplar_rows) == (4, 2) and result.clusters_hit in (1, 2)
    found = assign_shard(lake, "s0", "scorer")
    table = pq.read_table(found.path)
    assert [(f.name, str(f.type)) for f in table.schema] == [
        ("uid", "string"),
        ("image_cluster", "int32"),
        ("exemplar_cluster", "bool"),
    ]
    rows = table.to_pylist()
    assert [r["uid"] for r in rows] == uids and (found.rows, found.embeddings) == (80, 80)
    assert rows[7] == {"uid": "u007", "image_cluster": None, "exemplar_cluster": False}
    centroids, doc = np.load(result.centroids), json.loads(result.exemplar_clusters.read_text())
    assert doc["clusters"] == sorted(set(np.argmax(unit(axes[:2]) @ centroids.T, axis=1).tolist()))
    by_uid = dict(zip(uids, np.argmax(emb @ centroids.T, axis=1).tolist(), strict=True))
    kept = [r for r in rows if r["image_cluster"] is not None]
    assert [r["image_cluster"] for r in kept] == [by_uid[r["uid"]] for r in kept]
    assert [r["exemplar_cluster"] for r in kept] == [
        r["image_cluster"] in doc["clusters"] for r in kept
    ]
    assert found.exemplar_rows == sum(r["exemplar_cluster"] for r in rows)
    assert found.no_embedding == 1
    with pytest.raises(ValueError, match="trained on scorer embeddings.*l14_img"):
        assign_shard(lake, "s0", "l14_img")


def test_exemplar_embeddings_of_another_width_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "imagenet_l14.npy"
    np.save(path, np.ones((5, 32), np.float32))
    with pytest.raises(ValueError, match=r"imagenet_l14\.npy: shape \(5, 32\).* 16-d"):
        load_exemplars(str(path), 16, "scorer", _no_tars)
    (tmp_path / "trusted").mkdir()
    (tmp_path / "trusted" / "000.tar").write_bytes(b"")
    with pytest.raises(ValueError, match="embedded with the scorer.*l14_img.*an .npy"):
        load_exemplars(str(tmp_path / "trusted"), 768, "l14_img", _no_tars)
    assert load_exemplars("", 16, "l14_img", _no_tars).shape == (0, 16)
    with pytest.raises(FileNotFoundError, match="neither an .npy file nor a folder of .tar"):
        load_exemplars(str(tmp_path / "missing"), 16, "scorer", _no_tars)


def test_a_shard_without_embeddings_fails_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="'s9'.*clip_embeddings"):
        build_centroids(Lake(tmp_path), ["s9"], CentroidSettings(), "", _no_tars)


def test_centroid_memory_is_bounded_by_sample_and_shard_not_pool(tmp_path):
    """40 shards x 5,000 rows x 64-d (51 MB as float32) with a 2,000-row sample: the step holds
    the sample and one shard, so its peak stays a few MB (numpy and Python allocations traced)."""
    rng = np.random.default_rng(4)
    lake, shards, rows, dims = Lake(tmp_path), 40, 5_000, 64
    axes = rng.standard_normal((10, dims)).astype(np.float32)
    for s in range(shards):
        emb = axes[rng.integers(0, 10, rows)] + rng.standard_normal((rows, dims), np.float32)
        _write_shard(lake, f"s{s:02d}", [f"{s:02d}-{i:06d}" for i in range(rows)], emb)
    settings = CentroidSettings(k=20, sample=2_000, seed=0)
    pool_bytes = shards * rows * dims * 4
    shard_bytes, sample_bytes = rows * dims * 4, settings.sample * dims * 4
    import faiss  # noqa: F401  (imported before tracing: a module's import is not the step's memory)

    tracemalloc.start()
    try:
        result = build_centroids(lake, [f"s{s:02d}" for s in range(shards)], settings, "", _no_tars)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.pool_rows, result.sample_rows) == (shards * rows, settings.sample)
    assert peak < 4 * (shard_bytes + sample_bytes) < pool_bytes / 5, (peak, pool_bytes)


def test_exemplar_tars_are_embedded_with_the_scorer(tmp_path):
    """The demo's way: no .npy, the trusted set's tars embedded with the (here untrained) scorer."""
    import open_clip
    import torch

    from poolsieve.clip.model_configs import register_configs
    from poolsieve.clip.models import LoadedClip
    from poolsieve.curate.clusters import embed_tars
    from poolsieve_demo import WorldConfig
    from poolsieve_demo.trusted import write_trusted

    register_configs()
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("poolsieve-tiny")
    clip = LoadedClip(
        model.eval(),
        preprocess,
        open_clip.get_tokenizer("poolsieve-tiny"),
        torch.device("cpu"),
        "poolsieve-tiny",
        "",
        "",
    )
    config = WorldConfig(trusted_samples=12, trusted_shard_size=5)
    write_trusted(tmp_path / "trusted", np.random.default_rng(0), config)
    dims = model.visual.output_dim
    lake = Lake(tmp_path / "lake")
    shard, uids, emb = _pool(np.random.default_rng(5), shards=1, rows=100, dims=dims)[0]
    _write_shard(lake, shard, uids, emb)
    result = build_centroids(
        lake,
        [shard],
        CentroidSettings(k=4),
        str(tmp_path / "trusted"),
        lambda tars: embed_tars(tars, clip),
    )
    assert result.exemplar_rows == 12 and 1 <= result.clusters_hit <= 4


def test_datacomp_npz_embeddings_are_clustered_and_assigned(source_dir, lake, conn, tmp_path):
    """Metadata mode: L/14 image embeddings straight from the .npz beside each parquet."""
    from poolsieve.curate.metadata import validate_npz, write_info
    from poolsieve.pool.ingest import ingest_shard
    from tests.conftest import row
    from tests.datacomp_pool import write_shard

    shards, kept = ["part-00000.parquet", "part-00001.parquet"], []
    for seq, shard in enumerate(shards):
        rows = [row(100 * seq + i) for i in range(30)]
        rows[3]["url"] = "ftp://x.org/a.jpg"  # quarantined: not a pool row, no cluster
        arrays = write_shard(source_dir / shard, rows, seed=seq)
        ingest_shard(conn, lake, shard, seq, str(source_dir / shard))
        write_info(lake, shard, validate_npz(lake, str(source_dir), shard, ["l14_img"]))
        kept.append((sorted(r["uid"] for i, r in enumerate(rows) if i != 3), arrays))
    exemplars = tmp_path / "imagenet_b32.npy"
    np.save(exemplars, kept[0][1]["b32_img"][:4])  # B/32 exemplars for L/14 clusters
    settings = CentroidSettings(k=6, sample=40, seed=1, source="l14_img")
    with pytest.raises(ValueError, match=r"imagenet_b32\.npy: shape \(4, 512\).*768-d"):
        build_centroids(lake, shards, settings, str(exemplars), _no_tars)
    np.save(exemplars, kept[0][1]["l14_img"][:4])
    result = build_centroids(lake, shards, settings, str(exemplars), _no_tars)
    assert (result.k, result.dims, result.sample_rows, result.pool_rows) == (6, 768, 40, 58)
    for shard, (uids, _) in zip(shards, kept, strict=True):
        found = assign_shard(lake, shard, "l14_img")
        assert pq.read_table(found.path)["uid"].to_pylist() == uids and found.no_embedding == 0
