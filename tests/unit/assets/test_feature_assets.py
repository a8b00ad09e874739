"""shard_features and pool_features through Dagster: metadata, checks, and a pool refresh that
computes only the new shard's features."""

import dagster as dg
import pytest
from poolsieve.assets.pool_features import pool_features
from poolsieve.assets.pool_shard import pool_shard
from poolsieve.assets.shard_features import shard_features
from poolsieve.assets.url_dedup import url_dedup
from poolsieve.pipelines.jobs import SHARD_ASSETS
from poolsieve.pipelines.refresh import pool_source_sensor
from poolsieve.pipelines.resources import resources_from_env

from poolsieve.curate.shard_features import CODE_VERSION, FEATURES_FILE
from tests.conftest import row, write_datacomp

#: the per-shard assets that run without images (the unit lane downloads nothing)
NO_IMAGES = [pool_shard, url_dedup, shard_features]


@pytest.fixture
def metadata_resources(lake, source_dir):
    """Metadata mode: a row is eligible without a download."""
    lake_fields = {"lake_dir": str(lake.root), "source": str(source_dir), "duckdb_threads": 2}
    return resources_from_env(env={}, lake=lake_fields, curation={"mode": "metadata"})


def _metadata(result, asset):
    [event] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    ]
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def _shard(instance, resources, key):
    result = dg.materialize(
        NO_IMAGES, partition_key=key, instance=instance, resources=resources.as_dict()
    )
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    return result


def _pool_features(instance, resources):
    result = dg.materialize([pool_features], instance=instance, resources=resources.as_dict())
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    return _metadata(result, "pool_features")


def test_shard_features_reports_rows_languages_and_detectors(
    instance, metadata_resources, source_dir
):
    rows = [row(1, text="a red car\n"), row(2, text="ein rotes Auto"), row(3, text=None)]
    write_datacomp(source_dir / "s0.parquet", rows)
    instance.add_dynamic_partitions("pool_shards", ["s0.parquet"])
    meta = _metadata(_shard(instance, metadata_resources, "s0.parquet"), "shard_features")
    assert meta["dagster/row_count"] == 3
    assert meta["languages"] == {"en": 1, "de": 1, "": 1}
    assert (meta["language_detector"], meta["laion_language_detector"]) == ("fasttext", "gcld3")
    assert meta["rows_per_s"] > 0
    assert shard_features.code_versions_by_key[dg.AssetKey("shard_features")] == CODE_VERSION


def test_shard_features_run_with_every_shard_and_after_dedup():
    assert SHARD_ASSETS.index("shard_features") == SHARD_ASSETS.index("url_dedup") + 1


def _tick(instance, resources, cursor=None):
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"lake": resources.lake, "curation": resources.curation},
    ) as context:
        return pool_source_sensor(context)


def _run_requested(instance, resources, tick):
    """Each requested shard's run, limited to the assets that need no images."""
    for request in tick.run_requests:
        assert dg.AssetKey("shard_features") in request.asset_selection
        _shard(instance, resources, request.partition_key)
    return [r.partition_key for r in tick.run_requests]


def _features_runs(instance, key):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("shard_features"), asset_partitions=[key]),
        limit=10,
    ).records
    return len(records)


def test_a_refresh_computes_only_the_new_shards_features(instance, metadata_resources, source_dir):
    """Two shards through the refresh sensor and pool_features; a third file arrives: only its
    shard_features runs, the others' files stay byte-identical, pool_features holds all three."""
    instance.report_runless_asset_event(dg.AssetMaterialization("scorer"))
    lake = metadata_resources.lake.store
    write_datacomp(source_dir / "a.parquet", [row(1, text="a dog"), row(2, text="zwei Katzen")])
    write_datacomp(source_dir / "b.parquet", [row(10), row(11, url="http://img.example.com/1.jpg")])
    first = _tick(instance, metadata_resources)
    assert _run_requested(instance, metadata_resources, first) == ["a.parquet", "b.parquet"]
    assert _pool_features(instance, metadata_resources)["dagster/row_count"] == 4
    old = ["a.parquet", "b.parquet"]
    files = {s: lake.partition_dir("shard_features", s) / FEATURES_FILE for s in old}
    before = {s: p.read_bytes() for s, p in files.items()}

    write_datacomp(source_dir / "c.parquet", [row(20, text="un chien"), row(21)])
    second = _tick(instance, metadata_resources, first.cursor)
    assert _run_requested(instance, metadata_resources, second) == ["c.parquet"]
    meta = _pool_features(instance, metadata_resources)
    assert {s: p.read_bytes() for s, p in files.items()} == before
    assert [_features_runs(instance, s) for s in [*old, "c.parquet"]] == [1, 1, 1]
    assert (meta["dagster/row_count"], meta["eligible"], meta["shards"]) == (6, 5, 3)
    assert meta["ineligible/duplicate_url"] == 1 and meta["mode"] == "metadata"
    assert meta["shards_without_clusters"] == [*old, "c.parquet"]
