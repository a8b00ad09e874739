"""The demo image server: every route answers as routes.json says; it lives and dies by its PID."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from poolsieve_demo import DemoImageServer, WorldConfig, free_port, write_demo_world
from poolsieve_demo.problems import PRIVATE_TARGETS
from poolsieve_demo.server import check_loopback, health_pid

CONFIG = WorldConfig(
    rates={"slow_response": 0.02, "redirect_private": 0.02},  # at least one of each in 80 rows
    trusted_samples=10,
    trusted_shard_size=10,
    eval_per_class=1,
    retrieval_images=5,
    slow_seconds=1.0,
)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # surface the 302 itself; never contact its target


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _get(url: str, timeout: float = 2.0, method: str = "GET"):
    """(status, headers, body) without following redirects (HTTP errors are answers too)."""
    request = urllib.request.Request(url, method=method)
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    port = free_port()
    root = tmp_path_factory.mktemp("served")
    return write_demo_world(root, 2, f"http://127.0.0.1:{port}", 1, 80, CONFIG)


@pytest.fixture(scope="module")
def server(world):
    with world.server() as running:
        yield running


@pytest.fixture(scope="module")
def urls(world):
    """route kind -> the URL of one planted pool row served that way (ok: a clean row)."""
    routes = json.loads(world.routes_path.read_text())["routes"]
    planted = {p["url"] for p in world.truth["problems"]}
    out = {}
    for p in world.truth["problems"]:
        out.setdefault(routes["/" + p["url"].split("/", 3)[3]]["kind"], p["url"])
    out["clean"] = next(u for u in (world.base_url + path for path in routes) if u not in planted)
    return out


def test_ok_serves_the_file_with_its_content_type(world, server, urls):
    status, headers, body = _get(urls["clean"])
    assert status == 200
    path = world.images_dir / urls["clean"].split("/", 3)[3]
    assert body == path.read_bytes()
    assert headers["Content-Type"] == Image.MIME[Image.open(io.BytesIO(body)).format]
    assert _get(urls["clean"] + "?utm_source=x")[2] == body  # query strings are ignored


def test_head_sends_headers_only(server, urls):
    status, headers, body = _get(urls["clean"], method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_dead_links_and_server_errors(world, server, urls):
    assert _get(urls["404"])[0] == 404
    assert _get(urls["500"])[0] == 500
    assert _get(world.base_url + "/img/no-such-image.jpg")[0] == 404


def test_corrupt_bytes_are_served_as_an_image(server, urls):
    status, headers, body = _get(urls["corrupt"])
    assert status == 200 and headers["Content-Type"].startswith("image/") and body
    with pytest.raises(Exception):  # noqa: B017 (PIL raises several types)
        Image.open(io.BytesIO(body)).load()


def test_not_image_is_an_html_page(server, urls):
    status, headers, body = _get(urls["not_image"])
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body.startswith(b"<!doctype html>")


def test_redirect_points_at_a_private_address(server, urls):
    status, headers, _ = _get(urls["redirect_private"])
    assert status == 302 and headers["Location"] in PRIVATE_TARGETS.values()


def test_slow_route_outlasts_a_short_timeout(server, urls):
    start = time.monotonic()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        _get(urls["slow"], timeout=0.3)
    assert time.monotonic() - start < 0.9
    status, _, body = _get(urls["slow"], timeout=5)  # a patient client gets the image
    assert status == 200 and Image.open(io.BytesIO(body)).size


def test_second_host_spelling_reaches_the_same_server(world, server, urls):
    alt = urls["clean"].replace("127.0.0.1", "LocalHost")
    assert world.truth["alt_base_url"] == f"http://localhost:{world.port}"
    assert _get(alt)[:1] == (200,)


def _get_as(url: str, host: str):
    """(status, body) of a GET of ``url`` sent with the Host header ``host``."""
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with OPENER.open(request, timeout=2.0) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_each_host_name_gets_its_own_host_files(world, server, urls):
    """Host picks the host files (port dropped, case ignored); an unknown Host gets none, but
    the image routes answer every Host."""
    files = json.loads(world.routes_path.read_text())["host_files"]
    robots = {
        h: (world.images_dir / f["/robots.txt"]["file"]).read_bytes() for h, f in files.items()
    }
    assert sorted(robots) == ["127.0.0.1", "localhost"] and len(set(robots.values())) == 2
    robots_url = world.base_url + "/robots.txt"
    assert _get_as(robots_url, f"localhost:{world.port}") == (200, robots["localhost"])
    assert _get_as(robots_url, f"LOCALHOST:{world.port}") == (200, robots["localhost"])
    assert _get_as(robots_url, f"127.0.0.1:{world.port}") == (200, robots["127.0.0.1"])
    assert _get(f"{world.truth['alt_base_url']}/robots.txt")[2] == robots["localhost"]
    assert _get_as(robots_url, f"example.org:{world.port}")[0] == 404
    assert _get_as(urls["clean"], f"example.org:{world.port}")[0] == 200


def test_health_reports_the_child_pid(server):
    assert health_pid(server.url) == server.pid != os.getpid()


def test_start_and_stop_by_pid_leave_no_process(world):
    server = DemoImageServer(world.root, free_port())
    server.start()
    pid = server.pid
    assert _alive(pid) and health_pid(server.url) == pid
    server.stop()
    assert server.pid is None and not _alive(pid)
    assert health_pid(server.url) is None


def test_server_exits_when_its_parent_dies(world, tmp_path):
    """A caller that crashes without stop(): the server notices its parent is gone and exits."""
    script = (
        "import sys\n"
        "from poolsieve_demo import DemoImageServer\n"
        "s = DemoImageServer(sys.argv[1], int(sys.argv[2])).start()\n"
        "print(s.pid, flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(world.root), str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def test_busy_port_fails_fast_with_the_reason(world):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = DemoImageServer(world.root, busy.getsockname()[1], start_timeout=10)
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="Address already in use"):
            server.start()
        assert time.monotonic() - start < 8 and server.pid is None


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_only_loopback_addresses_are_bound(world, host):
    with pytest.raises(ValueError, match="loopback"):
        check_loopback(host)
    with pytest.raises(ValueError, match="loopback"):
        DemoImageServer(world.root, 8808, host=host)


def test_command_line_refuses_a_public_address(world):
    command = [sys.executable, "-m", "poolsieve_demo.server", "--root", str(world.root)]
    proc = subprocess.run(
        [*command, "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0 and "loopback" in proc.stderr
