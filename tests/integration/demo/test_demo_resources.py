"""The demo's downloader keeps the demo image server up while a step downloads (a real server)."""

from __future__ import annotations

from poolsieve_demo import write_demo_world
from poolsieve_demo.resources import demo_resources, world_dir
from poolsieve_demo.server import health
from tests.unit.pipelines.test_resources import TINY


def test_the_demo_downloader_keeps_its_server_up_while_a_step_downloads(tmp_path):
    from poolsieve_demo.server import free_port

    lake = tmp_path / "lake"
    url = f"http://127.0.0.1:{free_port()}"
    world = write_demo_world(
        world_dir(lake), base_url=url, n_shards=1, rows_per_shard=60, config=TINY
    )
    heard = []
    with demo_resources(lake, env={}).downloader.hosts_up(heard.append):
        assert health(world.base_url)["root"] == str(world.root.resolve())
    assert health(world.base_url) is None
    assert heard and f"port {world.port}" in heard[0]
