"""The guard's limits end to end: a hostile server on 127.0.0.1 against a real img2dataset run.

The server drips bytes (headers or body) for longer than the per-image deadline, streams a body
with no Content-Length far over the byte cap, and redirects to ``file:``, ``gopher:`` and 6to4
addresses. It counts the requests per path and how long each held its connection, so the test
can see what img2dataset's workers actually did: one request per refused URL (no retries), and
no connection held past the deadline. Timeouts are tiny (1 s timeout, 2 s deadline); every
server loop is bounded and ends when the test stops the server.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poolsieve.images.download import download_shard, outcome_counts
from poolsieve.images.errors import GuardRefusal
from poolsieve.images.opener import build_opener
from poolsieve.images.policy import FetchPolicy
from poolsieve.images.settings import DownloadSettings
from tests.integration.images.test_download import SMALL, QuietServer, allow

TIMEOUT, DEADLINE = 1.0, 2.0
DRIP_EVERY, DRIP_BYTES = 0.2, 40  # 8 s of drip at most: four deadlines, each byte in time
CAP = 100_000
STREAM_BYTES = 50 * 2**20
SIXTOFOUR_LOOPBACK = "2002:7f00:1::"


class HostileHandler(BaseHTTPRequestHandler):
    """Each request is counted and timed in ``server.held`` (path -> [seconds, ...])."""

    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def do_GET(self):
        start = time.monotonic()
        try:
            self.route()
        except OSError:  # the client gave up (deadline, cap): what the tests want
            pass
        finally:
            self.server.held.setdefault(self.path, []).append(time.monotonic() - start)

    def route(self):
        routes = {
            "/small.jpg": lambda: self.body(SMALL, len(SMALL)),
            "/drip-body": self.drip_body,
            "/drip-head": self.drip_head,
            "/big-stream": self.big_stream,
            "/redirect/file": lambda: self.redirect("file:///etc/passwd"),
            "/redirect/gopher": lambda: self.redirect("gopher://127.0.0.1:70/_x"),
            "/redirect/6to4": lambda: self.redirect(f"http://[{SIXTOFOUR_LOOPBACK}]/x.jpg"),
        }
        routes.get(self.path, lambda: self.send_error(404))()

    def body(self, data: bytes, length: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(data)

    def drip(self, head: bytes) -> None:
        self.wfile.write(head)
        for _ in range(DRIP_BYTES):
            if self.server.stop.wait(DRIP_EVERY):
                return
            self.wfile.write(b"x")

    def drip_body(self) -> None:
        self.body(b"\xff\xd8\xff", None)
        self.drip(b"")

    def drip_head(self) -> None:
        self.drip(b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\nX-Pad: ")

    def big_stream(self) -> None:
        self.body(b"\xff\xd8\xff", None)
        chunk = b"\xff" * 65536
        for _ in range(STREAM_BYTES // len(chunk)):
            if self.server.stop.is_set():
                return
            self.wfile.write(chunk)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.end_headers()


@contextlib.contextmanager
def serving():
    """The hostile server on a free port of 127.0.0.1, for the block's duration."""
    httpd = QuietServer(("127.0.0.1", 0), HostileHandler)
    httpd.held, httpd.stop = {}, threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def server():
    with serving() as served:
        yield served


def held(httpd, path: str, requests: int) -> list[float]:
    """How long each request to ``path`` held its connection, once all ``requests`` ended."""
    for _ in range(100):  # the handler notices a gone client at its next write: bounded wait
        if len(httpd.held.get(path, [])) >= requests:
            break
        time.sleep(0.1)
    return httpd.held.get(path, [])


# --- the guarded opener in this process (fast) ------------------------------------------------


def test_opener_cuts_a_drip_at_the_deadline_and_does_not_retry_it(server):
    httpd, url = server
    opener = build_opener(FetchPolicy(allowlist=allow(url), deadline=DEADLINE))
    start = time.monotonic()
    with (
        opener.open(f"{url}/drip-body", timeout=TIMEOUT) as response,
        pytest.raises(GuardRefusal, match="^deadline"),
    ):
        response.read()
    assert time.monotonic() - start < DEADLINE + 1
    with pytest.raises(GuardRefusal, match="^deadline"):  # img2dataset's retry: no request
        opener.open(f"{url}/drip-body", timeout=TIMEOUT)
    assert len(held(httpd, "/drip-body", 1)) == 1


def test_opener_records_a_file_redirect_as_blocked(server):
    _, url = server
    opener = build_opener(FetchPolicy(allowlist=allow(url)))
    with pytest.raises(GuardRefusal, match=r"^blocked_redirect: 302 to file:///etc/passwd"):
        opener.open(f"{url}/redirect/file", timeout=TIMEOUT)


# --- one real img2dataset run --------------------------------------------------------------------


def limit_cases(url: str) -> list[tuple[str, str | None]]:
    """(url, expected error category or None for success)."""
    return [
        (f"{url}/small.jpg", None),
        (f"{url}/drip-body", "deadline"),
        (f"{url}/drip-head", "deadline"),
        (f"{url}/big-stream", "too_large"),
        (f"{url}/redirect/file", "blocked_redirect"),
        (f"{url}/redirect/gopher", "blocked_redirect"),
        (f"{url}/redirect/6to4", "blocked_redirect"),
        (f"http://[{SIXTOFOUR_LOOPBACK}]:8000/x.jpg", "blocked_private_address"),
        ("http://[2002:a9fe:a9fe::]/latest/meta-data/", "blocked_private_address"),
    ]


@pytest.fixture(scope="module")
def limited_run(tmp_path_factory):
    """One img2dataset run (~15 s) over every case, against a server of its own."""
    with serving() as (httpd, url):
        yield run_cases(httpd, url, tmp_path_factory.mktemp("limits"))


def run_cases(httpd, url: str, folder):
    cases = limit_cases(url)
    rows = pa.table(
        {
            "uid": [f"{i:032x}" for i in range(len(cases))],
            "url": [case_url for case_url, _ in cases],
            "text": [f"caption {i}" for i in range(len(cases))],
        }
    )
    settings = DownloadSettings(
        allowlist=allow(url), timeout=TIMEOUT, deadline=DEADLINE, max_image_bytes=CAP, retries=2
    )
    result = download_shard(rows, folder / "images", settings)
    status = {r["url"]: r for r in pq.read_table(result.status_path).to_pylist()}
    return httpd, result, status, dict(cases)


def test_each_limit_is_recorded_with_its_category(limited_run):
    _, result, status, expected = limited_run
    assert {u: r["error_category"] for u, r in status.items()} == expected
    for scheme in ("file", "gopher"):
        (row,) = [r for u, r in status.items() if u.endswith(f"/redirect/{scheme}")]
        assert f"blocked_scheme: {scheme} scheme" in row["error_message"]
    counts = outcome_counts(result.errors, result.success)
    assert counts == {"success": 1, "deadline": 2, "too_large": 1, "blocked": 5}


def test_refused_urls_are_requested_once_despite_retries(limited_run):
    httpd, *_ = limited_run
    for path in ("/drip-body", "/drip-head", "/big-stream", "/redirect/file"):
        assert len(held(httpd, path, 1)) == 1, path
    assert Counter(len(v) for v in httpd.held.values()) == Counter({1: len(httpd.held)})


def test_no_connection_outlives_the_deadline(limited_run):
    httpd, *_ = limited_run
    for path in ("/drip-body", "/drip-head"):
        (seconds,) = held(httpd, path, 1)
        # the server notices the closed socket at its next byte, DRIP_EVERY later
        assert seconds < DEADLINE + DRIP_EVERY + 1.0, (path, seconds)
