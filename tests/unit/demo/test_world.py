"""The demo world: determinism, layout, exact planted proportions, images, held-out eval sets."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import tarfile
from collections import Counter
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from poolsieve_demo import WorldConfig, load_demo_world, write_demo_world
from poolsieve_demo.captions import FOREIGN
from poolsieve_demo.concepts import CLASSNAMES, COLORS, RGB, SHAPES
from poolsieve_demo.problems import OUTCOMES, PROBLEM_KINDS, ROUTE_OF, problem_count
from poolsieve_demo.render import FORMATS, shape_mask
from poolsieve_demo.rows import SCHEMA
from poolsieve_demo.specs import sample_spec
from poolsieve_demo.truth import REMOVED_BEFORE_DOWNLOAD
from poolsieve_demo.world import PARTS, TRUTH_FILE

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
    assert truth == world.truth and truth["version"] == 8 and truth["seed"] == 3
    assert [pq.read_schema(p) for p in world.shard_paths] == [SCHEMA, SCHEMA]
    assert sorted(p.name for p in world.root.iterdir()) == sorted([*PARTS, TRUTH_FILE])
    assert world.takedown_dir == world.root / "takedown"
    assert truth["allowlist_hosts"] == ["127.0.0.1:8808", "localhost:8808"]
    host_files = json.loads(world.routes_path.read_text())["host_files"]
    assert sorted(host_files) == ["127.0.0.1", "localhost"]  # one set per origin's host name
    for host, files in host_files.items():
        assert sorted(files) == ["/.well-known/tdmrep.json", "/ai.txt", "/robots.txt"]
        assert all(e["file"].startswith(f"hosts/{host}/") for e in files.values())
        assert all((world.images_dir / e["file"]).is_file() for e in files.values())
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
    metadata_planted = {(p["shard"], p["row"]) for p in truth["planted"]}
    assert not metadata_planted & {(p["shard"], p["row"]) for p in problems}
    for p in problems:
        assert rows[p["shard"]][p["row"]]["uid"] == p["uid"]
        assert p["expect_download"] == OUTCOMES[p["kind"]]
    download = truth["download"]["expected"]
    assert sum(download.values()) == truth["expected"]["dedup"]["keep"]
    assert download["http_404"] == truth["problem_counts"]["http_404"]


def _words(text: str, vocabulary: dict) -> set[str]:
    """The vocabulary entries a synonym of which is a whole word (or phrase) of ``text``."""
    return {
        name
        for name, words in vocabulary.items()
        if any(re.search(rf"\b{re.escape(w)}\b", text.lower()) for w in words)
    }


def _check_caption(p: dict, text: str) -> None:
    color, shape = p["concept"].split(" ")
    if p["kind"] == "mismatched_caption":
        named_color, named_shape = p["caption_concept"].split(" ")
        assert p["caption_concept"] != p["concept"]
        assert named_color in _words(text, COLORS) and named_shape in _words(text, SHAPES)
    elif p["kind"] == "non_english_caption":
        assert FOREIGN[p["detail"]][1][list(SHAPES).index(shape)].lower() in text.lower()
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
    metadata_planted = {(p["shard"], p["row"]) for p in world.truth["planted"]}
    problems = {(p["shard"], p["row"]): p["kind"] for p in world.truth["problems"]}
    removed = {
        e["uid"] for e in world.truth["takedown"]["entries"] if e["kind"] in REMOVED_BEFORE_DOWNLOAD
    }
    checked = 0
    for shard, shard_rows in rows.items():
        for i, row in enumerate(shard_rows):
            kind = problems.get((shard, i))
            if (shard, i) in metadata_planted or OUTCOMES.get(kind, "success") != "success":
                continue
            entry = routes[_path(row["url"])]
            data = (world.images_dir / entry["file"]).read_bytes()
            image = Image.open(io.BytesIO(data))
            image.load()
            assert entry["type"] == FORMATS[entry["file"].rsplit(".", 1)[1]][1]
            assert entry["type"] == Image.MIME[image.format]
            assert image.size == (row["original_width"], row["original_height"])
            assert hashlib.sha256(data).hexdigest() == row["sha256"]
            if kind is None:
                assert min(image.size) >= 48 and max(image.size) <= 640
                assert max(image.size) / min(image.size) <= 3
            checked += row["uid"] not in removed  # a takedown target's download is refused
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
    """Same place and size, another shape: the masks overlap by well under 85% (IoU)."""
    base = sample_spec(np.random.default_rng(0), (200, 200))
    masks = {s: np.asarray(shape_mask(replace(base, shape=s))) > 0 for s in SHAPES}
    for a, b in itertools.combinations(SHAPES, 2):
        iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
        assert iou < 0.85, (a, b, iou)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=float)


def _near_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean abs difference after undoing a brightness change and a shift of up to 4 px."""
    a, b = a * (128 / a.mean()), b * (128 / b.mean())
    h, w = a.shape[:2]
    return min(np.abs(a[y:, x:] - b[: h - y, : w - x]).mean() for y in range(5) for x in range(5))


def _eval_pixels(world) -> dict[tuple[str, str], np.ndarray]:
    out = {}
    for split, index in (("classification", "labels"), ("retrieval", "captions")):
        for r in pq.read_table(world.eval_dir / split / f"{index}.parquet").to_pylist():
            out[(split, r["key"])] = _pixels(Image.open(world.eval_dir / split / r["file"]))
    return out


def _trusted_pixels(world):
    for shard in world.truth["trusted"]["shards"]:
        with tarfile.open(world.trusted_dir / shard) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".jpg"):
                    yield _pixels(Image.open(io.BytesIO(tar.extractfile(m).read())))


def test_planted_near_duplicates_are_perturbed_eval_images(world, rows, routes):
    evals = _eval_pixels(world)
    near = world.truth["eval_near_duplicates"]
    assert len(near) == 2 and len({(d["eval_split"], d["eval_key"]) for d in near}) == 2
    for d in near:
        pool = _pixels(_image(world, routes, rows[d["shard"]][d["row"]]["url"]))
        source = evals[(d["eval_split"], d["eval_key"])]
        assert pool.shape == source.shape and _near_distance(pool, source) < 10, d


def test_eval_images_are_held_out(world, rows, routes):
    """No other pool or trusted image is a copy of an eval image: a same-size image at a mean
    pixel difference under 12 (re-encoding alone stays under 6; distinct renders are over 15)."""
    by_shape: dict = {}
    for pixels in _eval_pixels(world).values():
        by_shape.setdefault(pixels.shape, []).append(pixels)
    near = {(d["shard"], d["row"]) for d in world.truth["eval_near_duplicates"]}
    metadata_planted = {(p["shard"], p["row"]) for p in world.truth["planted"]}
    kept = [
        r["url"]
        for shard, shard_rows in rows.items()
        for i, r in enumerate(shard_rows)
        if (shard, i) not in near | metadata_planted and routes[_path(r["url"])]["kind"] == "ok"
    ]
    candidates = [_pixels(_image(world, routes, url)) for url in kept]
    candidates += list(_trusted_pixels(world))
    assert len(candidates) > 250
    for pixels in candidates:
        for source in by_shape.get(pixels.shape, []):
            assert np.abs(pixels - source).mean() > 12


def test_pipeline_matches_the_truth_and_keeps_every_problem_row(world, tmp_path):
    """Ingest + URL dedup on the world's shards: the expected counts hold exactly, and no row
    planted with a content problem is quarantined or dropped (all of them reach the downloader)."""
    from tests.unit.demo.test_rows import _outcomes, _run_pipeline

    lake, ingested, decided = _run_pipeline(world, tmp_path / "lake")
    for shard, want in world.truth["expected"]["per_shard"].items():
        assert ingested[shard].quarantine_reasons == want["quarantine_reasons"]
        assert decided[shard].rows_kept == want["keep"]
    expected = {
        (p["shard"], p["row"]): (p["expect"], p["duplicate_of"]) for p in world.truth["planted"]
    }
    assert _outcomes(lake, world.truth["shards"]) == expected


def test_corrupt_bytes_defeat_opencv_too(world, routes):
    cv2 = pytest.importorskip("cv2")
    corrupt = [e for e in routes.values() if e["kind"] == "corrupt"]
    assert corrupt
    for entry in corrupt:
        data = np.frombuffer((world.images_dir / entry["file"]).read_bytes(), np.uint8)
        assert cv2.imdecode(data, cv2.IMREAD_COLOR) is None


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"config": WorldConfig(rates={"mismatched_caption": 0.9})}, "clean rows"),
        (
            {
                "config": WorldConfig(
                    rates={"eval_near_duplicate": 0.2}, eval_per_class=0, retrieval_images=5
                )
            },
            "eval images",
        ),
        (
            {"config": WorldConfig(rates={"near_duplicate_image": 0.3})},
            "too few clean rows before",
        ),
        ({"rows_per_shard": 20}, "too many"),
    ],
)
def test_impossible_worlds_are_refused(tmp_path, options, match):
    with pytest.raises(ValueError, match=match):
        write_demo_world(tmp_path, **{"n_shards": 1, "rows_per_shard": 60, **options})
    assert not (tmp_path / "world_truth.json").exists()


def test_config_rejects_unknown_kinds_and_bad_shares():
    with pytest.raises(ValueError, match="unknown kinds"):
        WorldConfig(rates={"blurry": 0.1})
    with pytest.raises(ValueError, match="formats"):
        WorldConfig(formats={"jpg": 0.5, "gif": 0.5})
