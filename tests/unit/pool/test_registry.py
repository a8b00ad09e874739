"""The URL registry's files: their layout and its setting, the record as completion marker, what
readers ignore, and what re-ingesting a shard leaves behind."""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest

from poolsieve.duck import DuckSettings, connect
from poolsieve.lake import Lake, tmp_path_for
from poolsieve.pool import registry
from poolsieve.pool.dedup import dedup_shards
from poolsieve.pool.ingest import ingest_shard
from poolsieve.sqlrunner import SqlProject
from tests.conftest import row, uid, write_datacomp

SETTINGS = DuckSettings(memory_limit="1GB", threads=2)


@pytest.fixture
def mem():
    with connect(":memory:", SETTINGS) as conn:
        yield conn


def _ingest(mem, lake: Lake, tmp_path, shard: str, seq: int, rows: list[dict]) -> None:
    path = write_datacomp(tmp_path / "source" / shard, rows)
    ingest_shard(mem, lake, shard, seq, str(path))


def _decisions(mem, lake: Lake, shard: str) -> list[tuple]:
    dedup_shards(mem, lake, [shard])
    path = lake.partition_dir("url_dedup", shard) / "decisions.parquet"
    return mem.execute(
        "SELECT row_idx, reason, duplicate_of FROM read_parquet($p) ORDER BY row_idx",
        {"p": str(path)},
    ).fetchall()


def _registry_files(lake: Lake) -> list[str]:
    root = lake.root / "url_registry"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))


def test_a_new_registry_records_its_partitions_and_refuses_another_setting(lake):
    assert registry.check_layout(lake) == 16  # the default
    layout = json.loads((lake.root / "url_registry" / "layout.json").read_text())
    assert layout["partitions"] == 16
    assert registry.check_layout(lake, 16) == 16
    with pytest.raises(registry.RegistryLayoutError, match="into 16 bucket groups") as err:
        registry.check_layout(lake, 32)
    assert "asks for 32" in str(err.value) and "layout.json" in str(err.value)


@pytest.mark.parametrize("bad", [0, 3, 2048, -4])
def test_a_partitions_setting_that_is_not_a_power_of_two_up_to_1024_is_refused(lake, bad):
    with pytest.raises(registry.RegistryLayoutError, match=f"partitions {bad}: must be a power"):
        registry.check_layout(lake, bad)
    assert not (lake.root / "url_registry" / "layout.json").exists()


def test_files_go_to_their_partitions_groups(lake, mem, tmp_path):
    registry.check_layout(lake, 2)
    _ingest(mem, lake, tmp_path, "s", 0, [row(i) for i in range(1, 40)])
    record = registry.shard_records(lake)["s"]
    assert record["by_url"] == [0, 1] and record["by_uid"] == [0, 1]  # uids 1..39: odd, even
    name = f"s.{record['version']}.parquet"
    assert _registry_files(lake) == [
        f"{side}/bucket={g}/{name}" for side in ("by_uid", "by_url") for g in (0, 1)
    ]
    by_uid = mem.execute(
        "SELECT DISTINCT uid_lo % 2 FROM read_parquet($p)",
        {"p": str(lake.root / "url_registry" / "by_uid" / "bucket=1" / name)},
    ).fetchall()
    assert by_uid == [(1,)]


def test_readers_ignore_files_no_record_names_and_hidden_ones(lake, mem, tmp_path):
    _ingest(mem, lake, tmp_path, "a", 0, [row(1, url="http://x.org/1.jpg")])
    _ingest(mem, lake, tmp_path, "b", 1, [row(2, url="http://x.org/1.jpg")])
    record = registry.shard_records(lake)["a"]
    for path in (lake.root / "url_registry").rglob(f"a.{record['version']}.parquet"):
        # a shard whose record was never written, a crashed writer's temporary, another version
        shutil.copy(path, path.with_name("early.0123456789abcdef.parquet"))
        shutil.copy(path, tmp_path_for(path.with_name("b.parquet")))
        shutil.copy(path, path.with_name("b.fedcba9876543210.parquet"))
    (lake.root / "url_registry" / "shards" / ".early.json").write_text("{}")
    assert registry.registered_shards(lake) == {"a": 0, "b": 1}
    assert _decisions(mem, lake, "b") == [(0, "duplicate_url", uid(1))]
    assert _decisions(mem, lake, "a") == [(0, None, None)]


def _crash_after_first_file(monkeypatch) -> None:
    """The next re-ingest dies after moving its first file into place (before its record)."""
    real_commit, calls = registry.commit, []

    def commit_then_die(tmp, final):
        if calls:
            raise KeyboardInterrupt("killed mid-commit")
        calls.append(final)
        real_commit(tmp, final)

    monkeypatch.setattr(registry, "commit", commit_then_die)


def test_reingesting_replaces_exactly_the_shards_files(lake, mem, tmp_path, monkeypatch):
    registry.check_layout(lake, 4)
    _ingest(mem, lake, tmp_path, "a", 0, [row(i) for i in range(1, 30)])
    _ingest(mem, lake, tmp_path, "b", 1, [row(i) for i in range(30, 60)])
    before = _registry_files(lake)
    b_files = [f for f in before if "/b." in f]
    version = registry.shard_records(lake)["a"]["version"]
    with monkeypatch.context() as patch:
        _crash_after_first_file(patch)
        with pytest.raises(KeyboardInterrupt):
            _ingest(mem, lake, tmp_path, "a", 0, [row(i) for i in range(100, 140)])
    crashed = set(_registry_files(lake)) - set(before)
    assert len(crashed) == 1 and registry.shard_records(lake)["a"]["version"] == version
    with monkeypatch.context() as patch:  # the clean-up goes by name: no registry listing
        patch.setattr(registry, "registry_listing", lambda *a: pytest.fail("listed the registry"))
        _ingest(mem, lake, tmp_path, "a", 0, [row(1, url="http://x.org/only.jpg")])
    record = registry.shard_records(lake)["a"]
    assert record["version"] != version and record["rows"] == 1
    after = _registry_files(lake)
    assert [f for f in after if "/b." in f] == b_files  # b's untouched
    assert [f for f in after if "/a." in f] == [
        f"{side}/bucket={record[side][0]}/a.{record['version']}.parquet"
        for side in ("by_uid", "by_url")
    ]
    _ingest(mem, lake, tmp_path, "b", 1, [row(i) for i in range(30, 60)])
    assert _registry_files(lake) == after  # the same rows: the same files, nothing else


def test_a_shard_is_ingested_when_its_record_is_written(lake, mem, tmp_path):
    _ingest(mem, lake, tmp_path, "a", 0, [row(1)])
    (lake.root / "url_registry" / "shards" / "a.json").unlink()  # killed before its record
    assert registry.registered_shards(lake) == {}
    with pytest.raises(LookupError, match=r"\['a'\] are not ingested"):
        dedup_shards(mem, lake, ["a"])
    _ingest(mem, lake, tmp_path, "a", 0, [row(1)])
    assert _decisions(mem, lake, "a") == [(0, None, None)]


def test_shard_names_with_slashes_and_glob_characters_are_one_file_each(lake, mem, tmp_path):
    names = ["dir/part-[0].parquet", "dir/part-*.parquet"]
    for seq, shard in enumerate(names):
        _ingest(mem, lake, tmp_path, shard, seq, [row(seq + 1, url="http://x.org/1.jpg")])
    assert registry.registered_shards(lake) == {names[0]: 0, names[1]: 1}
    assert _decisions(mem, lake, names[1]) == [(0, "duplicate_url", uid(1))]
    assert _decisions(mem, lake, names[0]) == [(0, None, None)]


def test_records_gone_stale_under_a_decider_fail_its_joins_and_are_read_again(lake, mem, tmp_path):
    """A shard re-ingested while another is decided removes the files the decider's records
    name: the joins fail on a missing file (duckdb.IOException), which dedup_shards answers by
    reading the records again."""
    from poolsieve.pool import dedup

    _ingest(mem, lake, tmp_path, "a", 0, [row(1, url="http://x.org/1.jpg")])
    _ingest(mem, lake, tmp_path, "b", 1, [row(2, url="http://x.org/1.jpg")])
    stale = registry.shard_records(lake)
    _ingest(mem, lake, tmp_path, "a", 0, [row(1, url="http://x.org/other.jpg")])
    with pytest.raises(duckdb.IOException):
        dedup._collect_url_rows(mem, lake, stale, ["b"], SqlProject())
    assert _decisions(mem, lake, "b") == [(0, None, None)]


def test_a_damaged_record_is_named(lake, mem, tmp_path):
    _ingest(mem, lake, tmp_path, "a", 0, [row(1)])
    (lake.root / "url_registry" / "shards" / "a.json").write_text('{"shard": "a"}')
    with pytest.raises(ValueError, match=r"shards/a.json: not a URL registry record"):
        registry.shard_records(lake)
