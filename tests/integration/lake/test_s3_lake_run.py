"""The demo's shard graph and subsets with the lake on object storage (moto's S3 server on
127.0.0.1) give the bytes a lake in a folder gives: every url_dedup decision file and every
subset file (decisions.parquet, subset.npy).

The S3 run is split between two working copies, as two machines would split it: the first
materializes the scorer, every shard, the image clusters; the second, starting with an empty
working copy, builds pool_features and every subset from what the first left in the bucket.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest
from poolsieve.pipelines.definitions import build_defs
from poolsieve.pipelines.partitions import SHARDS, STRATEGIES

from poolsieve.lake import Lake
from poolsieve_demo import write_demo_world
from poolsieve_demo.server import free_port
from tests.image_world import CONFIG, make_resources, run_job, run_subsets

SEED, SHARDS_N, ROWS = 4, 2, 120
SHARD_STEPS = ["scorer_job", "shard_job", "centroids_job", "shard_clusters_job"]
POOL_STEPS = ["features_job", "strategy_job"]


def _world(folder: Path, base_url: str):
    return write_demo_world(
        folder, seed=SEED, base_url=base_url, n_shards=SHARDS_N, rows_per_shard=ROWS, config=CONFIG
    )


def _resources(location: str, world, cache: Path | None = None, options: str = ""):
    lake = {"lake_dir": location, "source": str(world.root / "source")}
    if cache is not None:
        lake |= {"lake_cache": str(cache), "lake_options": options}
    return make_resources(
        location,
        lake=lake,
        downloader={"world_dir": str(world.root), "lock_dir": str(world.root.parent / "locks")},
        scorer={"trusted_dir": str(world.root / "trusted")},
        eval_sets={"eval_dir": str(world.root / "eval")},
        curation={"takedown_lists": str(world.root / "takedown")},
        embedding={"batch_size": 32, "workers": 1},
    )


def _run(resources, instance, jobs: list[str], shards: list[str]) -> None:
    defs = build_defs(resources)
    runs = []
    for name in jobs:
        job = defs.resolve_job_def(name)
        if name == "strategy_job":
            runs += run_subsets(defs, instance)
        elif job.partitions_def is not None:
            runs += [run_job(defs, instance, name, s) for s in shards]
        else:
            runs.append(run_job(defs, instance, name))
    failed = [r.dagster_run.job_name for r in runs if not r.success]
    assert not failed, failed


def _digests(lake: Lake) -> dict[str, str]:
    files = lake.glob("url_dedup/*/decisions.parquet") + lake.glob("subset/*/*")
    return {
        p.relative_to(lake.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.name != "summary.json"  # it names the lake's paths
    }


@pytest.mark.timeout(1500)
@pytest.mark.slow
def test_an_s3_lake_split_over_two_working_copies_gives_the_folder_lakes_bytes(
    tmp_path, s3_server, s3_lake_url
):
    base_url = f"http://127.0.0.1:{free_port()}"
    world = _world(tmp_path / "world", base_url)
    shards = world.truth["shards"]
    local = str(tmp_path / "lake")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SHARDS.name, shards)
        _run(_resources(local, world), instance, SHARD_STEPS + POOL_STEPS, shards)
    options = json.dumps(s3_server.options)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SHARDS.name, shards)
        first = _resources(s3_lake_url, world, tmp_path / "cache_a", options)
        _run(first, instance, SHARD_STEPS, shards)
        second = _resources(s3_lake_url, world, tmp_path / "cache_b", options)
        _run(second, instance, POOL_STEPS, shards)
    expected = _digests(Lake(local))
    assert len(expected) == SHARDS_N + 2 * len(STRATEGIES.get_partition_keys()), sorted(expected)
    remote = Lake.at(s3_lake_url, tmp_path / "cache_check", s3_server.options)
    assert _digests(remote) == expected
    # the pool steps read each shard's download status, never its images
    assert not list((tmp_path / "cache_b").rglob("*.tar"))
    pulled = [p.name for p in (tmp_path / "cache_b" / "shard_images").rglob("*") if p.is_file()]
    assert pulled == ["download_status.parquet"] * SHARDS_N
