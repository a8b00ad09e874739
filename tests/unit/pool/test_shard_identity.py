"""Shard identity and pool order live with the lake: a shard is (source, name, content), numbered in
the lake's order, whichever Dagster instance materializes it."""

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
from poolsieve.pipelines.partitions import REPLACE_CHANGED_TAG, SHARDS, register_shards
from poolsieve.pipelines.resources import resources_from_env

from poolsieve.pool import registry
from tests.conftest import materialize_pool, row, write_datacomp


def _resources(lake, source):
    fields = {"lake_dir": str(lake.root), "source": str(source), "duckdb_threads": 2}
    return resources_from_env(env={}, lake=fields)


def _materialize(instance, resources, key, tags=None):
    return materialize_pool(instance, resources, key, raise_on_error=False, tags=tags)


def _failure(result) -> str:
    return "\n".join(
        e.event_specific_data.error.message for e in result.all_events if e.is_step_failure
    )


def test_enrol_numbers_names_in_the_order_given_and_is_idempotent(lake):
    assert registry.enroll(lake, "/a", ["b", "a"]) == {"b": 0, "a": 1}
    assert registry.enroll(lake, "/a", ["a", "c", "b"]) == {"a": 1, "c": 2, "b": 0}
    assert registry.pool_order(lake) == ["b", "a", "c"]


def test_a_name_of_another_source_is_refused_and_nothing_is_enrolled(lake):
    registry.enroll(lake, "/pool/a", ["part-0.parquet"])
    with pytest.raises(registry.ShardIdentityError, match="/pool/a") as err:
        registry.enroll(lake, "/pool/b", ["new.parquet", "part-0.parquet"])
    assert "part-0.parquet" in str(err.value) and "/pool/b" in str(err.value)
    assert registry.pool_order(lake) == ["part-0.parquet"]


def test_changed_content_is_refused_unless_replacing(lake, tmp_path):
    assert registry.check_content(lake, "s", "aa" * 32, replace=False) is None
    with duckdb.connect() as conn:
        conn.execute(
            "CREATE TABLE keys AS SELECT 0::BIGINT AS row_idx, 1::UHUGEINT AS url_key, "
            "2::UHUGEINT AS uid_key"
        )
        registry.replace_shard(lake, conn, "s", 0, "keys", "aa" * 32)
    assert registry.check_content(lake, "s", "aa" * 32, replace=False) == "aa" * 32
    with pytest.raises(registry.ShardIdentityError, match="--replace-changed"):
        registry.check_content(lake, "s", "bb" * 32, replace=False)
    assert registry.check_content(lake, "s", "bb" * 32, replace=True) == "aa" * 32
    registry.record_source(lake, "s", "bb" * 32)
    assert registry.check_content(lake, "s", "bb" * 32, replace=False) == "bb" * 32


def test_a_second_source_with_the_same_names_does_not_replace_the_first(lake, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    write_datacomp(first / "part-0.parquet", [row(1), row(2)])
    write_datacomp(second / "part-0.parquet", [row(7), row(8), row(9)])
    with dg.instance_for_test() as instance:
        register_shards(instance, _resources(lake, first).lake, ["part-0.parquet"])
        assert _materialize(instance, _resources(lake, first), "part-0.parquet").success
    rows = lake.partition_dir("pool_shard", "part-0.parquet") / "rows.parquet"
    before = rows.read_bytes()
    with dg.instance_for_test() as instance:  # another instance, as a second user would run it
        instance.add_dynamic_partitions(SHARDS.name, ["part-0.parquet"])
        result = _materialize(instance, _resources(lake, second), "part-0.parquet")
    assert not result.success
    assert str(first) in _failure(result) and str(second) in _failure(result)
    assert rows.read_bytes() == before and pq.read_metadata(rows).num_rows == 2


def test_two_instances_on_one_lake_share_its_pool_order(lake, tmp_path):
    """Each instance numbered its own partitions from 0, so both copies of a URL were kept."""
    first, second = tmp_path / "first", tmp_path / "second"
    write_datacomp(first / "a.parquet", [row(1, url="http://x.org/1.jpg")])
    write_datacomp(second / "b.parquet", [row(2, url="http://x.org/1.jpg")])
    for source, key in ((first, "a.parquet"), (second, "b.parquet")):
        with dg.instance_for_test() as instance:
            register_shards(instance, _resources(lake, source).lake, [key])
            result = _materialize(instance, _resources(lake, source), key)
            assert result.success, _failure(result)
    decisions = pq.read_table(lake.partition_dir("url_dedup", "b.parquet") / "decisions.parquet")
    assert decisions.column("reason").to_pylist() == ["duplicate_url"]
    assert decisions.column("duplicate_of").to_pylist() == [f"{1:032x}"]


def test_a_file_changed_under_its_name_is_replaced_only_when_the_run_says_so(
    instance, lake, source_dir
):
    resources = _resources(lake, source_dir)
    path = write_datacomp(source_dir / "s.parquet", [row(1)])
    register_shards(instance, resources.lake, ["s.parquet"])
    assert _materialize(instance, resources, "s.parquet").success
    write_datacomp(path, [row(1), row(2)])
    refused = _materialize(instance, resources, "s.parquet")
    assert not refused.success and "s.parquet" in _failure(refused)
    assert "content changed" in _failure(refused)
    replaced = _materialize(instance, resources, "s.parquet", {REPLACE_CHANGED_TAG: "true"})
    assert replaced.success
    shard_event = replaced.get_asset_materialization_events()[0].materialization
    assert shard_event.metadata["replaced_source_sha256"].value != ""
    assert shard_event.metadata["rows_normalized"].value == 2
