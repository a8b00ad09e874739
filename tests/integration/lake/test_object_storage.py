"""The lake on object storage (poolsieve.mirror) against a real S3 API on 127.0.0.1 (moto's
server): what one working copy commits, another working copy of the same lake reads; replaced
folders, removals and the completion markers behave as docs/lake.md says."""

from __future__ import annotations

import json

import pytest
import s3fs

from poolsieve.lake import Lake, commit, remove, replace_dir, tmp_path_for, write_json
from poolsieve.mirror import COMPLETE, WRITING, LakeSyncError


def two_copies(url: str, server, tmp_path) -> tuple[Lake, Lake]:
    """Two machines' views of one remote lake: two working copies."""
    return (
        Lake.at(url, tmp_path / "cache_a", server.options),
        Lake.at(url, tmp_path / "cache_b", server.options),
    )


def s3(server) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(**server.options, skip_instance_cache=True)


def test_a_commit_is_read_by_another_working_copy(s3_server, s3_lake_url, tmp_path):
    a, b = two_copies(s3_lake_url, s3_server, tmp_path)
    final = a.partition_dir("url_dedup", "dir/shard_0.parquet") / "decisions.parquet"
    tmp = tmp_path_for(final)
    tmp.write_bytes(b"decisions v1")
    commit(tmp, final)
    read = b.partition_dir("url_dedup", "dir/shard_0.parquet") / "decisions.parquet"
    assert read.read_bytes() == b"decisions v1"
    assert read.parent.name == "dir%2Fshard_0.parquet"  # the key quoted as a local lake does
    write_json(final, {"v": 2})  # a second version replaces the first, in place
    assert json.loads(b.asset_files("url_dedup", "decisions.parquet")[0] and read.read_text()) == {
        "v": 2
    }


def test_pull_downloads_only_what_changed(s3_server, s3_lake_url, tmp_path):
    a, b = two_copies(s3_lake_url, s3_server, tmp_path)
    for name in ("x", "y"):
        write_json(a.path("subset", "s") / f"{name}.json", {"name": name})
    folder = b.path("subset", "s")
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    (folder / "x.json").write_text("tampered locally")  # other size: pulled again
    b.path("subset", "s")
    assert json.loads((folder / "x.json").read_text()) == {"name": "x"}
    assert (folder / "y.json").stat().st_mtime_ns == before["y.json"]


def test_replaced_folder_loses_its_stale_files_everywhere(s3_server, s3_lake_url, tmp_path):
    a, b = two_copies(s3_lake_url, s3_server, tmp_path)
    out = a.partition_dir("shard_images", "s0")
    _replace(out, {"00000.tar": b"a", "00001.tar": b"b"})
    assert sorted(p.name for p in b.partition_dir("shard_images", "s0").iterdir()) == [
        "00000.tar",
        "00001.tar",
    ]
    _replace(out, {"00000.tar": b"new"})
    seen = b.partition_dir("shard_images", "s0")
    assert {p.name: p.read_bytes() for p in seen.iterdir()} == {"00000.tar": b"new"}
    remote = s3(s3_server).ls(f"{s3_lake_url}/shard_images/s0")
    assert sorted(r.rsplit("/", 1)[1] for r in remote) == [COMPLETE, "00000.tar"]


def test_a_folder_being_written_is_not_read(s3_server, s3_lake_url, tmp_path):
    a, b = two_copies(s3_lake_url, s3_server, tmp_path)
    _replace(a.partition_dir("clip_model", "basic"), {"model.json": b"{}"})
    fs = s3(s3_server)
    fs.pipe_file(f"{s3_lake_url}/clip_model/basic/{WRITING}", b"")  # a writer mid-upload
    assert not b.partition_dir("clip_model", "basic").exists()
    fs.rm_file(f"{s3_lake_url}/clip_model/basic/{WRITING}")
    assert (b.partition_dir("clip_model", "basic") / "model.json").read_bytes() == b"{}"


def test_removal_reaches_every_working_copy(s3_server, s3_lake_url, tmp_path):
    a, b = two_copies(s3_lake_url, s3_server, tmp_path)
    write_json(a.path("pool_features") / "s0.json", {})
    write_json(a.path("pool_features") / "s1.json", {})
    assert len(b.glob("pool_features/*.json")) == 2
    remove(a.root / "pool_features" / "s0.json")
    assert [p.name for p in b.glob("pool_features/*.json")] == ["s1.json"]
    assert [p.name for p in b.path("pool_features").iterdir()] == ["s1.json"]


def test_the_catalog_and_locks_stay_local(s3_server, s3_lake_url, tmp_path):
    a, _ = two_copies(s3_lake_url, s3_server, tmp_path)
    write_json(a.root / "locks" / "x.json", {})
    write_json(a.root / "subset" / "y.json", {})
    assert s3(s3_server).find(s3_lake_url) == [f"{s3_lake_url[5:]}/subset/y.json"]


def test_unreachable_store_names_the_lake(tmp_path):
    options = {"endpoint_url": "http://127.0.0.1:9", "key": "k", "secret": "s"}
    lake = Lake.at("s3://nobucket/lake", tmp_path, options)
    with pytest.raises(LakeSyncError, match=r"nobucket/lake/pool_shard/s0 in the lake s3://no"):
        lake.partition_dir("pool_shard", "s0")


def _replace(final, files: dict[str, bytes]) -> None:
    work = tmp_path_for(final)
    work.mkdir()
    for name, data in files.items():
        (work / name).write_bytes(data)
    replace_dir(work, final)
