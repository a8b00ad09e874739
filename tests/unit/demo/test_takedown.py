"""The demo world's takedown list (``<world>/takedown/requests.csv``): the exact count per kind,
targets that carry no other planted problem, entries that parse and name exactly their target's
uid, URL, served bytes' sha256 and pHash; and the demo's resources pointing at the list."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter

import imagehash
import pyarrow.parquet as pq
import pytest
from PIL import Image

from poolsieve.curate.takedown import load_lists
from poolsieve.pool.urlnorm import normalize_url, normalize_urls
from poolsieve_demo import WorldConfig, write_demo_world
from poolsieve_demo.resources import demo_resources, world_dir
from poolsieve_demo.takedown import KINDS, url_entry

SMALL = {"trusted_samples": 10, "trusted_shard_size": 10, "eval_per_class": 1}
#: copies and eval near-duplicates planted too, so the targets have rows to stay clear of
CONFIG = WorldConfig(
    rates={"near_duplicate_image": 0.05, "eval_near_duplicate": 0.02},
    retrieval_images=8,
    takedown_per_kind=3,
    **SMALL,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_demo_world(
        tmp_path_factory.mktemp("takedown"), seed=7, n_shards=2, rows_per_shard=100, config=CONFIG
    )


@pytest.fixture(scope="module")
def rows(world) -> dict[str, list[dict]]:
    return {p.name: pq.read_table(p).to_pylist() for p in world.shard_paths}


@pytest.fixture(scope="module")
def lists(world) -> list[dict]:
    return load_lists(world.takedown_dir).to_pylist()


def _served(world, url: str) -> bytes:
    """The bytes the demo server answers ``url`` with (an ``ok`` route: its file)."""
    routes = json.loads(world.routes_path.read_text())["routes"]
    entry = routes["/" + url.split("/", 3)[3]]
    assert entry["kind"] == "ok"
    return (world.images_dir / entry["file"]).read_bytes()


def test_the_list_has_the_exact_count_of_each_kind_per_shard(world, lists):
    truth = world.truth["takedown"]
    assert truth["list"] == "requests" and world.truth["version"] == 8
    assert [p.name for p in world.takedown_dir.iterdir()] == ["requests.csv"]
    entries = truth["entries"]
    per_shard = Counter((e["shard"], e["kind"]) for e in entries)
    assert per_shard == {(s, k): 3 for s in world.truth["shards"] for k in KINDS}
    assert [e["entry"] for e in entries] == list(range(1, len(entries) + 1))
    assert [(e["shard"], e["row"]) for e in entries] == sorted(
        (e["shard"], e["row"]) for e in entries
    )
    assert [(r["list"], r["entry"], r["kind"], r["reference"]) for r in lists] == [
        ("requests", e["entry"], e["kind"], f"demo-req-{e['entry']:04d}") for e in entries
    ]
    assert all(r["reason"] for r in lists)


def test_targets_carry_no_other_planted_problem(world, rows):
    truth = world.truth
    entries = truth["takedown"]["entries"]
    problems = {(p["shard"], p["row"]) for p in truth["problems"]}
    metadata = {(p["shard"], p["row"]) for p in truth["planted"]}
    originals = {(o["shard"], o["row"]) for p in truth["planted"] if (o := p["original"])}
    sources = {(d["source_shard"], d["source_row"]) for d in truth["image_near_duplicates"]}
    assert truth["image_near_duplicates"] and truth["eval_near_duplicates"]  # there to avoid
    targets = {(e["shard"], e["row"]) for e in entries}
    assert len(targets) == len({e["uid"] for e in entries}) == len(entries)
    assert not targets & (problems | metadata | originals | sources)
    every = [r for shard_rows in rows.values() for r in shard_rows]
    uids, urls = Counter(r["uid"] for r in every), Counter(normalize_urls(r["url"] for r in every))
    for e in entries:
        row = rows[e["shard"]][e["row"]]
        assert row["uid"] == e["uid"] and uids[e["uid"]] == 1
        assert urls[normalize_url(row["url"])] == 1
        _served(world, row["url"])  # downloads: an ok route with its image file


def test_each_entry_names_its_target(world, rows, lists):
    by_entry = {r["entry"]: r for r in lists}
    sha256s = Counter(r["sha256"] for shard_rows in rows.values() for r in shard_rows)
    for e in world.truth["takedown"]["entries"]:
        row, value = rows[e["shard"]][e["row"]], by_entry[e["entry"]]["value"]
        data = _served(world, row["url"])
        if e["kind"] == "uid":
            assert value == row["uid"]
        elif e["kind"] == "url":
            assert value != row["url"] and normalize_url(value) == normalize_url(row["url"])
        elif e["kind"] == "sha256":
            assert value == hashlib.sha256(data).hexdigest() == row["sha256"]
            assert sha256s[value] == 1
        else:
            assert value == str(imagehash.phash(Image.open(io.BytesIO(data))))


def test_a_url_entry_differs_only_in_what_normalize_url_erases():
    url = "http://localhost:8808/img/0000042.png"
    variant = url_entry(url, "demo-req-0001")
    assert variant.startswith("HTTP://LOCALHOST:8808/img/0000042.png?utm_source=")
    assert normalize_url(variant) == url
    assert normalize_url(url_entry(url + "?size=2", "t")) == url + "?size=2"


def test_no_entries_leaves_a_list_with_a_header_only(tmp_path):
    config = WorldConfig(takedown_per_kind=0, retrieval_images=4, **SMALL)
    world = write_demo_world(tmp_path, seed=1, n_shards=1, rows_per_shard=60, config=config)
    assert (world.takedown_dir / "requests.csv").read_text().count("\n") == 1
    assert load_lists(world.takedown_dir).num_rows == 0
    assert world.truth["takedown"] == {"list": "requests", "entries": []}


def test_too_many_targets_are_refused(tmp_path):
    config = WorldConfig(takedown_per_kind=10, retrieval_images=4, **SMALL)
    with pytest.raises(ValueError, match="takedown targets asked"):
        write_demo_world(tmp_path, n_shards=1, rows_per_shard=60, config=config)
    assert not (tmp_path / "world_truth.json").exists()
    with pytest.raises(ValueError, match="takedown_per_kind"):
        WorldConfig(takedown_per_kind=-1)


def test_the_demo_resources_point_at_the_worlds_list(tmp_path):
    lake = tmp_path / "lake"
    world = world_dir(lake)
    assert demo_resources(lake, env={}).curation.takedown_lists == str(world / "takedown")
    write_demo_world(
        world, n_shards=1, rows_per_shard=60, config=WorldConfig(retrieval_images=4, **SMALL)
    )
    assert demo_resources(lake, env={}).curation.takedown_lists == str(world / "takedown")
    (world / "takedown" / "requests.csv").unlink()
    (world / "takedown").rmdir()  # a world written before it had a list: none configured
    assert demo_resources(lake, env={}).curation.takedown_lists == ""
