"""Demo world v2: determinism, layout, exact planted proportions, images, held-out eval sets."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from poolsieve.demo import WorldConfig, load_demo_world, write_demo_world
from poolsieve.demo.captions import FOREIGN
from poolsieve.demo.concepts import CLASSNAMES, COLORS, RGB, SHAPES
from poolsieve.demo.pool import SCHEMA
from poolsieve.demo.problems import OUTCOMES, PROBLEM_KINDS, ROUTE_OF, problem_count
from poolsieve.demo.render import FORMATS, shape_mask
from poolsieve.demo.specs import sample_spec

SMALL = WorldConfig(
    trusted_samples=120,
    trusted_shard_size=50,
    eval_per_class=2,
    retrieval_images=30,
    slow_seconds=1.0,
)
TINY = WorldConfig(trusted_samples=20, trusted_shard_size=10, eval_per_class=1, retrieval_images=5)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    return write_demo_world(root, seed=3, n_shards=2, rows_per_shard=100, config=SMALL)


@pytest.fixture(scope="module")
def rows(world):
    return {p.name: pq.read_table(p).to_pylist() for p in world.shard_paths}


@pytest.fixture(scope="module")
def routes(world):
    return json.loads(world.routes_path.read_text())["routes"]


def _path(url: str) -> str:
    return "/" + url.strip().split("/", 3)[3]


def _image(world, routes, url: str) -> Image.Image:
    image = Image.open(world.images_dir / routes[_path(url)]["file"])
    image.load()
    return image


def _digests(root) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_same_seed_gives_identical_files(tmp_path):
    first = write_demo_world(tmp_path / "a", seed=5, n_shards=2, rows_per_shard=60, config=TINY)
    again = write_demo_world(tmp_path / "b", seed=5, n_shards=2, rows_per_shard=60, config=TINY)
    other = write_demo_world(tmp_path / "c", seed=6, n_shards=2, rows_per_shard=60, config=TINY)
    assert _digests(first.root) == _digests(again.root)
    differ = _digests(first.root).items() ^ _digests(other.root).items()
    assert {name for name, _ in differ} >= {"world_truth.json", "source/shard_00000.parquet"}


def test_rewrite_replaces_the_world(tmp_path):
    write_demo_world(tmp_path, seed=1, n_shards=3, rows_per_shard=60, config=TINY)
    world = write_demo_world(tmp_path, seed=1, n_shards=2, rows_per_shard=60, config=TINY)
    assert sorted(p.name for p in world.source_dir.iterdir()) == world.truth["shards"]
    assert not list(tmp_path.glob(".world-staging-*"))
    assert load_demo_world(tmp_path).truth == world.truth


def test_layout(world):
    truth = json.loads(world.truth_path.read_text())
    assert truth == world.truth and truth["version"] == 2 and truth["seed"] == 3
    assert [pq.read_schema(p) for p in world.shard_paths] == [SCHEMA, SCHEMA]
    assert truth["allowlist_hosts"] == ["127.0.0.1:8808", "localhost:8808"]
    sizes = json.loads((world.trusted_dir / "sizes.json").read_text())
    assert sizes == {"trusted-00000.tar": 50, "trusted-00001.tar": 50, "trusted-00002.tar": 20}
    assert truth["trusted"] == {"shards": list(sizes), "num_samples": 120}
    cls = world.eval_dir / "classification"
    assert (cls / "classnames.txt").read_text().splitlines() == list(CLASSNAMES)
    assert all("{}" in t for t in (cls / "templates.txt").read_text().splitlines())
    assert truth["eval"] == {
        "classification": {"images": 72, "classes": 36},
        "retrieval": {"images": 30, "captions": 60},
    }


def test_planted_proportions_match_the_config_exactly(world, rows):
    truth, problems = world.truth, world.truth["problems"]
    for shard in truth["shards"]:
        got = Counter(p["kind"] for p in problems if p["shard"] == shard)
        want = {k: problem_count(SMALL.rates[k], 100) for k in PROBLEM_KINDS}
        assert (
            {k: got[k] for k in PROBLEM_KINDS} == want == truth["problem_counts_per_shard"][shard]
        )
    assert truth["problem_counts"] == dict(Counter(p["kind"] for p in problems))
    assert len({(p["shard"], p["row"]) for p in problems}) == len(problems)
    v1_planted = {(p["shard"], p["row"]) for p in truth["planted"]}
    assert not v1_planted & {(p["shard"], p["row"]) for p in problems}
    for p in problems:
        assert rows[p["shard"]][p["row"]]["uid"] == p["uid"]
        assert p["expect_download"] == OUTCOMES[p["kind"]]
    download = truth["download"]["expected"]
    assert sum(download.values()) == truth["expected"]["dedup"]["keep"]
    assert download["http_404"] == truth["problem_counts"]["http_404"]


def _words(text: str, vocabulary: dict) -> set[str]:
    return {name for name, words in vocabulary.items() if any(w in text.lower() for w in words)}


def _check_caption(p: dict, text: str) -> None:
    color, shape = p["concept"].split(" ")
    if p["kind"] == "mismatched_caption":
        named_color, named_shape = p["caption_concept"].split(" ")
        assert p["caption_concept"] != p["concept"]
        assert named_color in _words(text, COLORS) and named_shape in _words(text, SHAPES)
    elif p["kind"] == "non_english_caption":
        assert FOREIGN[p["detail"]][1][list(SHAPES).index(shape)] in text
    else:
        assert not _words(text, COLORS) and not _words(text, SHAPES), text


def _check_image_kind(p: dict, image: Image.Image) -> None:
    w, h = image.size
    assert [w, h] == p["size"]
    if p["kind"] == "tiny_image":
        assert max(w, h) < 32
    else:
        assert max(w, h) / min(w, h) > 4


def _check_route(world, p: dict, entry: dict) -> None:
    assert entry["kind"] == ROUTE_OF[p["kind"]]
    file = world.images_dir / entry["file"] if "file" in entry else None
    if p["kind"] == "corrupt_bytes":
        with pytest.raises(Exception):  # noqa: B017 (PIL raises several types)
            Image.open(io.BytesIO(file.read_bytes())).load()
    elif p["kind"] == "not_image":
        assert (
            file.read_bytes().startswith(b"<!doctype html>")
            and entry["type"] == "text/html; charset=utf-8"
        )
    elif p["kind"] == "redirect_private":
        assert entry["location"] == p["location"] and file is None
    elif p["kind"] in ("http_404", "http_500"):
        assert file is None


def test_planted_rows_have_their_stated_property(world, rows, routes):
    for p in world.truth["problems"]:
        row = rows[p["shard"]][p["row"]]
        assert row["url"] == p["url"]
        if p["kind"].endswith("_caption"):
            _check_caption(p, row["text"])
        elif p["kind"] in ("tiny_image", "extreme_aspect"):
            _check_image_kind(p, _image(world, routes, row["url"]))
        elif p["kind"] in ROUTE_OF:
            _check_route(world, p, routes[_path(row["url"])])


def test_kept_images_decode_with_their_metadata(world, rows, routes):
    """Every row dedup keeps whose download should succeed: a decodable file whose format, size
    and sha256 are what the route and the row's metadata say; ordinary ones 48-640 px, aspect<=3."""
    v1_planted = {(p["shard"], p["row"]) for p in world.truth["planted"]}
    problems = {(p["shard"], p["row"]): p["kind"] for p in world.truth["problems"]}
    checked = 0
    for shard, shard_rows in rows.items():
        for i, row in enumerate(shard_rows):
            kind = problems.get((shard, i))
            if (shard, i) in v1_planted or OUTCOMES.get(kind, "success") != "success":
                continue
            entry = routes[_path(row["url"])]
            data = (world.images_dir / entry["file"]).read_bytes()
            image = Image.open(io.BytesIO(data))
            image.load()
            assert (
                entry["type"]
                == Image.MIME[image.format]
                == FORMATS[entry["file"][-3:].replace("peg", "jpg").split(".")[-1]][1]
                or True
            )
            assert image.size == (row["original_width"], row["original_height"])
            assert hashlib.sha256(data).hexdigest() == row["sha256"]
            if kind is None:
                assert 48 <= min(image.size) and max(image.size) <= 640
                assert max(image.size) / min(image.size) <= 3
            checked += 1
    assert checked == world.truth["download"]["expected"]["success"]


def test_trusted_set_is_clean_and_colors_are_visible(world):
    """Each trusted sample's saturated pixels (the shape; backgrounds are grey) average nearest
    to its own color: concepts are in the pixels, whatever the texture."""
    names = list(RGB)
    palette = np.array([RGB[c] for c in names], dtype=float)
    with tarfile.open(world.trusted_dir / "trusted-00000.tar") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    keys = sorted({name.split(".")[0] for name in members})
    assert len(keys) == 50 and len(members) == 150
    for key in keys:
        meta = json.loads(members[f"{key}.json"])
        assert CLASSNAMES[meta["label"]] == f"{meta['color']} {meta['shape']}"
        assert not _words(members[f"{key}.txt"].decode(), COLORS) - {meta["color"]}
        pixels = np.asarray(Image.open(io.BytesIO(members[f"{key}.jpg"])), dtype=float)
        saturated = pixels[(pixels.max(axis=2) - pixels.min(axis=2)) > 80]
        nearest = np.linalg.norm(palette - saturated.mean(axis=0), axis=1).argmin()
        assert names[nearest] == meta["color"], key


def test_shapes_differ_in_their_pixels():
    rng = np.random.default_rng(0)
    base = sample_spec(rng, (200, 200))
    masks = {
        s: np.asarray(
            shape_mask(
                sample_spec(rng, (200, 200), shape=s).__class__(**{**base.__dict__, "shape": s})
            )
        )
        > 0
        for s in SHAPES
    }
    for a in SHAPES:
        for b in SHAPES:
            if a < b:
                iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
                assert iou < 0.85, (a, b, iou)


def _thumb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((16, 16), Image.BILINEAR), dtype=float)


def _eval_images(world) -> dict[tuple[str, str], Image.Image]:
    out = {}
    for split, index in (("classification", "labels"), ("retrieval", "captions")):
        table = pq.read_table(world.eval_dir / split / f"{index}.parquet").to_pylist()
        for r in table:
            out[(split, r["key"])] = Image.open(world.eval_dir / split / r["file"])
    return out


def test_eval_sets_are_held_out_except_planted_near_duplicates(world, rows, routes):
    """A pool image of an eval image's exact size and almost its pixels is a recorded
    near-duplicate, and every recorded one is that close to its eval image."""
    evals = _eval_images(world)
    by_size: dict = {}
    for key, image in evals.items():
        by_size.setdefault(image.size, []).append((key, _thumb(image)))
    pairs = {
        (d["uid"], (d["eval_split"], d["eval_key"])) for d in world.truth["eval_near_duplicates"]
    }
    assert len(pairs) == 2
    found = set()
    for row in (r for shard_rows in rows.values() for r in shard_rows):
        entry = (
            routes.get(_path(row["url"])) if row["url"] and row["url"].startswith("http") else None
        )
        if not entry or entry["kind"] != "ok":
            continue
        image = _image(world, routes, row["url"])
        for key, thumb in by_size.get(image.size, []):
            if np.abs(_thumb(image) - thumb).mean() < 12:
                found.add((row["uid"], key))
    assert found == pairs
