"""A small demo world run through the per-shard graph: shared by the image and staleness tests.

Write a world into the lake, materialize the scorer (a tiny CLIP trained for a few steps with
open_clip_train), then the main per-shard job (ingest, dedup, real img2dataset downloads from the
demo server, embeddings, decontamination) for every shard, then pool_features.
"""

from __future__ import annotations

import dataclasses

from poolsieve.pipelines.definitions import build_defs
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import Resources

from poolsieve.lake import Lake
from poolsieve_demo import WorldConfig, write_demo_world
from poolsieve_demo.optout import OPTOUT_KINDS
from poolsieve_demo.resources import demo_resources, world_dir
from poolsieve_demo.server import free_port

# More planted eval near-duplicates than the default (1%), so recall is measured on 30 copies.
CONFIG = WorldConfig(
    rates={"eval_near_duplicate": 0.1, "near_duplicate_image": 0.05},
    trusted_samples=200,
    trusted_shard_size=100,
    eval_per_class=3,
    retrieval_images=40,
    slow_seconds=6.0,  # timeout 3 s: a loaded 2-core machine still answers a 404 in time
)
#: for worlds of under ~100 rows per shard: no opt-out rows (tested apart), so each shard keeps
#: enough clean rows for its takedown targets
TINY_CONFIG = dataclasses.replace(
    CONFIG, rates={**CONFIG.rates, **dict.fromkeys(OPTOUT_KINDS, 0.0)}
)


def make_resources(lake_dir, **overrides) -> Resources:
    """The demo's resources on ``lake_dir`` (the environment ignored), a small scorer budget and
    embedding batches; ``overrides``: {field: value} per resource key."""
    settings = {"scorer": {"samples": 256}, "embedding": {"batch_size": 64, "workers": 1}}
    for key, fields in overrides.items():
        settings[key] = {**settings.get(key, {}), **fields}
    return demo_resources(str(lake_dir), env={}, **settings)


def run_job(defs, instance, job: str, key: str | None = None):
    return defs.resolve_job_def(job).execute_in_process(
        partition_key=key, instance=instance, raise_on_error=False
    )


def run_subsets(defs, instance) -> list:
    """Every strategy's filter_sql and subset (strategy_job without training); the results."""
    import dagster as dg
    from poolsieve.pipelines.partitions import STRATEGIES

    job = defs.resolve_job_def("strategy_job")
    selection = [dg.AssetKey("filter_sql"), dg.AssetKey("subset")]
    return [
        job.execute_in_process(
            partition_key=name, instance=instance, asset_selection=selection, raise_on_error=False
        )
        for name in STRATEGIES.get_partition_keys()
    ]


def run_world(lake_dir, instance, rows_per_shard: int = 150, **overrides) -> dict:
    """Write a 2-shard world and materialize the scorer, every shard, the image clusters and
    pool_features."""
    world = write_demo_world(
        world_dir(str(lake_dir)),
        seed=5,
        base_url=f"http://127.0.0.1:{free_port()}",
        n_shards=2,
        rows_per_shard=rows_per_shard,
        config=CONFIG,
    )
    resources = make_resources(lake_dir, **overrides)
    defs = build_defs(resources)
    instance.add_dynamic_partitions(SHARDS.name, world.truth["shards"])
    runs = {"scorer": run_job(defs, instance, "scorer_job")}
    for shard in world.truth["shards"]:
        runs[shard] = run_job(defs, instance, "shard_job", shard)
    runs["centroids"] = run_job(defs, instance, "centroids_job")
    for shard in world.truth["shards"]:
        runs[f"clusters/{shard}"] = run_job(defs, instance, "shard_clusters_job", shard)
    runs["features"] = run_job(defs, instance, "features_job")
    return {
        "world": world,
        "lake": Lake(lake_dir),
        "runs": runs,
        "instance": instance,
        "defs": defs,
        "resources": resources,
    }


def shard_digests(lake: Lake, assets: list[str], shard: str) -> dict[str, str]:
    """sha256 of every file the shard's assets wrote (what "byte-identical" is checked on)."""
    import hashlib

    return {
        f"{asset}/{p.relative_to(lake.partition_dir(asset, shard))}": hashlib.sha256(
            p.read_bytes()
        ).hexdigest()
        for asset in assets
        for p in lake.partition_dir(asset, shard).rglob("*")
        if p.is_file()
    }
