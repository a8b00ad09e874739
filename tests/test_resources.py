"""Resource settings: what the demo world turns on, and what a production source gets."""

from __future__ import annotations

import pytest
from poolsieve.pipelines.resources import PoolsieveResource, demo_world_dir

from poolsieve.images.address import endpoints_for_hosts
from poolsieve_demo import WorldConfig, write_demo_world

TINY = WorldConfig(trusted_samples=10, trusted_shard_size=10, eval_per_class=1, retrieval_images=4)


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory):
    lake = tmp_path_factory.mktemp("res") / "lake"
    write_demo_world(
        demo_world_dir(str(lake)),
        base_url="http://127.0.0.1:8911",
        n_shards=1,
        rows_per_shard=60,
        config=TINY,
    )
    return str(lake)


def test_demo_world_allowlists_exactly_its_server_and_times_out_its_slow_routes(lake_dir):
    resource = PoolsieveResource(lake_dir=lake_dir)
    assert resource.demo_world == demo_world_dir(lake_dir)
    settings = resource.download_settings
    assert set(settings.allowlist) == {"127.0.0.1:8911", "[::1]:8911"}
    assert settings.timeout == TINY.slow_seconds / 2
    assert resource.scorer_settings.trusted_dir == str(demo_world_dir(lake_dir) / "trusted")
    assert resource.eval_path == str(demo_world_dir(lake_dir) / "eval")


def test_another_source_gets_no_allowlist_and_no_demo_parts(lake_dir, tmp_path):
    resource = PoolsieveResource(
        lake_dir=lake_dir, source=str(tmp_path), download_allowlist=["10.1.2.3:80"]
    )
    assert resource.demo_world is None
    settings = resource.download_settings
    assert settings.allowlist == ("10.1.2.3:80",) and settings.timeout == 10.0
    assert resource.scorer_settings.trusted_dir == ""
    with pytest.raises(ValueError, match="no eval configured"):
        _ = resource.eval_path


def test_localhost_means_the_loopback_addresses_and_ips_pass_unchanged():
    assert endpoints_for_hosts(["localhost:80", "127.0.0.1:80", "10.0.0.2:9"]) == [
        "127.0.0.1:80",
        "[::1]:80",
        "10.0.0.2:9",
    ]
