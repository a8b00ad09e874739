"""The DataComp loop's pieces: resharding, metrics on known embeddings, clusters."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from poolsieve.curate.clusters import exemplar_clusters
from poolsieve.curate.metrics import Evaluation, classification_metrics, retrieval_metrics
from poolsieve.curate.reshard import reshard


def _tar(path, uids, keys=None):
    with tarfile.open(path, "w") as tf:
        for i, uid in zip(keys or range(len(uids)), uids, strict=True):
            for suffix, data in (
                ("jpg", f"image-{uid}".encode()),
                ("txt", f"caption {uid}".encode()),
                ("json", json.dumps({"uid": uid}).encode()),
            ):
                info = tarfile.TarInfo(f"{i:09d}.{suffix}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def _members(tar):
    with tarfile.open(tar) as tf:
        return [(m.name, tf.extractfile(m).read()) for m in tf]


@pytest.fixture
def inputs(tmp_path):
    return [_tar(tmp_path / "a.tar", ["u1", "u2", "u3"]), _tar(tmp_path / "b.tar", ["u4", "u5"])]


def test_reshard_writes_each_listed_uid_k_times_in_input_order(tmp_path, inputs):
    listed = ["u5", "u2", "u2", "u2", "u4", "gone"]
    result = reshard(inputs, listed, tmp_path / "out", per_shard=2)
    assert result.samples == 5 and result.missing == ["gone"]
    assert [t.name for t in result.tars] == [
        "shard-00000.tar",
        "shard-00001.tar",
        "shard-00002.tar",
    ]
    assert json.loads((tmp_path / "out" / "sizes.json").read_text()) == {
        "shard-00000.tar": 2,
        "shard-00001.tar": 2,
        "shard-00002.tar": 1,
    }
    names = [n for t in result.tars for n, _ in _members(t) if n.endswith(".jpg")]
    assert names == ["u2.jpg", "u2_1.jpg", "u2_2.jpg", "u4.jpg", "u5.jpg"]
    members = dict(m for t in result.tars for m in _members(t))
    assert members["u2_2.txt"] == b"caption u2" and members["u5.jpg"] == b"image-u5"


def test_reshard_is_deterministic_and_replaces_its_folder(tmp_path, inputs):
    first = reshard(inputs, ["u1", "u3"], tmp_path / "out")
    digest = [t.read_bytes() for t in first.tars]
    second = reshard(inputs, ["u3", "u1"], tmp_path / "out")
    assert [t.read_bytes() for t in second.tars] == digest
    reshard(inputs, [], tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.tar"))


def test_reshard_follows_keys_not_the_order_downloads_finished(tmp_path):
    """img2dataset writes a sample when its download ends: the same shard's tar can hold its keys
    in another order on another run; the training shards must not."""
    runs = [[0, 1, 2, 3], [2, 0, 3, 1]]
    written = []
    for n, order in enumerate(runs):
        uids = [f"u{k}" for k in order]
        tar = _tar(tmp_path / f"run{n}.tar", uids, keys=order)
        out = reshard([tar], ["u0", "u1", "u2", "u3"], tmp_path / f"out{n}")
        written.append([t.read_bytes() for t in out.tars])
    assert written[0] == written[1]


def test_classification_metrics_on_known_embeddings():
    classes = np.eye(3)
    images = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], float)
    labels = [0, 0, 1, 2, 2]  # the last image is wrong
    m = classification_metrics(images, classes, labels)
    assert m["top1"] == pytest.approx(4 / 5)
    assert m["mean_per_class_recall"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_retrieval_metrics_on_known_embeddings():
    images = np.eye(3)
    # captions 0,1 -> image 0; caption 2 -> image 1; caption 3 -> image 2 but points at image 0
    texts = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.8, 0, 0.6]])
    m = retrieval_metrics(images, texts, [0, 0, 1, 2], ks=(1, 2))
    assert m["text_to_image_recall@1"] == pytest.approx(3 / 4)
    assert m["text_to_image_recall@2"] == pytest.approx(1.0)
    # image 0's best caption is caption 0 (its own); image 1's is caption 2; image 2's best is
    # caption 3 (0.6) -> all three found at k=1
    assert m["image_to_text_recall@1"] == pytest.approx(1.0)
    assert m["mean_recall@1"] == pytest.approx((3 / 4 + 1) / 2)


def test_average_is_the_mean_of_main_metrics():
    result = Evaluation({"classification": {"top1": 0.5}, "retrieval": {"mean_recall@1": 0.1}})
    assert result.average == pytest.approx(0.3)
    assert result.flat()["classification/top1"] == 0.5


def test_exemplar_clusters_mark_the_clusters_exemplars_fall_in():
    rng = np.random.default_rng(0)
    centers = np.eye(4, 8)
    pool = np.concatenate([c + 0.01 * rng.standard_normal((25, 8)) for c in centers])
    clusters = exemplar_clusters(pool, centers[:2], k=4)
    assert clusters.k == 4 and clusters.exemplar_clusters == 2
    assert clusters.exemplar_cluster[:50].all() and not clusters.exemplar_cluster[50:].any()
    assert len(set(clusters.pool_cluster[:25].tolist())) == 1
    none = exemplar_clusters(pool, np.zeros((0, 8)), k=4)
    assert not none.exemplar_cluster.any()


def test_an_empty_subset_gives_no_model_and_a_leaderboard_row_that_says_so(tmp_path):
    from poolsieve.curate.evaluation import evaluate_strategy
    from poolsieve.curate.leaderboard import build_leaderboard
    from poolsieve.curate.training import train_strategy
    from poolsieve.lake import Lake

    lake = Lake(tmp_path)
    shards = lake.partition_dir("train_shards", "none")
    shards.mkdir(parents=True)
    (shards / "sizes.json").write_text("{}")
    summary = lake.partition_dir("subset", "none") / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"kept": 0, "reasons": {"not_english": 3}}))
    record = train_strategy(lake, "none", "tiny-cpu", seed=0)
    assert record.checkpoint is None and "no downloaded sample" in record.skipped
    doc, _ = evaluate_strategy(lake, "none", str(tmp_path / "no-eval-needed"))
    assert doc.metrics == {} and doc.skipped == record.skipped
    board = build_leaderboard(lake, ["none"])
    assert board.rows[0]["subset_size"] == 0 and board.rows[0]["average"] is None
    assert "| none | 0 | 0 | — |" in board.markdown()


def test_clusters_of_a_permuted_pool_give_every_uid_the_same_cluster():
    """k-means draws its first centroids by row position: fed in download order, a uid's
    cluster would change from run to run. Rows are clustered in uid order instead."""
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((300, 16)).astype(np.float32)
    uids = [f"{i:032x}" for i in rng.permutation(300)]
    exemplars = rng.standard_normal((5, 16)).astype(np.float32)
    perm = rng.permutation(300)
    shuffled_uids = [uids[i] for i in perm]

    def by_uid(u, emb, **kw):
        found = exemplar_clusters(emb, exemplars, k=12, seed=7, **kw)
        pairs = zip(u, found.pool_cluster, found.exemplar_cluster, strict=True)
        return {uid: (int(c), bool(e)) for uid, c, e in pairs}

    assert by_uid(uids, pool) != by_uid(shuffled_uids, pool[perm])  # faiss alone: order matters
    assert by_uid(uids, pool, uids=uids) == by_uid(shuffled_uids, pool[perm], uids=shuffled_uids)
