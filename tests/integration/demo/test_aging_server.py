"""The demo server process, started on 127.0.0.1 and stopped by its PID, follows the world's
aging without a restart: epoch-1 bytes first, then 404 for the dead rows and the new bytes for the
re-encoded and replaced ones, all from the same process."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import pyarrow.parquet as pq

from poolsieve_demo import DemoImageServer, WorldConfig, age_world, free_port, write_demo_world
from poolsieve_demo.server import health
from tests.integration.demo.test_server import _alive

CONFIG = WorldConfig(
    trusted_samples=10, trusted_shard_size=10, eval_per_class=1, retrieval_images=4
)


def _get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ok_urls(world) -> list[str]:
    """The pool's well-formed URLs whose path serves a file at epoch 1 (route ``ok``)."""
    routes = json.loads(world.routes_path.read_text())["routes"]
    hosts = (world.base_url, world.truth["alt_base_url"])
    ok = [host + path for host in hosts for path, route in routes.items() if route["kind"] == "ok"]
    urls = {r["url"] for p in world.shard_paths for r in pq.read_table(p).to_pylist()}
    return [u for u in ok if u in urls]


def test_the_running_server_serves_the_aged_world_without_restart(tmp_path):
    world = write_demo_world(tmp_path, 9, f"http://127.0.0.1:{free_port()}", 1, 100, CONFIG)
    server = DemoImageServer(world.root, world.port).start()
    pid = server.pid
    try:
        assert health(server.url)["epoch"] == 1
        before = {url: _get(url) for url in _ok_urls(world)}
        record = age_world(world.root)  # the server keeps running
        aged = {e["url"]: e for e in record["rows"]}
        assert {e["kind"] for e in aged.values()} == {"dead", "reencoded", "replaced"}
        answer = health(server.url)
        assert answer["pid"] == pid and answer["epoch"] == 2
        for url, (status, body) in before.items():
            now_status, now_body = _get(url)
            e = aged.get(url)
            if e is None:
                assert (now_status, now_body) == (status, body)  # not aged: unchanged
                continue
            assert status == 200 and _sha(body) == e["sha256_before"]
            if e["kind"] == "dead":
                assert now_status == 404
            else:
                assert now_status == 200 and _sha(now_body) == e["sha256_after"] != _sha(body)
        assert aged.keys() <= before.keys()
    finally:
        server.stop()
    assert server.pid is None and not _alive(pid)
