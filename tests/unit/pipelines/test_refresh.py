"""Pool refresh: the sensor and the schedule find new, changed and removed source files."""

import json
import os

import dagster as dg
import pytest
from poolsieve.assets.pool_shard import pool_shard
from poolsieve.assets.url_dedup import url_dedup
from poolsieve.pipelines.partitions import REPLACE_CHANGED_TAG, SHARDS, register_shards
from poolsieve.pipelines.refresh import pool_refresh_schedule, pool_source_sensor
from poolsieve.pipelines.resources import resources_from_env

from poolsieve.pool.sources import SourceError, plan_refresh, scan_source
from tests.conftest import row, write_datacomp


def _tick(instance, resources, cursor=None):
    lake = {"lake": resources.lake, "curation": resources.curation}
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=lake) as context:
        result = pool_source_sensor(context)
    assert result.dynamic_partitions_requests == []  # the sensor registers them itself
    return result


@pytest.fixture(autouse=True)
def scorer_exists(instance):
    """Most tests look at shards; the scorer-first rule has its own test below."""
    instance.report_runless_asset_event(dg.AssetMaterialization("scorer"))


def _write(source_dir, name, first_uid):
    return write_datacomp(source_dir / name, [row(first_uid), row(first_uid + 1)])


def _schedule_tick(instance, resources):
    """One schedule evaluation; the context is closed after it (left open, Dagster keeps the
    instance's state storage as the current one after the instance is gone)."""
    with dg.build_schedule_context(
        instance=instance, resources={"lake": resources.lake, "curation": resources.curation}
    ) as ctx:
        return pool_refresh_schedule(ctx)


def test_sensor_new_unchanged_new(instance, resources, source_dir):
    _write(source_dir, "a.parquet", 1)
    (source_dir / "README.txt").write_text("not a shard")
    first = _tick(instance, resources)
    assert [r.partition_key for r in first.run_requests] == ["a.parquet"]
    assert instance.get_dynamic_partitions(SHARDS.name) == ["a.parquet"]
    second = _tick(instance, resources, first.cursor)
    assert second.run_requests == [] and second.dynamic_partitions_requests == []
    _write(source_dir, "b.parquet", 10)
    third = _tick(instance, resources, second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["b.parquet"]
    assert instance.get_dynamic_partitions(SHARDS.name) == ["a.parquet", "b.parquet"]


def _ingested(instance, resources, source_dir, names: list[str]) -> None:
    """What `make demo` leaves: files registered and their pool_shard materialized (the source
    size and mtime recorded on each materialization), no sensor cursor."""
    for i, name in enumerate(names):
        _write(source_dir, name, 10 * i + 1)
    register_shards(instance, resources.lake, names)
    for name in names:
        result = dg.materialize(
            [pool_shard], partition_key=name, instance=instance, resources=resources.as_dict()
        )
        assert result.success


def test_a_fresh_sensor_runs_only_the_new_file_after_a_demo(instance, resources, source_dir):
    _ingested(instance, resources, source_dir, ["a.parquet", "b.parquet", "c.parquet", "d.parquet"])
    _write(source_dir, "e.parquet", 100)
    first = _tick(instance, resources)  # a fresh cursor: decided from the materializations
    [request] = first.run_requests
    assert request.partition_key == "e.parquet" and REPLACE_CHANGED_TAG not in request.tags
    assert instance.get_dynamic_partitions(SHARDS.name)[-1] == "e.parquet"
    assert _tick(instance, resources, first.cursor).run_requests == []  # requested already


def test_a_changed_materialized_file_is_run_with_the_replace_tag(instance, resources, source_dir):
    _ingested(instance, resources, source_dir, ["a.parquet", "b.parquet"])
    path = write_datacomp(source_dir / "b.parquet", [row(5), row(6), row(7)])
    os.utime(path, (1, 1))
    [request] = _tick(instance, resources).run_requests
    assert request.partition_key == "b.parquet"
    assert request.tags[REPLACE_CHANGED_TAG] == "true"
    assert [r.partition_key for r in _schedule_tick(instance, resources)] == ["b.parquet"]


def test_sensor_reports_removed_file_once(instance, resources, source_dir):
    _write(source_dir, "a.parquet", 1)
    _write(source_dir, "b.parquet", 10)
    first = _tick(instance, resources)
    (source_dir / "a.parquet").unlink()
    second = _tick(instance, resources, first.cursor)
    assert second.run_requests == []
    [event] = second.asset_events
    assert event.partition == "a.parquet" and event.metadata["removed_from_source"].value is True
    assert json.loads(second.cursor)["removed"] == ["a.parquet"]
    third = _tick(instance, resources, second.cursor)
    assert third.asset_events == []
    assert instance.get_dynamic_partitions(SHARDS.name) == ["a.parquet", "b.parquet"]  # kept


def test_sensor_requests_changed_file(instance, resources, source_dir):
    path = _write(source_dir, "a.parquet", 1)
    first = _tick(instance, resources)
    write_datacomp(path, [row(1), row(2), row(3)])
    os.utime(path, (1, 1))
    second = _tick(instance, resources, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["a.parquet"]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_schedule_registers_runs_then_skips(instance, resources, source_dir):
    _write(source_dir, "a.parquet", 1)
    requests = _schedule_tick(instance, resources)
    assert [r.partition_key for r in requests] == ["a.parquet"]
    assert instance.get_dynamic_partitions(SHARDS.name) == ["a.parquet"]
    dg.materialize(
        [pool_shard, url_dedup],
        partition_key="a.parquet",
        instance=instance,
        resources=resources.as_dict(),
    )
    again = _schedule_tick(instance, resources)
    assert isinstance(again, dg.SkipReason)


def test_plan_refresh_pure(source_dir):
    _write(source_dir, "a.parquet", 1)
    _write(source_dir, "sub/c.parquet", 20)
    listing = scan_source(str(source_dir))
    sig = listing.by_key()["a.parquet"].signature
    plan = plan_refresh(listing, ["a.parquet", "gone.parquet"], {"a.parquet": sig})
    assert (plan.new, plan.changed, plan.removed, plan.unchanged) == (
        ["sub/c.parquet"],
        [],
        ["gone.parquet"],
        ["a.parquet"],
    )


def test_scan_missing_source_fails_clearly(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        scan_source(str(tmp_path / "nope"))


def test_a_source_that_is_one_file_is_refused_with_the_folder_to_give(source_dir):
    one = write_datacomp(source_dir / "a.parquet", [row(1)])
    with pytest.raises(SourceError, match=r"is a file: give the folder that holds it"):
        scan_source(str(one))


def test_fsspec_memory_source(instance, lake):
    import fsspec

    fs = fsspec.filesystem("memory")
    local = write_datacomp(lake.root.parent / "m.parquet", [row(1), row(2)])
    fs.pipe("/pool/m.parquet", local.read_bytes())
    resources = resources_from_env(
        env={}, lake={"lake_dir": str(lake.root), "source": "memory://pool"}
    )
    listing = scan_source("memory://pool")
    assert [f.key for f in listing.files] == ["m.parquet"]
    instance.add_dynamic_partitions(SHARDS.name, ["m.parquet"])
    result = dg.materialize(
        [pool_shard, url_dedup],
        partition_key="m.parquet",
        instance=instance,
        resources=resources.as_dict(),
    )
    assert result.success


def test_scorer_comes_first_then_the_shards(resources, source_dir):
    _write(source_dir, "a.parquet", 1)
    with dg.instance_for_test() as fresh:
        first = _tick(fresh, resources)
        assert [(r.run_key, r.partition_key) for r in first.run_requests] == [
            ("scorer-first", None)
        ]
        assert first.run_requests[0].asset_selection == [dg.AssetKey("scorer")]
        assert fresh.get_dynamic_partitions(SHARDS.name) == ["a.parquet"]  # registered already
        fresh.report_runless_asset_event(dg.AssetMaterialization("scorer"))
        second = _tick(fresh, resources, first.cursor)
        assert [r.partition_key for r in second.run_requests] == ["a.parquet"]
        assert dg.AssetKey("clip_embeddings") in second.run_requests[0].asset_selection
        assert [r.partition_key for r in _schedule_tick(fresh, resources)] == ["a.parquet"]


def test_metadata_mode_runs_no_download_and_needs_no_scorer(tmp_path, source_dir, lake):
    from poolsieve.lake import METADATA_SHARD_ASSETS

    _write(source_dir, "a.parquet", 1)
    fields = {"lake_dir": str(lake.root), "source": str(source_dir), "duckdb_threads": 2}
    metadata = resources_from_env(env={}, lake=fields, curation={"mode": "metadata"})
    with dg.instance_for_test() as fresh:  # no scorer materialized
        first = _tick(fresh, metadata)
        (request,) = first.run_requests
        assert [k.to_user_string() for k in request.asset_selection] == METADATA_SHARD_ASSETS
        fresh.report_runless_asset_event(dg.AssetMaterialization("image_centroids"))
        _write(source_dir, "b.parquet", 10)
        (later,) = _tick(fresh, metadata, first.cursor).run_requests
        assert later.asset_selection[-1] == dg.AssetKey(
            "shard_clusters"
        )  # assigned, not re-trained
