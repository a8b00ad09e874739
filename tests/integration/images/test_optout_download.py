"""Opt-out signals end to end: a real img2dataset run against two hosts on 127.0.0.1.

Host ``open`` serves a robots.txt, a tdmrep.json and an ai.txt that each opt out some paths, and
images whose own headers (X-Robots-Tag, tdm-reservation) opt out others; host ``down`` answers
robots.txt with a 503, which RFC 9309 reads as complete disallow. The servers count requests per
path, so the test sees that a row a host file opts out is never fetched, that a header opt-out
is fetched once (no retry), and that the host files are fetched once per host while fresh.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poolsieve.images.download import download_shard
from poolsieve.images.optout.check import SIGNALS_FILE
from poolsieve.images.optout.hosts import HostCache, host_records
from poolsieve.images.settings import DownloadSettings
from poolsieve.images.status import STATUS_FILE
from tests.integration.images.test_download import SMALL, QuietServer

ROBOTS = "# test host\nUser-agent: img2dataset\nDisallow: /private/\n\nUser-agent: *\nAllow: /\n"
TDMREP = json.dumps([{"location": "/tdm/*", "tdm-reservation": 1}])
AI_TXT = "# Spawning AI\nUser-Agent: *\nDisallow: *.png\n"
HOST_FILES = {"/robots.txt": ROBOTS, "/.well-known/tdmrep.json": TDMREP, "/ai.txt": AI_TXT}
IMAGE_HEADERS = {
    "/xrobots.jpg": {"X-Robots-Tag": "noai"},
    "/xother.jpg": {"X-Robots-Tag": "otherbot: noai"},
    "/tdmh.jpg": {"tdm-reservation": "1"},
}
#: path on host "open" -> (expected error category, expected signal)
OPEN_ROWS = {
    "/ok.jpg": (None, None),
    "/private/a.jpg": ("opted_out", "robots_txt"),
    "/tdm/b.jpg": ("opted_out", "tdmrep_json"),
    "/c.png": ("opted_out", "ai_txt"),
    "/xrobots.jpg": ("opted_out", "x_robots_tag"),
    "/xother.jpg": (None, None),
    "/tdmh.jpg": ("opted_out", "tdm_reservation"),
}


class SignalHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests[self.path] += 1
        if self.server.down and self.path == "/robots.txt":
            return self.send_error(503)
        if self.path in HOST_FILES:
            return self._send(HOST_FILES[self.path].encode(), "text/plain", {})
        self._send(SMALL, "image/jpeg", IMAGE_HEADERS.get(self.path, {}))

    def _send(self, body: bytes, content_type: str, headers: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _serve(down: bool):
    httpd = QuietServer(("127.0.0.1", 0), SignalHandler)
    httpd.requests, httpd.down = Counter(), down
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    return httpd, thread


@pytest.fixture(scope="module")
def hosts():
    """{"open": (url, requests), "down": (url, requests)}, both stopped afterwards."""
    servers = {name: _serve(name == "down") for name in ("open", "down")}
    yield {
        n: (f"http://127.0.0.1:{s.server_address[1]}", s.requests) for n, (s, _) in servers.items()
    }
    for httpd, thread in servers.values():
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _settings(hosts, **kw) -> DownloadSettings:
    allow = [url.removeprefix("http://") for url, _ in hosts.values()]
    return DownloadSettings(allowlist=allow, timeout=2.0, thread_count=4, retries=2, **kw)


def _rows(hosts) -> pa.Table:
    urls = [hosts["open"][0] + p for p in OPEN_ROWS] + [hosts["down"][0] + "/ok.jpg"]
    return pa.table(
        {
            "uid": [f"{i:032x}" for i in range(len(urls))],
            "url": urls,
            "text": ["caption"] * len(urls),
        }
    )


@pytest.fixture(scope="module")
def downloaded(hosts, tmp_path_factory):
    folder = tmp_path_factory.mktemp("optout")
    cache = HostCache(folder / "host_signals", "shard_00000")
    result = download_shard(_rows(hosts), folder / "images", _settings(hosts), hosts=cache)
    return result, folder


def test_each_signal_opts_its_row_out_and_names_itself(hosts, downloaded):
    result, _ = downloaded
    status = pq.read_table(result.status_path).to_pylist()
    expected = list(OPEN_ROWS.values()) + [("opted_out", "robots_txt")]
    got = [(r["error_category"], r["optout_signal"]) for r in status]
    assert got == expected
    assert status[-1]["error_message"].startswith("opted_out: robots_txt: robots.txt unreachable")
    assert status[1]["error_message"] == (
        "opted_out: robots_txt: Disallow: /private/ (user-agent img2dataset)"
    )
    assert result.success == 2


def test_host_file_opt_outs_are_never_fetched_and_header_ones_once(hosts, downloaded):
    opened, down = hosts["open"][1], hosts["down"][1]
    assert [opened[p] for p in ("/private/a.jpg", "/tdm/b.jpg", "/c.png")] == [0, 0, 0]
    assert [opened[p] for p in ("/xrobots.jpg", "/tdmh.jpg", "/ok.jpg")] == [1, 1, 1]
    assert down["/ok.jpg"] == 0
    assert [opened[p] for p in HOST_FILES] == [1, 1, 1]


def test_every_answer_is_recorded_per_uid_with_when_it_was_seen(downloaded):
    result, folder = downloaded
    signals = pq.read_table(result.out_dir / SIGNALS_FILE).to_pylist()
    by_uid = {}
    for row in signals:
        by_uid.setdefault(row["uid"], {})[row["signal"]] = row["answer"]
    ok, xrobots = f"{0:032x}", f"{4:032x}"
    assert by_uid[ok] == dict.fromkeys(
        ("robots_txt", "tdmrep_json", "ai_txt", "x_robots_tag", "tdm_reservation"), "allowed"
    )
    assert by_uid[xrobots]["x_robots_tag"] == "disallowed"
    assert "tdm_reservation" not in by_uid[xrobots]  # the first header refusal ends the check
    now = dt.datetime.now(dt.UTC)
    assert all(now - dt.timedelta(minutes=10) < r["seen_at"] <= now for r in signals)
    saved = pq.read_table(folder / "host_signals" / "shard_00000.parquet")
    assert saved.num_rows == 6  # three files on each of two hosts


def test_fresh_host_files_are_reused_and_old_ones_fetched_again(hosts, downloaded, tmp_path):
    _, folder = downloaded
    files = tuple((folder / "host_signals").glob("*.parquet"))
    urls = [hosts["open"][0] + "/ok.jpg"]
    before = hosts["open"][1]["/robots.txt"]
    host_records(urls, _settings(hosts), HostCache(tmp_path, "shard_00001", files))
    assert hosts["open"][1]["/robots.txt"] == before
    host_records(urls, _settings(hosts, optout_max_age_h=0.0), HostCache(tmp_path, "s2", files))
    assert hosts["open"][1]["/robots.txt"] == before + 1


def test_unreachable_robots_can_be_read_as_allow_and_optouts_turned_off(hosts, tmp_path):
    rows = _rows(hosts)
    relaxed = download_shard(
        rows.slice(7), tmp_path / "a", _settings(hosts, robots_unreachable="allow")
    )
    assert relaxed.success == 1
    off = download_shard(rows.slice(0, 5), tmp_path / "b", _settings(hosts, honour_optouts=False))
    assert off.success == 5
    assert pq.read_table(off.out_dir / SIGNALS_FILE).num_rows == 0
    assert pq.read_table(tmp_path / "b" / STATUS_FILE).column("optout_signal").null_count == 5


def test_takedown_rows_are_never_requested_and_listed_bytes_never_kept(hosts, tmp_path):
    """download_blocks' two halves: rows refused before any request, a listed sha256 refused
    by the guard on the served bytes (once: not retried)."""
    import hashlib
    import tarfile

    base, requests = hosts["open"]
    rows = pa.table(
        {
            "uid": ["a" * 32, "b" * 32],
            "url": [f"{base}/listed-uid.jpg", f"{base}/listed-bytes.jpg"],
            "text": ["x", "y"],
        }
    )
    removed = {"a" * 32: "removed: takedown list 'req' entry 1 (matched on uid)"}
    blocked = frozenset({hashlib.sha256(SMALL).hexdigest()})
    settings = _settings(hosts, blocked_sha256=blocked)
    result = download_shard(rows, tmp_path / "images", settings, removed=removed)
    status = {r["uid"]: r for r in pq.read_table(result.status_path).to_pylist()}
    assert status["a" * 32]["error_category"] == "removed"
    assert status["a" * 32]["error_message"] == removed["a" * 32]
    assert status["b" * 32]["error_category"] == "removed"
    assert "is on a hash list" in status["b" * 32]["error_message"]
    assert (requests["/listed-uid.jpg"], requests["/listed-bytes.jpg"]) == (0, 1)
    assert result.success == 0
    for tar in result.tars:  # img2dataset may write an empty tar: no image in it
        with tarfile.open(tar) as members:
            assert not [m for m in members.getnames() if m.endswith(".jpg")]
