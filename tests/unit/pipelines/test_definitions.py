"""The code location loads: from Python, and through workspace.yaml as `dagster dev` loads it."""

import dagster as dg
from poolsieve.pipelines.definitions import defs

from poolsieve.curate.strategies import strategy_names


def test_definitions_hold_the_graph():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {
        "pool_shard",
        "url_dedup",
        "shard_features",
        "shard_images",
        "scorer",
        "clip_embeddings",
        "eval_decontamination",
        "metadata_embeddings",
        "image_centroids",
        "shard_clusters",
        "image_hashes",
        "near_duplicates",
        "takedown_lists",
        "removals",
        "pool_features",
        "filter_sql",
        "subset",
        "download_selection",
        "selected_images",
        "train_shards",
        "clip_model",
        "evaluation",
        "leaderboard",
        "pool_health",
        "subset_health",
    }
    parents = {k: {p.to_user_string() for p in graph.get(dg.AssetKey(k)).parent_keys} for k in keys}
    assert parents["url_dedup"] == {"pool_shard"}
    assert parents["shard_images"] == {"url_dedup"}
    assert parents["clip_embeddings"] == {"shard_images", "scorer"}
    assert parents["eval_decontamination"] == {"shard_images"}
    assert parents["shard_features"] == {"pool_shard"}
    assert parents["image_hashes"] == {"shard_images"}
    assert parents["pool_health"] == {"shard_images", "image_hashes", "selected_images"}
    assert parents["subset_health"] == {"pool_health", "subset"}
    assert parents["near_duplicates"] == {"image_hashes", "shard_clusters"}
    assert parents["removals"] == {"takedown_lists", "pool_shard", "image_hashes"}
    assert graph.get(dg.AssetKey("takedown_lists")).is_observable  # lists are observed data
    assert parents["metadata_embeddings"] == {"pool_shard"}
    assert parents["image_centroids"] == {"clip_embeddings", "metadata_embeddings", "scorer"}
    assert parents["shard_clusters"] == {
        "image_centroids",
        "clip_embeddings",
        "metadata_embeddings",
    }
    assert parents["pool_features"] == {
        "shard_features",
        "shard_clusters",
        "clip_embeddings",
        "eval_decontamination",
        "scorer",
        "near_duplicates",
        "removals",
    }
    assert parents["subset"] == {"pool_features", "filter_sql"}
    assert graph.get(dg.AssetKey("filter_sql")).is_observable  # a filter is observed data
    assert parents["leaderboard"] == {"evaluation"}
    assert parents["download_selection"] == {"subset", "url_dedup"}
    assert parents["selected_images"] == {"url_dedup", "download_selection"}
    assert graph.get(dg.AssetKey("scorer")).partitions_def is None
    strategies = graph.get(dg.AssetKey("clip_model")).partitions_def.get_partition_keys()
    assert set(strategies) == set(strategy_names())
    for job in (
        "ingest_job",
        "shard_job",
        "metadata_shard_job",
        "scorer_job",
        "centroids_job",
        "shard_clusters_job",
        "features_job",
        "subset_job",
        "strategy_job",
        "selection_job",
        "selected_images_job",
        "training_job",
        "observe_filters_job",
        "health_job",
        "subset_health_job",
    ):
        assert defs.resolve_job_def(job) is not None
    assert {s.name for s in defs.get_repository_def().sensor_defs} == {
        "pool_source_sensor",
        "dedup_recheck_sensor",
        "subset_health_sensor",
    }
    assert defs.resolve_schedule_def("pool_refresh_schedule").cron_schedule == "0 3 * * *"
    assert defs.resolve_schedule_def("pool_health_schedule").cron_schedule == "0 3 * * *"


def test_every_asset_has_a_description():
    for spec in defs.resolve_asset_graph().asset_nodes:
        assert spec.description, spec.key


def test_every_materialized_asset_has_a_blocking_check():
    graph = defs.resolve_asset_graph()
    for node in graph.asset_nodes:
        if not node.is_materializable:
            continue  # filter_sql is observed, not materialized
        specs = list(node.check_keys)
        assert specs, f"{node.key.to_user_string()} has no asset check"
        blocking = [graph.get_check_spec(k).blocking for k in specs]
        if node.key.to_user_string() != "leaderboard":  # nothing reads the leaderboard
            assert any(blocking), f"{node.key.to_user_string()} has no blocking check"


def test_training_and_evaluation_checks_name_what_is_wrong(tmp_path):
    from poolsieve.assets.clip_model import _training_problem
    from poolsieve.assets.evaluation import _out_of_range

    ckpt = tmp_path / "epoch_1.pt"
    ckpt.write_bytes(b"weights")
    from dataclasses import replace

    from poolsieve.curate.training import ModelRecord
    from poolsieve.lake import file_sha256

    record = ModelRecord(
        arch="poolsieve-tiny",
        checkpoint=str(ckpt),
        sha256=file_sha256(ckpt),
        scale="tiny-cpu",
        seed=0,
        samples_seen=128,
        train_samples=10,
        seconds=1.0,
        losses=[(1, 4.2), (2, 3.9)],
        log="out.log",
    )
    assert _training_problem(record) == ""
    assert "steps [2]" in _training_problem(replace(record, losses=[(1, 4.2), (2, float("nan"))]))
    assert "differs from its recorded sha256" in _training_problem(replace(record, sha256="0" * 64))
    assert _out_of_range({"classification/top1": 0.25, "average": 0.1}) == ""
    assert "retrieval/mean_recall@1" in _out_of_range({"retrieval/mean_recall@1": 1.5})
    assert "average" in _out_of_range({"average": float("nan")})


def _job_assets(name: str) -> set[str]:
    job = defs.resolve_job_def(name)
    return {k.to_user_string() for k in job.asset_layer.executable_asset_keys}


def test_the_run_queue_serializes_only_what_must_take_turns():
    """A daemon's backfill queues a job's runs one at a time only when one run both ingests and
    decides a shard (pool order), or writes the DuckDB catalog (pool_features); every tag the
    jobs use has a limit in the shipped instance settings."""
    import yaml

    from poolsieve.paths import instance_settings

    limits = yaml.safe_load(instance_settings())["run_queue"]["tag_concurrency_limits"]
    limited = {limit["key"] for limit in limits if limit["limit"] == 1}
    for job in defs.resolve_all_job_defs():
        if job.name.startswith("__"):  # a sensor's or schedule's target: run_requests tags
            continue
        assets, queued = _job_assets(job.name), {k for k in job.tags if k.startswith("poolsieve/")}
        wanted = set()
        if {"pool_shard", "url_dedup"} <= assets:
            wanted.add("poolsieve/pool_order")
        if "pool_features" in assets:
            wanted.add("poolsieve/catalog")
        assert queued == wanted, job.name
        assert queued <= limited, job.name


def test_pool_health_runs_on_the_refresh_clock_for_every_downloaded_shard():
    from poolsieve.pipelines.health import health_requests, subset_health_request
    from poolsieve.pipelines.partitions import SHARDS

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SHARDS.name, ["a", "b", "c"])
        assert isinstance(health_requests(instance, "t1"), dg.SkipReason)
        for shard in ("c", "a"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization("shard_images", partition=shard)
            )
        requests = health_requests(instance, "t1")
        assert [r.partition_key for r in requests] == ["a", "c"]  # pool order, downloaded only
        assert {r.run_key for r in requests} == {"health-a-t1", "health-c-t1"}
        instance.add_dynamic_partitions(SHARDS.name, ["d"])  # metadata mode: its selection only
        instance.report_runless_asset_event(
            dg.AssetMaterialization("selected_images", partition="d")
        )
        assert [r.partition_key for r in health_requests(instance, "t2")] == ["a", "c", "d"]
        skip, cursor = subset_health_request(instance, None)
        assert isinstance(skip, dg.SkipReason) and cursor is None
        instance.report_runless_asset_event(dg.AssetMaterialization("pool_health", partition="a"))
        request, cursor = subset_health_request(instance, cursor)
        assert isinstance(request, dg.RunRequest) and cursor
        assert isinstance(subset_health_request(instance, cursor)[0], dg.SkipReason)
