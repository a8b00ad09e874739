"""The shared demo server: started once, used by several holders, stopped by PID by the last."""

from __future__ import annotations

import socket

import pytest

from poolsieve_demo import WorldConfig, write_demo_world
from poolsieve_demo.server import DemoImageServer, free_port, health
from poolsieve_demo.shared import port_problem, shared_demo_server

TINY = WorldConfig(trusted_samples=10, trusted_shard_size=10, eval_per_class=1, retrieval_images=4)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared") / "world"
    port = free_port()
    return write_demo_world(
        root, base_url=f"http://127.0.0.1:{port}", n_shards=1, rows_per_shard=60, config=TINY
    )


def test_last_holder_stops_the_server(world, tmp_path):
    with shared_demo_server(world.root, world.port, tmp_path) as pid:
        answer = health(world.base_url)
        assert answer["pid"] == pid and answer["root"] == str(world.root.resolve())
        with shared_demo_server(world.root, world.port, tmp_path) as again:
            assert again == pid  # reused, not restarted
        assert health(world.base_url)["pid"] == pid  # the inner holder left it running
    assert health(world.base_url) is None


def test_a_running_server_of_the_world_is_reused_and_left_to_its_owner(world, tmp_path):
    with DemoImageServer(world.root, world.port) as owner:
        with shared_demo_server(world.root, world.port, tmp_path) as pid:
            assert pid == owner.pid
        # no other holder: the shared lifecycle stops it, by the pid it reported
        assert health(world.base_url) is None


def test_another_worlds_server_on_the_port_is_refused(world, tmp_path):
    other = write_demo_world(
        tmp_path / "other", base_url=world.base_url, n_shards=1, rows_per_shard=60, config=TINY
    )
    with (
        DemoImageServer(other.root, other.port),
        pytest.raises(RuntimeError, match="another world"),
        shared_demo_server(world.root, world.port, tmp_path),
    ):
        pass


def test_a_detached_server_exits_when_idle(world):
    server = DemoImageServer(world.root, world.port, detached_idle_exit=0.5).start()
    try:
        assert server._proc.wait(timeout=30) == 0  # it exits by itself, no request came
    finally:
        server.stop()
    assert health(world.base_url) is None


def test_port_problem_names_what_holds_the_port(world, tmp_path):
    assert port_problem(world.root, world.port) is None  # free
    with DemoImageServer(world.root, world.port):
        assert port_problem(world.root, world.port) is None  # this world's own server
    other = write_demo_world(
        tmp_path / "other", base_url=world.base_url, n_shards=1, rows_per_shard=60, config=TINY
    )
    with DemoImageServer(other.root, other.port):
        assert "demo server of another world" in port_problem(world.root, world.port)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert port_problem(world.root, port) == f"127.0.0.1:{port} is in use by another process"
