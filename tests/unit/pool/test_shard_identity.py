"""Shard identity and pool order live with the lake: a shard is (source, name, content), numbered in
the lake's order, whichever Dagster instance materializes it."""

import dagster as dg
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


def test_enrol_numbers_names_in_the_order_given_and_is_idempotent(conn):
    assert registry.enroll(conn, "/a", ["b", "a"]) == {"b": 0, "a": 1}
    assert registry.enroll(conn, "/a", ["a", "c", "b"]) == {"a": 1, "c": 2, "b": 0}
    assert registry.pool_order(conn) == ["b", "a", "c"]


def test_a_name_of_another_source_is_refused_and_nothing_is_enrolled(conn):
    registry.enroll(conn, "/pool/a", ["part-0.parquet"])
    with pytest.raises(registry.ShardIdentityError, match="/pool/a") as err:
        registry.enroll(conn, "/pool/b", ["new.parquet", "part-0.parquet"])
    assert "part-0.parquet" in str(err.value) and "/pool/b" in str(err.value)
    assert registry.pool_order(conn) == ["part-0.parquet"]


def test_a_catalog_from_before_pool_order_keeps_its_order_and_loses_clashing_numbers(conn):
    registry.ensure_registry(conn)
    conn.execute(
        "INSERT INTO shard_registry (shard, shard_seq, rows) VALUES "
        "('x', 0, 1), ('y', 0, 1), ('z', 1, 0)"  # two instances gave x and y the number 0
    )
    conn.execute("INSERT INTO url_registry VALUES ('x', 0, 0, 1, 1, 0), ('y', 0, 0, 1, 2, 0)")
    assert registry.enroll(conn, "/s", ["w"]) == {"w": 3}
    assert registry.pool_order(conn) == ["x", "y", "z", "w"]
    seqs = dict(conn.execute("SELECT shard, shard_seq FROM url_registry").fetchall())
    assert seqs == {"x": 0, "y": 1}


def test_changed_content_is_refused_unless_replacing(conn):
    assert registry.check_content(conn, "s", "aa" * 32, replace=False) is None
    conn.execute("INSERT INTO shard_registry VALUES ('s', 0, 5, $sha)", {"sha": "aa" * 32})
    assert registry.check_content(conn, "s", "aa" * 32, replace=False) == "aa" * 32
    with pytest.raises(registry.ShardIdentityError, match="--replace-changed"):
        registry.check_content(conn, "s", "bb" * 32, replace=False)
    assert registry.check_content(conn, "s", "bb" * 32, replace=True) == "aa" * 32


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


def test_registered_shards_of_a_catalog_from_before_shard_registry_come_from_their_rows(conn):
    registry.ensure_registry(conn)
    conn.execute(
        "INSERT INTO shard_registry (shard, shard_seq, rows) VALUES ('y', 1, 1), ('z', 2, 0)"
    )
    conn.execute("INSERT INTO url_registry VALUES ('x', 0, 0, 1, 1, 0), ('y', 1, 0, 2, 2, 0)")
    assert registry.registered_shards(conn) == {"x": 0, "y": 1, "z": 2}  # x: rows only
    conn.execute("INSERT INTO shard_registry (shard, shard_seq, rows) VALUES ('x', 0, 1)")
    assert registry.registered_shards(conn) == {"x": 0, "y": 1, "z": 2}  # every row recorded
