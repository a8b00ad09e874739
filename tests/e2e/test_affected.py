"""``poolsieve affected``, as a user runs it: takedown lists against a small ingested lake."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.duck import DuckSettings, connect
from poolsieve.images.hashes import SCHEMA as HASHES_SCHEMA
from poolsieve.lake import Lake
from poolsieve.pool.ingest import ingest_shard
from tests.conftest import row, uid, write_datacomp

POOLSIEVE = str(Path(sys.executable).parent / "poolsieve")


def _run(args, tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    env.pop("POOLSIEVE_LAKE", None)
    return subprocess.run([POOLSIEVE, *args], env=env, capture_output=True, text=True, timeout=300)


def _lake(tmp_path) -> Lake:
    """Two ingested shards (a with image hashes), and two subsets: basic keeps uids 1-3 and has
    a model; strict drops them all."""
    lake = Lake(tmp_path / "lake")
    lake.root.mkdir()
    sources = {
        "a": [row(1), row(2, url="http://IMG.example.com/2.jpg/?utm_source=feed"), row(3)],
        "b": [row(4), row(5)],
    }
    with connect(lake.catalog, DuckSettings(memory_limit="1GB", threads=2)) as conn:
        for seq, (shard, rows) in enumerate(sources.items()):
            path = write_datacomp(tmp_path / "source" / f"{shard}.parquet", rows)
            ingest_shard(conn, lake, shard, seq, str(path))
    hashes = lake.partition_dir("image_hashes", "a") / "hashes.parquet"
    hashes.parent.mkdir(parents=True)
    image = {"uid": uid(3), "key": "000000000", "sha256": "cd" * 32, "phash": 0x0F, "error": None}
    pq.write_table(pa.Table.from_pylist([image], schema=HASHES_SCHEMA), hashes)
    for strategy, keep in [("basic", True), ("strict", False)]:
        folder = lake.partition_dir("subset", strategy)
        folder.mkdir(parents=True)
        uids = [uid(i) for i in range(1, 6)]
        pq.write_table(pa.table({"uid": uids, "keep": [keep] * 5}), folder / "decisions.parquet")
    lake.partition_dir("clip_model", "basic").mkdir(parents=True)
    return lake


def test_affected_prints_the_matches_and_the_subsets_and_models_touched(tmp_path):
    lake = _lake(tmp_path)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "dmca.csv").write_text(
        f"uid,url,reason,reference\n{uid(5)},,dmca,REQ-1\n,http://img.example.com/2.jpg,dmca,REQ-2\n"
    )
    (lists / "hashes.csv").write_text("phash\n000000000000000e\n")  # 1 bit from uid 3's image
    proc = _run(["affected", str(lists), "--lake", str(lake.root)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "removed uids: 3 (3 matches)" in out, out
    assert "shard a row 1: list dmca entry 2 by url [dmca, REQ-2]" in out, out
    assert "shard a row 2: list hashes entry 1 by phash (1 bit apart)" in out, out
    assert "shard b row 1: list dmca entry 1 by uid [dmca, REQ-1]" in out, out
    assert "basic: keeps 3" in out and "built on it: clip_model[basic]" in out, out
    assert "strict: drops 3" in out, out

    proc = _run(["affected", str(lists / "dmca.csv"), "--lake", str(lake.root), "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert sorted(doc["removed"]) == [uid(2), uid(5)]
    assert doc["removed"][uid(5)][0]["matched_on"] == "uid"
    assert doc["affected"]["basic"]["kept"] == 2
    assert doc["affected"]["basic"]["built_on"]["clip_model"] is True
    assert doc["unaffected_held"] == {"strict": {"dropped": 2}}


def test_affected_names_a_bad_list_and_exits_2(tmp_path):
    lake = _lake(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("sha256\nnot-hex\n")
    proc = _run(["affected", str(bad), "--lake", str(lake.root)], tmp_path)
    assert proc.returncode == 2
    assert "bad.csv: row 1: sha256: 'not-hex' is not 64 hex digits" in proc.stderr
    proc = _run(["affected", str(bad), "--lake", str(tmp_path / "nowhere")], tmp_path)
    assert proc.returncode == 2 and "nowhere is not a lake" in proc.stderr
    assert not (tmp_path / "nowhere").exists()
