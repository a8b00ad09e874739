"""image_centroids and shard_clusters through dagster.materialize on a small lake."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
from poolsieve.assets.image_centroids import image_centroids
from poolsieve.assets.shard_clusters import shard_clusters
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import resources_from_env

from tests.unit.curate.test_clusters import _pool, _write_shard


def _metadata(result, asset):
    event = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    )
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_centroids_once_then_every_shard_assigned(instance, lake, tmp_path):
    pool = _pool(np.random.default_rng(0), shards=3, rows=200, dims=16)
    for shard, uids, emb in pool:
        lake.partition_dir("pool_shard", shard).mkdir(parents=True)
        _write_shard(lake, shard, uids, emb)
    instance.add_dynamic_partitions(SHARDS.name, [shard for shard, *_ in pool])
    exemplars = tmp_path / "exemplars.npy"
    np.save(exemplars, pool[0][2][:3])
    resources = resources_from_env(
        env={},
        lake={"lake_dir": str(lake.root)},
        curation={"image_clusters": 5, "centroid_sample": 250, "exemplar_dir": str(exemplars)},
    ).as_dict()
    result = dg.materialize([image_centroids], instance=instance, resources=resources)
    meta = _metadata(result, "image_centroids")
    assert (meta["k"], meta["sample_rows"], meta["pool_rows"], meta["shards"]) == (5, 250, 600, 3)
    assert meta["exemplar_rows"] == 3 and 1 <= meta["exemplar_clusters"] <= 3
    doc = json.loads((lake.root / "image_centroids" / "exemplar_clusters.json").read_text())
    assert (doc["k"], doc["source"], doc["seed"], doc["dims"]) == (5, "scorer", 0, 16)
    for shard, uids, _ in pool:
        done = dg.materialize(
            [shard_clusters], partition_key=shard, instance=instance, resources=resources
        )
        checks = done.get_asset_check_evaluations()
        assert [(c.check_name, c.passed) for c in checks] == [("rows_conserved", True)]
        table = pq.read_table(lake.partition_dir("shard_clusters", shard) / "clusters.parquet")
        assert table["uid"].to_pylist() == sorted(uids)
        assert set(table["image_cluster"].to_pylist()) <= set(range(5))


def test_wrong_exemplar_width_fails_the_asset_with_the_message(instance, lake, tmp_path):
    shard, uids, emb = _pool(np.random.default_rng(1), shards=1, rows=50, dims=16)[0]
    lake.partition_dir("pool_shard", shard).mkdir(parents=True)
    _write_shard(lake, shard, uids, emb)
    instance.add_dynamic_partitions(SHARDS.name, [shard])
    exemplars = tmp_path / "imagenet.npy"
    np.save(exemplars, np.ones((4, 768), np.float32))
    resources = resources_from_env(
        env={}, lake={"lake_dir": str(lake.root)}, curation={"exemplar_dir": str(exemplars)}
    ).as_dict()
    result = dg.materialize(
        [image_centroids], instance=instance, resources=resources, raise_on_error=False
    )
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.event_specific_data.error.message
    assert "imagenet.npy: shape (4, 768)" in message and "16-d" in message
    assert not (lake.root / "image_centroids" / "centroids.npy").exists()
