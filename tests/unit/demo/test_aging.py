"""The demo world's aging (aging.age_world): only clean rows age, the exact count of each kind
per shard, deterministic and idempotent, re-encoded pictures stay phash-close and replaced ones
do not, dead paths answer 404 from the routes, the truth records it all; the in-process server
follows the epoch file; and compare.aging_rates / aging_lines on a hand-made checks.parquet."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import imagehash
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from poolsieve.images.health import CHECKS_SCHEMA
from poolsieve_demo import WorldConfig, age_world, current_epoch, write_demo_world
from poolsieve_demo.aging import AGING_RATES, REENCODE_MAX_BITS, REPLACE_MIN_BITS
from poolsieve_demo.compare import HEALTH_ASSET, HEALTH_FILE, aging_lines, aging_rates
from poolsieve_demo.problems import problem_count
from poolsieve_demo.server import EPOCH_FILE, DemoHTTPServer, read_epoch, route_at
from poolsieve_demo.truth import AGING_KINDS, TRUTH_FORMAT, aging_of

#: copies planted too, so aging has copy sources and copies to stay clear of
CONFIG = WorldConfig(
    rates={"near_duplicate_image": 0.03, "eval_near_duplicate": 0.02},
    trusted_samples=10,
    trusted_shard_size=10,
    eval_per_class=1,
    retrieval_images=8,
)
ROWS = 100


def _world(root: Path):
    return write_demo_world(root, seed=11, n_shards=2, rows_per_shard=ROWS, config=CONFIG)


@pytest.fixture(scope="module")
def aged(tmp_path_factory):
    """(the world as written, its aging record, the world's files after aging)."""
    world = _world(tmp_path_factory.mktemp("aged"))
    before = json.loads(world.routes_path.read_text())
    record = age_world(world.root)
    return world, before, record


def _path(url: str) -> str:
    return urlsplit(url).path


def _routes(world) -> dict:
    return json.loads(world.routes_path.read_text())["routes"]


def _phash(data: bytes) -> imagehash.ImageHash:
    return imagehash.phash(Image.open(io.BytesIO(data)))


def _taken(truth: dict) -> set[tuple[str, int]]:
    """Every (shard, row) another part of the truth names."""
    taken = {(p["shard"], p["row"]) for p in truth["planted"] + truth["problems"]}
    taken |= {(o["shard"], o["row"]) for p in truth["planted"] if (o := p["original"])}
    taken |= {(p["source_shard"], p["source_row"]) for p in truth["problems"] if "source_row" in p}
    taken |= {(e["shard"], e["row"]) for e in truth["takedown"]["entries"]}
    return taken


def test_aging_picks_only_clean_rows_the_exact_count_per_shard(aged):
    world, before, record = aged
    truth = world.truth  # as written, before aging
    assert truth["image_near_duplicates"] and truth["takedown"]["entries"]
    rows = {p.name: pq.read_table(p).to_pylist() for p in world.shard_paths}
    taken = _taken(truth)
    for entry in record["rows"]:
        assert (entry["shard"], entry["row"]) not in taken
        row = rows[entry["shard"]][entry["row"]]
        assert row["uid"] == entry["uid"] and row["url"] == entry["url"]
        route = before["routes"][_path(entry["url"])]
        assert route["kind"] == "ok" and "headers" not in route
    for shard in truth["shards"]:
        for kind in AGING_KINDS:
            n = sum(1 for e in record["rows"] if e["shard"] == shard and e["kind"] == kind)
            assert n == problem_count(AGING_RATES[kind], ROWS) >= 1
    assert len({e["uid"] for e in record["rows"]}) == len(record["rows"])


def test_a_default_world_gets_at_least_one_of_each_kind_per_shard():
    assert all(problem_count(rate, 500) >= 1 for rate in AGING_RATES.values())


def test_the_truth_records_the_aging(aged):
    world, _, record = aged
    truth = json.loads(world.truth_path.read_text())
    assert truth["version"] == TRUTH_FORMAT == 8 and truth["aging"] == record
    assert record["epoch"] == 2 and record["rates"] == AGING_RATES
    for kind in AGING_KINDS:
        assert record[kind] == [e["uid"] for e in record["rows"] if e["kind"] == kind]
    keys = {"uid", "shard", "row", "url", "kind", "sha256_before", "sha256_after"}
    assert all(keys <= e.keys() for e in record["rows"])
    assert record["rows"] == sorted(record["rows"], key=lambda e: (e["shard"], e["row"]))
    assert json.loads((world.root / EPOCH_FILE).read_text()) == {"epoch": 2}
    assert current_epoch(world.root) == 2 and world.truth["aging"]["epoch"] == 1
    assert json.loads(world.routes_path.read_text())["version"] == 4


def test_older_truths_read_as_never_aged():
    empty = {"epoch": 1, "rates": {}, **{k: [] for k in AGING_KINDS}, "rows": []}
    assert aging_of({"version": 5}) == empty


def test_reencoded_rows_keep_the_picture_and_change_the_bytes(aged):
    world, before, record = aged
    rows = [e for e in record["rows"] if e["kind"] == "reencoded"]
    metadata = {
        r["uid"]: r["sha256"] for p in world.shard_paths for r in pq.read_table(p).to_pylist()
    }
    for e in rows:
        old = (world.images_dir / before["routes"][_path(e["url"])]["file"]).read_bytes()
        new = (world.images_dir / e["file"]).read_bytes()
        assert hashlib.sha256(old).hexdigest() == e["sha256_before"] == metadata[e["uid"]]
        assert hashlib.sha256(new).hexdigest() == e["sha256_after"] != e["sha256_before"]
        distance = _phash(old) - _phash(new)
        assert distance == e["phash_distance"] <= REENCODE_MAX_BITS
        assert Image.open(io.BytesIO(new)).size == Image.open(io.BytesIO(old)).size


def test_replaced_rows_show_another_picture(aged):
    world, before, record = aged
    for e in (e for e in record["rows"] if e["kind"] == "replaced"):
        old = (world.images_dir / before["routes"][_path(e["url"])]["file"]).read_bytes()
        new = (world.images_dir / e["file"]).read_bytes()
        assert hashlib.sha256(new).hexdigest() == e["sha256_after"]
        assert _phash(old) - _phash(new) == e["phash_distance"] > REPLACE_MIN_BITS


def test_routes_answer_per_epoch_and_epoch_one_files_stay(aged):
    world, before, record = aged
    routes = _routes(world)
    for e in record["rows"]:
        path = _path(e["url"])
        assert route_at(routes[path], 1) == before["routes"][path]
        assert (world.images_dir / before["routes"][path]["file"]).is_file()
        now = route_at(routes[path], 2)
        if e["kind"] == "dead":
            assert now == {"kind": "404"} and e["sha256_after"] is None
        else:
            assert now == {**before["routes"][path], "file": e["file"]}
            assert e["file"] != before["routes"][path]["file"]
    aged_paths = {_path(e["url"]) for e in record["rows"]}
    assert all("epochs" not in r for p, r in routes.items() if p not in aged_paths)


def test_aging_is_deterministic_and_idempotent(aged, tmp_path):
    world, _, record = aged
    files = {n: (world.root / n).read_bytes() for n in ("routes.json", "world_truth.json")}
    assert age_world(world.root) == record
    assert age_world(world.root, 2, dict(AGING_RATES)) == record
    assert {n: (world.root / n).read_bytes() for n in files} == files
    again = _world(tmp_path)
    assert age_world(again.root) == record
    assert again.routes_path.read_text() == world.routes_path.read_text()
    for e in record["rows"]:
        if e["file"]:
            assert (again.images_dir / e["file"]).read_bytes() == (
                world.images_dir / e["file"]
            ).read_bytes()


def test_no_going_back_and_no_other_epochs(aged):
    world, *_ = aged
    with pytest.raises(ValueError, match="never goes back to epoch 1"):
        age_world(world.root, epoch=1)
    with pytest.raises(ValueError, match="epoch 3 does not exist"):
        age_world(world.root, epoch=3)
    with pytest.raises(ValueError, match="already aged to epoch 2 at rates"):
        age_world(world.root, rates={"dead": 0.1})
    with pytest.raises(ValueError, match="unknown kinds \\['gone'\\]"):
        age_world(world.root, rates={"gone": 0.1})


def test_a_fresh_world_is_at_epoch_one(tmp_path):
    world = _world(tmp_path)
    assert current_epoch(world.root) == 1 and world.truth["aging"]["epoch"] == 1
    assert age_world(world.root, epoch=1) == aging_of(world.truth)
    assert not (world.root / EPOCH_FILE).exists()
    with pytest.raises(ValueError, match="too few clean rows"):
        age_world(world.root, rates={"dead": 0.9})
    assert current_epoch(world.root) == 1  # nothing half-aged


def test_a_bad_epoch_file_is_refused_naming_it(tmp_path):
    (tmp_path / EPOCH_FILE).write_text('{"epoch": "2"}')
    with pytest.raises(ValueError, match=f"{EPOCH_FILE}: 'epoch' must be an int"):
        read_epoch(tmp_path)
    (tmp_path / EPOCH_FILE).write_text("{")
    with pytest.raises(ValueError, match="not a JSON epoch file"):
        read_epoch(tmp_path)


def _ask(server: DemoHTTPServer, path: str) -> tuple[int, bytes]:
    """(status, body) of one GET the real handler answers over a socket pair."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        server.finish_request(theirs, ("127.0.0.1", 0))
        theirs.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(ours)
        response.begin()
        return response.status, response.read()


def test_the_server_follows_the_epoch_file_and_a_rewritten_world(tmp_path):
    world = _world(tmp_path)
    server = DemoHTTPServer(world.root, "127.0.0.1", 0, bind=False)
    record = age_world(world.root)  # the server was made at epoch 1
    dead = next(e for e in record["rows"] if e["kind"] == "dead")
    moved = next(e for e in record["rows"] if e["kind"] == "replaced")
    (world.root / EPOCH_FILE).rename(tmp_path / "held.json")  # routes aged, epoch still 1
    status, body = _ask(server, _path(dead["url"]))
    assert status == 200 and hashlib.sha256(body).hexdigest() == dead["sha256_before"]
    (tmp_path / "held.json").rename(world.root / EPOCH_FILE)
    assert _ask(server, _path(dead["url"]))[0] == 404
    status, body = _ask(server, _path(moved["url"]))
    assert status == 200 and hashlib.sha256(body).hexdigest() == moved["sha256_after"]
    assert json.loads(_ask(server, "/_health")[1])["epoch"] == 2
    (world.root / EPOCH_FILE).write_text("not json")  # a bad file keeps the last good state
    assert _ask(server, _path(dead["url"]))[0] == 404
    _world(tmp_path)  # rewritten: epoch.json removed, routes back to epoch 1
    assert current_epoch(world.root) == 1
    status, body = _ask(server, _path(dead["url"]))
    assert status == 200 and hashlib.sha256(body).hexdigest() == dead["sha256_before"]


# -- compare.aging_rates on a hand-made checks.parquet ------------------------------------------

AGING = {"dead": ["d1", "d2", "d3"], "reencoded": ["e1", "e2"], "replaced": ["r1"]}
T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: partition -> (uid, outcome, minutes after T0); d1 was alive before it died
CHECKS = {
    "shard_00000.parquet": [
        ("d1", "alive", 0),
        ("d1", "dead", 5),
        ("d2", "dead", 1),
        ("e1", "reencoded", 1),
        ("u1", "alive", 1),
        ("u2", "dead", 1),
    ],
    "shard/00001": [  # a key with a '/': quoted as a folder name
        ("e2", "replaced", 1),  # the wrong outcome
        ("r1", "replaced", 1),
        ("u3", "reencoded", 1),
        ("u4", "alive", 1),
    ],
}


def _checks(lake) -> None:
    for partition, checks in CHECKS.items():
        rows = [
            {
                "uid": u,
                "url": f"http://127.0.0.1/{u}.jpg",
                "checked_at": T0 + timedelta(minutes=m),
                "outcome": o,
                "error_category": "http_404" if o == "dead" else None,
                "sha256_before": "a" * 64,
                "sha256_after": None if o == "dead" else "b" * 64,
                "phash_distance": None if o in ("dead", "alive") else 2,
            }
            for u, o, m in checks
        ]
        folder = lake.partition_dir(HEALTH_ASSET, partition)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=CHECKS_SCHEMA), folder / HEALTH_FILE)


@pytest.fixture
def aging_truth(tmp_path) -> Path:
    path = tmp_path / "world_truth.json"
    path.write_text(json.dumps({"version": 6, "aging": {"epoch": 2, "rows": [], **AGING}}))
    return path


def test_no_pool_health_no_rates(lake, aging_truth):
    assert aging_rates(lake.root, aging_truth) is None
    assert aging_lines(None) == []


def test_aging_rates_count_found_per_kind_and_false_alarms(lake, aging_truth):
    _checks(lake)
    rates = aging_rates(lake.root, aging_truth)
    assert rates == {
        "epoch": 2,
        "checked": 9,
        "kinds": {
            "dead": {"planted": 3, "checked": 2, "found": 2},
            "reencoded": {"planted": 2, "checked": 2, "found": 1},
            "replaced": {"planted": 1, "checked": 1, "found": 1},
        },
        "wrong_outcome": 1,
        "others_checked": 4,
        "false_alarms": {"dead": 1, "reencoded": 1},
    }
    assert aging_lines(rates) == [
        "pool aging: dead 2/3 found (2 checked), reencoded 1/2 found (2 checked), "
        "replaced 1/1 found (1 checked), 1 aged rows checked with another outcome; "
        "2 false alarms (dead 1, reencoded 1) in 4 other rows checked (9 rows checked)"
    ]


def test_a_world_never_aged_reports_none_planted(lake, tmp_path):
    _checks(lake)
    old = tmp_path / "old_truth.json"
    old.write_text(json.dumps({"version": 5}))
    rates = aging_rates(lake.root, old)
    assert rates["others_checked"] == rates["checked"] == 9
    assert aging_lines(rates) == [
        "pool aging: none planted (world at epoch 1); "
        "7 false alarms (dead 3, reencoded 2, replaced 2) in 9 other rows checked "
        "(9 rows checked)"
    ]
