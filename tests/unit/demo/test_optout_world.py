"""Planted opt-out signals: the world's routes, headers and per-origin host files say what its
truth says, the demo server sends them (each origin its own host files), and
compare.optout_rates counts a download_status against them."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.robotparser
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poolsieve.images.optout import (
    DEFAULT_DIRECTIVES,
    DEFAULT_USER_AGENTS,
    HOST_FILES,
    OPTED_OUT,
    SIGNALS,
)
from poolsieve.images.optout.hosts import origin_of
from poolsieve.images.optout.rules import RobotsRules, TdmRep, header_optout
from poolsieve.images.status import STATUS_FILE, STATUS_SCHEMA
from poolsieve_demo import WorldConfig, write_demo_world
from poolsieve_demo.compare import optout_lines, optout_rates
from poolsieve_demo.optout import (
    CONTROL,
    CONTROL_SIGNAL,
    DETAILS,
    OPTOUT_KINDS,
    OTHER_ORIGIN,
    SIGNAL_OF,
    host_files,
    host_name,
)
from poolsieve_demo.problems import DEFAULT_RATES, OUTCOMES, problem_count
from poolsieve_demo.server import DemoHTTPServer, check_route_headers

#: 5 rows of each opt-out kind (6 controls) in 100 rows: every detail of every kind is planted
CONFIG = WorldConfig(
    rates={kind: 0.06 if kind == CONTROL else 0.05 for kind in OPTOUT_KINDS},
    trusted_samples=10,
    trusted_shard_size=10,
    eval_per_class=1,
    retrieval_images=4,
    slow_seconds=1.0,
)
AGENTS = ("img2dataset", "CCBot")
HOSTS = ("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("optout")
    return write_demo_world(root, 5, "http://127.0.0.1:8899", 1, 100, CONFIG)


@pytest.fixture(scope="module")
def planted(world) -> dict[str, list[dict]]:
    """kind -> its planted rows (truth entries), for the opt-out kinds."""
    return {k: [p for p in world.truth["problems"] if p["kind"] == k] for k in OPTOUT_KINDS}


@pytest.fixture(scope="module")
def routes(world) -> dict:
    return json.loads(world.routes_path.read_text())


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def _host_file(world, signal: str, host: str) -> str:
    """The text of ``host``'s host file of ``signal``, as routes.json routes it."""
    document = json.loads(world.routes_path.read_text())
    return (world.images_dir / document["host_files"][host][HOST_FILES[signal]]["file"]).read_text()


def _on(rows: list[dict], host: str) -> list[dict]:
    """The rows whose URL is on ``host``."""
    return [p for p in rows if host_name(p["url"]) == host]


def _robots(text: str) -> urllib.robotparser.RobotFileParser:
    parser = urllib.robotparser.RobotFileParser()
    parser.parse(text.splitlines())
    return parser


def _ai_txt_paths(text: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Dis")]


def _reserved(text: str) -> dict[str, int]:
    return {e["location"]: e["tdm-reservation"] for e in json.loads(text)}


def test_every_kind_and_detail_is_planted_with_its_outcome(world, planted):
    assert world.truth["version"] == 8
    for kind in OPTOUT_KINDS:
        assert {p["detail"] for p in planted[kind]} == set(DETAILS[kind]), kind
        for p in planted[kind]:
            assert p["expect_download"] == ("success" if kind == CONTROL else OPTED_OUT)
    optouts = world.truth["optouts"]
    assert optouts["signals"] == {
        s: [p["uid"] for k, sig in SIGNAL_OF.items() if sig == s for p in planted[k]]
        for s in SIGNALS
    }
    assert optouts["controls"] == {
        d: [p["uid"] for p in planted[CONTROL] if p["detail"] == d] for d in DETAILS[CONTROL]
    }
    assert set(SIGNAL_OF.values()) == set(SIGNALS) and set(CONTROL_SIGNAL.values()) <= set(SIGNALS)
    assert optouts["assumes"] == {"user_agents": list(AGENTS), "directives": ["noai", "noimageai"]}
    assert world.truth["download"]["expected"][OPTED_OUT] == 25


def test_default_rates_plant_each_kind_in_every_test_world():
    """problem_count(0.01, n) >= 1 for the smallest pools the tests build (60 rows) and the
    default world (500)."""
    for kind in OPTOUT_KINDS:
        assert OUTCOMES[kind] == ("success" if kind == CONTROL else OPTED_OUT)
        assert problem_count(DEFAULT_RATES[kind], 60) == 1
        assert problem_count(DEFAULT_RATES[kind], 500) == 5


def test_routes_carry_the_headers_the_truth_names(world, planted, routes):
    """Header rows: an ``ok`` route with exactly the truth's headers; every other row: no
    headers at all (a host-file row is served as any clean row is)."""
    headed = {}
    for kind in OPTOUT_KINDS:
        for p in planted[kind]:
            entry = routes["routes"][_path(p["url"])]
            assert entry["kind"] == "ok" and (world.images_dir / entry["file"]).is_file()
            assert entry.get("headers") == p.get("headers"), p
            assert ("headers" in p) != ("host_file" in p)
            headed[p["detail"]] = p.get("headers")
    assert headed["img2dataset_noai"] == {"X-Robots-Tag": "img2dataset: noai"}
    assert headed["reserved_with_policy"] is None  # tdmrep.json's; the header one below
    assert {"tdm-reservation": "1", "tdm-policy": "https://example.org/policy.json"} in [
        p["headers"] for p in planted["optout_tdm_reservation"]
    ]
    assert headed["x_robots_tag_noindex"] == {"X-Robots-Tag": "noindex"}
    assert headed["x_robots_tag_other_agent"] == {"X-Robots-Tag": "otherbot: noai"}
    assert headed["tdm_header_zero"] == {"tdm-reservation": "0"}
    with_headers = [e for e in routes["routes"].values() if "headers" in e]
    assert len(with_headers) == sum(1 for ps in planted.values() for p in ps if "headers" in p)


@pytest.mark.parametrize("host", HOSTS)
def test_robots_txt_disallows_exactly_the_planted_paths_of_its_origin(world, planted, host):
    """Of the rows on ``host``, its robots.txt disallows exactly its robots_txt rows; beyond
    them it names only the other origin's robots_other_origin controls (for img2dataset)."""
    text = _host_file(world, "robots_txt", host)
    assert text.startswith("#") and "Sitemap: " in text and "User-agent: OtherBot" in text
    robots = _robots(text)
    disallowed = {p: [a for a in AGENTS if not robots.can_fetch(a, p)] for p in _all_paths(world)}
    by_detail = {"img2dataset": ["img2dataset"], "ccbot": ["CCBot"], "any_agent": list(AGENTS)}
    want = {
        _path(p["url"]): by_detail[p["detail"]] for p in _on(planted["optout_robots_txt"], host)
    }
    elsewhere = [p for p in planted[CONTROL] if p["detail"] == OTHER_ORIGIN]
    want |= {_path(p["url"]): ["img2dataset"] for p in elsewhere if host_name(p["url"]) != host}
    assert {p: a for p, a in disallowed.items() if a} == want
    other = _on([p for p in planted[CONTROL] if p["detail"] == "robots_other_agent"], host)
    assert all(not robots.can_fetch("OtherBot", _path(p["url"])) for p in other)
    assert all(p["user_agent"] == "OtherBot" for p in other)


def _all_paths(world) -> list[str]:
    return [_path(p["url"]) for p in world.truth["problems"]] + ["/img/0000001.jpg"]


@pytest.mark.parametrize("host", HOSTS)
def test_tdmrep_and_ai_txt_name_exactly_the_planted_paths_of_their_origin(world, planted, host):
    reserved = _reserved(_host_file(world, "tdmrep_json", host))
    want = {_path(p["url"]): 1 for p in _on(planted["optout_tdmrep_json"], host)}
    zero = _on([p for p in planted[CONTROL] if p["detail"] == "tdmrep_zero"], host)
    want |= {_path(p["url"]): 0 for p in zero}
    assert {loc: r for loc, r in reserved.items() if loc.startswith("/img/")} == want
    assert all(p["tdm_reservation"] == want[_path(p["url"])] for p in zero)
    ai = _host_file(world, "ai_txt", host)
    assert ai.startswith("# Spawning AI") and "User-Agent: *" in ai
    assert _ai_txt_paths(ai) == [_path(p["url"]) for p in _on(planted["optout_ai_txt"], host)]
    for p in planted["optout_ai_txt"] + planted["optout_tdmrep_json"]:
        assert p["host_file"] == HOST_FILES[p["signal"]]
        assert p["host_file_origin"] == origin_of(p["url"])


def test_each_origin_has_its_own_files_naming_only_its_own_rows(world, planted):
    """Both origins have planted host-file rows, their files differ, and every planted path a
    host file names is a row on that origin (robots_other_origin: on the other one)."""
    rows = [p for k in OPTOUT_KINDS for p in planted[k] if "host_file_origin" in p]
    assert {host_name(p["url"]) for p in rows} == set(HOSTS)
    for signal in ("robots_txt", "tdmrep_json", "ai_txt"):
        assert _host_file(world, signal, HOSTS[0]) != _host_file(world, signal, HOSTS[1])
    for host in HOSTS:
        text = "".join(_host_file(world, s, host) for s in ("robots_txt", "tdmrep_json", "ai_txt"))
        named = {p for p in _all_paths(world) if p in text}
        assert named == {_path(p["url"]) for p in rows if host_name(p["host_file_origin"]) == host}


def test_the_other_origin_control_is_planted_and_recorded(world, planted):
    """robots_other_origin: its row is on one origin, the truth names the other one's robots.txt
    (for img2dataset), which disallows its path while its own origin's allows it."""
    controls = [p for p in planted[CONTROL] if p["detail"] == OTHER_ORIGIN]
    assert controls and world.truth["optouts"]["controls"][OTHER_ORIGIN] == [
        p["uid"] for p in controls
    ]
    assert world.truth["optouts"]["control_signals"][OTHER_ORIGIN] == "robots_txt"
    origins = {world.base_url, world.truth["alt_base_url"]}
    for p in controls:
        own = origin_of(p["url"])
        assert p["expect_download"] == "success" and p["signal"] == "robots_txt"
        assert p["host_file"] == "/robots.txt" and p["user_agent"] == "img2dataset"
        assert p["host_file_origin"] in origins - {own}
        listing = _robots(_host_file(world, "robots_txt", host_name(p["host_file_origin"])))
        assert not listing.can_fetch("img2dataset", _path(p["url"]))
        assert _robots(_host_file(world, "robots_txt", host_name(own))).can_fetch(
            "img2dataset", _path(p["url"])
        )


def _rules(world, host: str) -> dict:
    """The downloader's parsed rules of ``host``'s three host files."""
    return {
        "robots_txt": RobotsRules.parse(_host_file(world, "robots_txt", host)),
        "ai_txt": RobotsRules.parse(_host_file(world, "ai_txt", host), "ai.txt"),
        "tdmrep_json": TdmRep.parse(_host_file(world, "tdmrep_json", host)),
    }


def test_the_downloaders_rules_opt_out_exactly_the_planted_rows(world, planted):
    """poolsieve.images.optout.rules (RFC 9309 longest match, TDMRep first match, the header
    rules) with its defaults, each row against its own origin's host files: each planted row by
    its own signal only, no control (robots_other_origin included), no other row (robotparser
    above reads robots.txt by first match: both agree)."""
    rules = {host: _rules(world, host) for host in HOSTS}
    clean = [
        {"url": base + "/img/0000001.jpg"} for base in (world.base_url, world.truth["alt_base_url"])
    ]
    for p in world.truth["problems"] + clean:
        own = rules[host_name(p["url"])]
        found = {
            "robots_txt": own["robots_txt"].disallowing_any(p["url"], DEFAULT_USER_AGENTS),
            "ai_txt": own["ai_txt"].disallowing_any(p["url"], DEFAULT_USER_AGENTS),
            "tdmrep_json": own["tdmrep_json"].reserving(p["url"]),
        }
        header = header_optout(p.get("headers", {}), DEFAULT_USER_AGENTS, DEFAULT_DIRECTIVES)
        found |= dict([header] if header else [])
        want = [SIGNAL_OF[p["kind"]]] if p.get("kind") in SIGNAL_OF else []
        assert [s for s, answer in found.items() if answer] == want, p


def test_host_files_exist_with_no_rule_when_nothing_is_planted():
    files = host_files([])
    assert set(files) == set(HOST_FILES.values())
    robots = _robots(files["/robots.txt"].decode())
    assert all(robots.can_fetch(a, "/img/0000001.jpg") for a in AGENTS)
    assert _ai_txt_paths(files["/ai.txt"].decode()) == []
    assert all(loc.startswith("/private/") for loc in _reserved(files["/.well-known/tdmrep.json"]))


def _ask(server: DemoHTTPServer, path: str, host: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    """(status, headers, body) of one GET the real handler answers over a socket pair (the unit
    lane binds no IP socket; tests/integration/demo covers the server process)."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        server.finish_request(theirs, ("127.0.0.1", 0))
        theirs.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(ours)
        response.begin()
        return response.status, response.headers, response.read()


@pytest.fixture(scope="module")
def server(world):
    running = DemoHTTPServer(world.root, "127.0.0.1", world.port, bind=False)
    yield running
    running.server_close()


def test_the_server_sends_the_headers_and_the_host_files(world, planted, server):
    for p in planted["optout_x_robots_tag"] + planted["optout_tdm_reservation"]:
        status, headers, body = _ask(server, _path(p["url"]))
        assert status == 200 and body and headers["Content-Type"].startswith("image/")
        assert {k: headers[k] for k in p["headers"]} == p["headers"]
    for p in planted[CONTROL]:
        headers = _ask(server, _path(p["url"]))[1]
        assert {k: headers[k] for k in p.get("headers", {})} == p.get("headers", {})
    status, headers, _ = _ask(server, _path(planted["optout_robots_txt"][0]["url"]))
    assert status == 200 and "X-Robots-Tag" not in headers and "tdm-reservation" not in headers
    assert _ask(server, "/humans.txt")[0] == 404


@pytest.mark.parametrize("spelling", ["{host}", "{host}:8899", "{upper}:8899"])
def test_the_server_sends_each_host_its_own_host_files(world, server, spelling):
    """The Host header's host name (port dropped, case ignored) picks the host files."""
    types = {"robots_txt": "text/plain", "tdmrep_json": "application/json", "ai_txt": "text/plain"}
    for signal, kind in types.items():
        for host in HOSTS:
            header = spelling.format(host=host, upper=host.upper())
            status, headers, body = _ask(server, HOST_FILES[signal] + "?x=1", header)
            assert status == 200 and headers["Content-Type"].startswith(kind)
            assert body.decode() == _host_file(world, signal, host)


@pytest.mark.parametrize("header", ["example.org", "127.0.0.2:8899", "", "a@localhost"])
def test_an_unknown_host_gets_no_host_files_but_the_images(world, planted, server, header):
    for path in HOST_FILES.values():
        assert _ask(server, path, header)[0] == 404
    assert _ask(server, _path(planted["optout_robots_txt"][0]["url"]), header)[0] == 200


def test_an_older_worlds_single_host_files_serve_every_host(world, tmp_path):
    """routes.json format < 4 ({URL path: route}): every Host gets the same files."""
    document = json.loads(world.routes_path.read_text())
    document["host_files"] = document["host_files"]["localhost"]
    (tmp_path / "routes.json").write_text(json.dumps({**document, "version": 3}))
    (tmp_path / "images").symlink_to(world.images_dir)
    old = DemoHTTPServer(tmp_path, "127.0.0.1", 0, bind=False)
    try:
        for header in ("127.0.0.1:8899", "localhost", "example.org"):
            status, _, body = _ask(old, "/robots.txt", header)
            assert status == 200 and body.decode() == _host_file(world, "robots_txt", "localhost")
    finally:
        old.server_close()


@pytest.mark.parametrize(
    "host_files",
    [
        {"LocalHost": {}},
        {"a/b": {}},
        {"localhost": {"/robots.txt": "file"}},
        {"localhost": []},
        ["localhost"],
    ],
)
def test_bad_host_files_are_refused(world, tmp_path, host_files):
    document = json.loads(world.routes_path.read_text())
    (tmp_path / "routes.json").write_text(json.dumps({**document, "host_files": host_files}))
    with pytest.raises(ValueError, match="routes.json"):
        DemoHTTPServer(tmp_path, "127.0.0.1", 0, bind=False)


def test_a_world_on_one_host_name_plants_no_other_origin_control(tmp_path):
    """alt_host = the base host: one origin, one set of host files, and the control's turn goes
    to the next detail."""
    config = WorldConfig(**{**CONFIG.to_json(), "alt_host": "127.0.0.1"})
    world = write_demo_world(tmp_path, 5, "http://127.0.0.1:8899", 1, 100, config)
    details = [p["detail"] for p in world.truth["problems"] if p["kind"] == CONTROL]
    assert len(details) == 6 and OTHER_ORIGIN not in details
    assert set(details) == set(DETAILS[CONTROL]) - {OTHER_ORIGIN}
    assert list(json.loads(world.routes_path.read_text())["host_files"]) == ["127.0.0.1"]


def test_a_world_with_bad_route_headers_is_refused(world, tmp_path):
    document = json.loads(world.routes_path.read_text())
    path = next(p for p, e in document["routes"].items() if "headers" in e)
    document["routes"][path]["headers"] = {"X-Robots-Tag": "noai\r\nSet-Cookie: a=b"}
    (tmp_path / "routes.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=f"routes.json {path}: header 'X-Robots-Tag'"):
        DemoHTTPServer(tmp_path, "127.0.0.1", 0, bind=False)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Robots-Tag": "noai\r\nSet-Cookie: x=1"},
        {"Content-Length": "1"},
        {"Bad Name": "x"},
        {"X-A": 1},
        ["X-Robots-Tag", "noai"],
        {f"X-{i}": "v" for i in range(17)},
    ],
)
def test_route_headers_are_checked(headers):
    with pytest.raises(ValueError, match="routes.json /img/x.jpg"):
        check_route_headers("/img/x.jpg", headers)


# -- compare.optout_rates on a hand-made download_status ----------------------------------------

SIGNAL_TRUTH = {
    "x_robots_tag": ["x1", "x2"],
    "tdm_reservation": ["t1"],
    "robots_txt": ["r1", "r2"],
    "tdmrep_json": ["j1"],
    "ai_txt": ["a1"],
}
CONTROLS = {"x_robots_tag_noindex": ["c1"], "tdmrep_zero": ["c2"], "robots_other_agent": ["c3"]}
#: uid -> (error_category, optout_signal); absent from this: success
STATUS = {
    "x1": (OPTED_OUT, "x_robots_tag"),
    "x2": ("http_404", None),  # not opted out
    "t1": (OPTED_OUT, "tdm_reservation"),
    "r1": (OPTED_OUT, "robots_txt"),
    "r2": (OPTED_OUT, "ai_txt"),  # opted out, the wrong signal named
    "j1": (OPTED_OUT, "tdmrep_json"),
    "a1": (OPTED_OUT, "ai_txt"),
    "c2": (OPTED_OUT, "tdmrep_json"),  # a control opted out
    "u1": (OPTED_OUT, "robots_txt"),  # a clean row opted out
    "u2": (OPTED_OUT, "x_robots_tag"),
}
UIDS = [*STATUS, "c1", "c3", "u3"]


@pytest.fixture
def truth_path(tmp_path) -> Path:
    path = tmp_path / "world_truth.json"
    path.write_text(json.dumps({"optouts": {"signals": SIGNAL_TRUTH, "controls": CONTROLS}}))
    return path


def _status(lake, with_signal: bool) -> None:
    """download_status in two shard partitions (the lead's schema + optout_signal, or not)."""
    schema = STATUS_SCHEMA
    if "optout_signal" not in schema.names:  # the lead's column, until its schema has it
        schema = schema.append(pa.field("optout_signal", pa.string()))
    rows = []
    for uid in UIDS:
        category, signal = STATUS.get(uid, (None, None))
        status = "success" if category is None else "failed"
        rows.append(
            {"uid": uid, "url": f"http://h/{uid}.jpg", "status": status}
            | {"error_category": category, "optout_signal": signal}
        )
    for part, chunk in (("shard_a", rows[:6]), ("shard_b", rows[6:])):
        folder = lake.partition_dir("shard_images", part)
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(chunk, schema=schema)
        pq.write_table(
            table if with_signal else table.drop(["optout_signal"]), folder / STATUS_FILE
        )


def test_no_download_status_no_rates(lake, truth_path):
    assert optout_rates(lake.root, truth_path) is None
    assert optout_lines(None) == []


def test_rates_per_signal_controls_and_other_rows(lake, truth_path):
    _status(lake, with_signal=True)
    rates = optout_rates(lake.root, truth_path)
    assert rates == {
        "signals": {
            "robots_txt": {"planted": 2, "found": 1},
            "tdmrep_json": {"planted": 1, "found": 1},
            "ai_txt": {"planted": 1, "found": 1},
            "x_robots_tag": {"planted": 2, "found": 1},
            "tdm_reservation": {"planted": 1, "found": 1},
        },
        "wrong_signal": 1,
        "controls": {"planted": 3, "kept": 2},
        "other_opted_out": 2,
        "by_category_only": False,
    }
    assert optout_lines(rates) == [
        "opt-out signals: robots_txt 1/2, tdmrep_json 1/1, ai_txt 1/1, x_robots_tag 1/2, "
        "tdm_reservation 1/1, 1 planted naming another signal, controls kept 2/3, "
        "2 other rows opted out"
    ]


def test_an_old_lake_without_the_signal_column_counts_by_category(lake, truth_path):
    _status(lake, with_signal=False)
    rates = optout_rates(lake.root, truth_path)
    assert rates["by_category_only"] and rates["wrong_signal"] == 0
    assert {s: r["found"] for s, r in rates["signals"].items()} == {
        "robots_txt": 2,
        "tdmrep_json": 1,
        "ai_txt": 1,
        "x_robots_tag": 1,
        "tdm_reservation": 1,
    }
    assert rates["controls"] == {"planted": 3, "kept": 2} and rates["other_opted_out"] == 2
    assert optout_lines(rates)[0].endswith(
        "(no optout_signal column: counted by error category only)"
    )


def test_a_world_without_optouts_reports_none_planted(lake, tmp_path):
    _status(lake, with_signal=True)
    old = tmp_path / "old_truth.json"
    old.write_text(json.dumps({"version": 4}))
    rates = optout_rates(lake.root, old)
    assert rates["other_opted_out"] == len(STATUS) - 1  # every opted-out row but x2's 404
    assert optout_lines(rates) == [
        "opt-out signals: none planted, controls kept 0/0, 9 other rows opted out"
    ]
