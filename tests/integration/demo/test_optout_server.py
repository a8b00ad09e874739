"""The demo server process, started on 127.0.0.1 and stopped by its PID, sends an opt-out row's
headers and each origin its own host files (robots.txt, tdmrep.json, ai.txt), as the world's
routes.json names them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from poolsieve.images.optout import HOST_FILES
from poolsieve_demo import DemoImageServer, WorldConfig, free_port, write_demo_world
from poolsieve_demo.optout import OPTOUT_KINDS, host_name

CONFIG = WorldConfig(
    rates=dict.fromkeys(OPTOUT_KINDS, 0.05),
    trusted_samples=10,
    trusted_shard_size=10,
    eval_per_class=1,
    retrieval_images=4,
)


def _get(url: str):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_the_server_process_sends_optout_headers_and_host_files(tmp_path):
    world = write_demo_world(tmp_path, 5, f"http://127.0.0.1:{free_port()}", 1, 100, CONFIG)
    headed = [p for p in world.truth["problems"] if "headers" in p]
    server = DemoImageServer(world.root, world.port).start()
    try:
        assert headed
        for p in headed:
            status, headers, _ = _get(p["url"])
            assert status == 200 and {k: headers[k] for k in p["headers"]} == p["headers"]
        host_files = json.loads(world.routes_path.read_text())["host_files"]
        for path in HOST_FILES.values():
            bodies = set()
            for base in (world.base_url, world.truth["alt_base_url"]):
                status, _, body = _get(base + path)
                route = host_files[host_name(base)][path]
                assert status == 200 and body == (world.images_dir / route["file"]).read_bytes()
                bodies.add(body)
            assert len(bodies) == 2  # each origin its own
    finally:
        pid = server.pid
        server.stop()
    assert server.pid is None and pid is not None
