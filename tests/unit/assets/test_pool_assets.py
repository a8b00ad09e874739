"""Assets through dagster.materialize with a temporary instance and a real DuckDB catalog."""

import hashlib

import dagster as dg
from poolsieve.assets.pool_shard import pool_shard
from poolsieve.assets.url_dedup import url_dedup
from poolsieve.pipelines.partitions import SHARDS, register_shards

from poolsieve.pool.dedup import DEDUP_MODELS
from poolsieve.pool.ingest import STAGING_MODELS
from poolsieve.sqlrunner import SqlProject
from tests.conftest import materialize_pool, row, write_datacomp

_materialize = materialize_pool


def _metadata(result, asset):
    event = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    )
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def _lake_files(lake):
    return {p: p.read_bytes() for p in lake.root.rglob("*.parquet") if p.is_file()}


def _pool(source_dir, instance, resources):
    write_datacomp(source_dir / "s0.parquet", [row(1), row(2, url="ftp://x.org/a.jpg"), row(3)])
    write_datacomp(
        source_dir / "s1.parquet", [row(10, url="http://img.example.com/1.jpg/"), row(11)]
    )
    register_shards(instance, resources.lake, ["s0.parquet", "s1.parquet"])


def test_lineage_metadata_and_checks(instance, resources, source_dir):
    _pool(source_dir, instance, resources)
    _materialize(instance, resources, "s0.parquet")
    result = _materialize(instance, resources, "s1.parquet")
    shard_meta, dedup_meta = _metadata(result, "pool_shard"), _metadata(result, "url_dedup")
    assert (
        shard_meta["rows_read"],
        shard_meta["rows_normalized"],
        shard_meta["rows_quarantined"],
    ) == (2, 2, 0)
    src = source_dir / "s1.parquet"
    assert shard_meta["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert shard_meta["source_size"] == src.stat().st_size
    assert shard_meta["sql_hash"] == SqlProject().code_version(
        [*STAGING_MODELS, "registry_entries"]
    )
    assert "url_norm" in [c.name for c in shard_meta["dagster/column_schema"].columns]
    assert dedup_meta["rows_kept"] == 1 and dedup_meta["dropped/duplicate_url"] == 1
    assert dedup_meta["earlier_shards_not_ingested"] == []
    assert all(c.passed for c in result.get_asset_check_evaluations())


def test_quarantine_reasons_are_metadata(instance, resources, source_dir):
    _pool(source_dir, instance, resources)
    meta = _metadata(_materialize(instance, resources, "s0.parquet"), "pool_shard")
    assert meta["quarantined/url_scheme"] == 1 and meta["quarantined/url_missing"] == 0


def test_code_version_is_the_sql_hash():
    project = SqlProject()
    assert pool_shard.code_versions_by_key[dg.AssetKey("pool_shard")] == project.code_version(
        [*STAGING_MODELS, "registry_entries"]
    )
    assert url_dedup.code_versions_by_key[dg.AssetKey("url_dedup")] == project.code_version(
        DEDUP_MODELS
    )


def test_bad_file_fails_alone_and_touches_nothing_else(instance, resources, source_dir, lake):
    _pool(source_dir, instance, resources)
    (source_dir / "broken.parquet").write_bytes(b"this is not parquet")
    instance.add_dynamic_partitions(SHARDS.name, ["broken.parquet"])
    _materialize(instance, resources, "s0.parquet")
    before = _lake_files(lake)
    result = _materialize(instance, resources, "broken.parquet", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert (
        "broken.parquet: not a readable parquet file" in failure.event_specific_data.error.message
    )
    assert _lake_files(lake) == before
    assert _materialize(instance, resources, "s1.parquet").success


def test_out_of_order_dedup_is_flagged_then_rechecked(instance, resources, source_dir):
    from poolsieve.pipelines.refresh import incomplete_dedups

    _pool(source_dir, instance, resources)
    result = _materialize(instance, resources, "s1.parquet")  # s0 (earlier) not ingested yet
    assert _metadata(result, "url_dedup")["earlier_shards_not_ingested"] == ["s0.parquet"]
    check = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not check["compared_with_all_earlier_shards"].passed
    assert incomplete_dedups(instance) == []  # s0 still not ingested: nothing to redo yet
    _materialize(instance, resources, "s0.parquet")
    assert [key for key, _ in incomplete_dedups(instance)] == ["s1.parquet"]
    rerun = _materialize(instance, resources, "s1.parquet")
    assert _metadata(rerun, "url_dedup")["rows_kept"] == 1
    assert incomplete_dedups(instance) == []
