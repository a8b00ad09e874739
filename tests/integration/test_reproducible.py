"""Seeded runs are reproducible end to end: one world and seed, run twice, give the same bytes.

The same demo world (seed 3, 2 shards x 300 rows) is written into two lakes and each is run
through the main job up to the subsets, in its own Dagster instance (its own DAGSTER_HOME): the
scorer, every shard (real img2dataset downloads from the demo server, whose thread pool finishes
images in a different order each time), pool_features, then every strategy's subset. Every
embeddings and decontamination file, every pool_features part and every subset file must be
byte-identical between the two runs: nothing may depend on download order, thread timing or the
clock.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import pytest
from poolsieve.pipelines.definitions import build_defs
from poolsieve.pipelines.partitions import SHARDS, STRATEGIES

from poolsieve_demo import write_demo_world
from poolsieve_demo.resources import world_dir
from poolsieve_demo.server import free_port
from tests.image_world import CONFIG, make_resources, run_job, run_subsets

SEED, SHARDS_N, ROWS = 3, 2, 300
COMPARED = ["clip_embeddings", "eval_decontamination", "pool_features", "subset"]


def _run_to_subsets(lake: Path, base_url: str) -> dict[str, str]:
    """Write the world into ``lake``, run it up to every subset in a fresh instance; the sha256
    of every file the compared assets wrote, by path relative to the lake."""
    world = write_demo_world(
        world_dir(lake),
        seed=SEED,
        base_url=base_url,
        n_shards=SHARDS_N,
        rows_per_shard=ROWS,
        config=CONFIG,
    )
    defs = build_defs(make_resources(lake, embedding={"batch_size": 32, "workers": 2}))
    with dg.instance_for_test() as instance:  # a temporary DAGSTER_HOME of its own
        instance.add_dynamic_partitions(SHARDS.name, world.truth["shards"])
        runs = [run_job(defs, instance, "scorer_job")]
        runs += [run_job(defs, instance, "shard_job", s) for s in world.truth["shards"]]
        runs.append(run_job(defs, instance, "centroids_job"))
        shards = world.truth["shards"]
        runs += [run_job(defs, instance, "shard_clusters_job", s) for s in shards]
        runs.append(run_job(defs, instance, "features_job"))
        runs += run_subsets(defs, instance)
    assert all(r.success for r in runs)
    return {
        str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
        for asset in COMPARED
        for p in sorted((lake / asset).rglob("*"))
        # pool_features' per-part records name the lake's paths and the inputs' mtimes
        if p.is_file() and not (asset == "pool_features" and p.suffix == ".json")
    }


@pytest.mark.timeout(1500)
@pytest.mark.slow
def test_the_same_world_and_seed_give_byte_identical_embeddings_features_and_subsets(tmp_path):
    base_url = f"http://127.0.0.1:{free_port()}"  # one URL for both worlds: same rows, same uids
    first = _run_to_subsets(tmp_path / "a" / "lake", base_url)
    second = _run_to_subsets(tmp_path / "b" / "lake", base_url)
    names = set(first)
    for shard_file in ("embeddings.parquet", "embeddings.npz"):
        assert sum(name.endswith(shard_file) for name in names) == SHARDS_N, sorted(names)
    parts = [n for n in names if n.startswith("pool_features/") and n.endswith(".parquet")]
    assert len(parts) == SHARDS_N, parts  # one pool_features part per shard
    for strategy in STRATEGIES.get_partition_keys():
        assert f"subset/{strategy}/subset.npy" in names
        assert f"subset/{strategy}/decisions.parquet" in names
    assert first.keys() == second.keys()
    differ = sorted(name for name in first if first[name] != second[name])
    assert not differ, f"files that differ between two runs of one world and seed: {differ}"
