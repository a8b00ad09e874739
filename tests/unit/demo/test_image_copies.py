"""Planted near-duplicate pool images (``near_duplicate_image``): how many, which rows they copy,
and what the server serves for them."""

from __future__ import annotations

import io
import json
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from poolsieve_demo import WorldConfig, write_demo_world
from poolsieve_demo.concepts import COLORS, SHAPES
from poolsieve_demo.optout import OPTOUT_KINDS
from poolsieve_demo.perturb import PERTURBATIONS
from poolsieve_demo.problems import problem_count
from tests.unit.demo.test_world import _words

KIND = "near_duplicate_image"
SMALL = {"trusted_samples": 10, "trusted_shard_size": 10, "eval_per_class": 1}
#: 10 copies per shard, 30 in all
CONFIG = WorldConfig(rates={KIND: 0.1}, retrieval_images=4, **SMALL)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_demo_world(
        tmp_path_factory.mktemp("copies"), seed=4, n_shards=3, rows_per_shard=100, config=CONFIG
    )


def _rows(world) -> dict[str, list[dict]]:
    return {p.name: pq.read_table(p).to_pylist() for p in world.shard_paths}


def _position(world, shard: str, row: int) -> tuple[int, int]:
    """(shard index, row): pool order."""
    return world.truth["shards"].index(shard), row


def _check_copies(world, rate: float) -> list[dict]:
    """Every property the truth promises of the planted copies; returns them."""
    truth, rows = world.truth, _rows(world)
    copies = truth["image_near_duplicates"]
    want = problem_count(rate, truth["params"]["rows_per_shard"])
    per_shard = Counter(d["shard"] for d in copies)
    for shard in truth["shards"]:
        assert per_shard[shard] == want == truth["problem_counts_per_shard"][shard][KIND]
    entries = {(p["shard"], p["row"]): p for p in truth["problems"] if p["kind"] == KIND}
    assert [(d["shard"], d["row"]) for d in copies] == sorted(entries)
    problem_rows = {(p["shard"], p["row"]) for p in truth["problems"]}
    metadata_rows = {(p["shard"], p["row"]) for p in truth["planted"]}
    metadata_originals = {(o["shard"], o["row"]) for p in truth["planted"] if (o := p["original"])}
    sources = [(d["source_shard"], d["source_row"]) for d in copies]
    assert len(set(sources)) == len(sources)  # no source used twice
    for d, source in zip(copies, sources, strict=True):
        p = entries[(d["shard"], d["row"])]
        assert (p["uid"], p["duplicate_of"], p["detail"]) == (
            d["uid"],
            d["duplicate_of"],
            d["perturbation"],
        )
        assert (p["source_shard"], p["source_row"]) == source and d["perturbation"] in PERTURBATIONS
        assert _position(world, *source) < _position(world, d["shard"], d["row"])
        assert source not in problem_rows | metadata_rows | metadata_originals  # clean
        copy, original = rows[d["shard"]][d["row"]], rows[source[0]][source[1]]
        assert copy["uid"] == d["uid"] and original["uid"] == d["duplicate_of"] != d["uid"]
        assert copy["url"].split("/", 3)[3] != original["url"].split("/", 3)[3]
        size = [original["original_width"], original["original_height"]]
        assert [copy["original_width"], copy["original_height"]] == size == p["size"]
        color, shape = p["concept"].split(" ")
        assert color in _words(copy["text"], COLORS) and shape in _words(copy["text"], SHAPES)
    return copies


def test_copies_are_planted_on_earlier_clean_rows_at_the_exact_count(world):
    copies = _check_copies(world, 0.1)
    assert len(copies) == 30
    assert {d["source_shard"] for d in copies} == set(world.truth["shards"])
    assert any(d["source_shard"] < d["shard"] for d in copies)  # across shards too
    assert {d["perturbation"] for d in copies} == set(PERTURBATIONS)


@pytest.mark.parametrize("seed", [0, 2])
def test_copies_on_a_crowded_first_shard(tmp_path, seed):
    """One shard, 12 copies among 60 rows: with these seeds several copies are first drawn onto
    rows with no clean row before them and trade kinds with a later problem row; the counts and
    every rule still hold. (Too few clean rows are left for takedown targets: none asked.)"""
    no_optouts = dict.fromkeys(OPTOUT_KINDS, 0.0)  # the crowded shard as these seeds drew it
    config = WorldConfig(
        rates={KIND: 0.2, **no_optouts}, retrieval_images=4, takedown_per_kind=0, **SMALL
    )
    world = write_demo_world(tmp_path, seed=seed, n_shards=1, rows_per_shard=60, config=config)
    assert len(_check_copies(world, 0.2)) == 12


def _served(world, routes, url: str) -> bytes:
    return (world.images_dir / routes["/" + url.split("/", 3)[3]]["file"]).read_bytes()


def _pixels(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return np.asarray(image if size is None else image.resize(size, Image.BILINEAR), dtype=float)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference after undoing a brightness change and a shift of up to
    4 px. (A plain difference of 64x64 thumbnails does not do: a 2-4 px shift of a noise or
    checker texture differs there as much as two unrelated images do.)"""
    a, b = a * (128 / a.mean()), b * (128 / b.mean())
    h, w = a.shape[:2]
    return min(np.abs(a[y:, x:] - b[: h - y, : w - x]).mean() for y in range(5) for x in range(5))


def test_a_copy_serves_its_source_image_perturbed(world):
    """A copy's bytes differ from its source's, yet decode to the same image up to the
    perturbation: far closer than to the sources of three other copies (resized to match)."""
    routes = json.loads(world.routes_path.read_text())["routes"]
    rows = _rows(world)
    copies = world.truth["image_near_duplicates"]
    sources = [
        _served(world, routes, rows[d["source_shard"]][d["source_row"]]["url"]) for d in copies
    ]
    near, unrelated = [], []
    for k, d in enumerate(copies):
        data = _served(world, routes, rows[d["shard"]][d["row"]]["url"])
        assert data != sources[k]
        copy = _pixels(data)
        assert copy.shape == _pixels(sources[k]).shape
        near.append(_distance(copy, _pixels(sources[k])))
        size = (copy.shape[1], copy.shape[0])
        others = (sources[(k + j) % len(copies)] for j in (1, 2, 3))
        unrelated.append(min(_distance(copy, _pixels(o, size)) for o in others))
    assert max(near) < 8 < min(unrelated), (max(near), min(unrelated))
