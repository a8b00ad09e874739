"""Resources: defaults, POOLSIEVE_* variables (read at once or at run start), what a production
source gets, and what the demo hands over for its world."""

from __future__ import annotations

import dagster as dg
import pytest
from poolsieve.pipelines.resources import (
    RESOURCE_CLASSES,
    DownloaderResource,
    LakeResource,
    env_names,
    resources_from_env,
)

from poolsieve.images.address import endpoints_for_hosts
from poolsieve_demo import WorldConfig, write_demo_world
from poolsieve_demo.resources import PARAM_PROFILE, demo_resources, world_dir
from tests.repo import REPO_ROOT

TINY = WorldConfig(trusted_samples=10, trusted_shard_size=10, eval_per_class=1, retrieval_images=4)


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory):
    lake = tmp_path_factory.mktemp("res") / "lake"
    write_demo_world(
        world_dir(lake),
        base_url="http://127.0.0.1:8911",
        n_shards=1,
        rows_per_shard=60,
        config=TINY,
    )
    return str(lake)


def test_the_demo_hands_over_its_paths_profile_and_server(lake_dir):
    resources = demo_resources(lake_dir, env={})
    world = world_dir(lake_dir)
    settings = resources.downloader.settings
    assert set(settings.allowlist) == {"127.0.0.1:8911", "[::1]:8911"}
    assert settings.timeout == TINY.slow_seconds / 2  # below the world's slow routes
    assert resources.lake.source_url == str(world / "source")
    assert resources.scorer.settings.trusted_dir == str(world / "trusted")
    assert resources.eval_sets.eval_path == str(world / "eval")
    assert resources.curation.param_profile == PARAM_PROFILE == "tiny-cpu"


def test_production_defaults_name_what_is_missing():
    resources = resources_from_env(env={}, downloader={"allowlist": ["10.1.2.3:80"]})
    settings = resources.downloader.settings
    assert settings.allowlist == ("10.1.2.3:80",) and settings.timeout == 10.0
    assert resources.scorer.settings.trusted_dir == ""
    assert resources.curation.param_profile == ""
    with pytest.raises(ValueError, match="no eval sets configured: set POOLSIEVE_EVAL"):
        _ = resources.eval_sets.eval_path
    with pytest.raises(ValueError, match="no pool source configured: set POOLSIEVE_SOURCE"):
        _ = resources.lake.source_url
    with DownloaderResource().hosts_up():  # web hosts: nothing to start
        pass


ENV = {
    "POOLSIEVE_LAKE": "/data/lake",
    "POOLSIEVE_DUCKDB_THREADS": "8",
    "POOLSIEVE_DOWNLOAD_TIMEOUT": "2.5",
    "POOLSIEVE_DOWNLOAD_ALLOWLIST": "10.0.0.0/8, 127.0.0.1:9000",
    "POOLSIEVE_VERIFY_SHA256": "true",
    "POOLSIEVE_SCORER": "openai",
    "POOLSIEVE_PARAM_PROFILE": "tiny-cpu",
    "POOLSIEVE_DECONTAM_THRESHOLD": "0.9",
}


def test_variables_set_fields_and_overrides_win():
    resources = resources_from_env(env=ENV, lake={"duckdb_threads": 4})
    assert resources.lake.lake_dir == "/data/lake" and resources.lake.duckdb_threads == 4
    assert resources.downloader.timeout == 2.5 and resources.downloader.verify_sha256
    assert resources.downloader.allowlist == ["10.0.0.0/8", "127.0.0.1:9000"]
    assert resources.scorer.source == "openai" and resources.curation.param_profile == "tiny-cpu"
    assert resources.eval_sets.decontam_threshold == 0.9
    assert resources.embedding.device == "auto"  # unset: the default


def test_the_code_location_reads_str_and_int_variables_when_a_run_starts(monkeypatch):
    resources = resources_from_env(env=ENV, env_vars=True)
    assert resources.lake.lake_dir.env_var_name == "POOLSIEVE_LAKE"
    assert resources.lake.duckdb_threads.env_var_name == "POOLSIEVE_DUCKDB_THREADS"
    seen = {}

    @dg.asset
    def probe(lake: LakeResource):
        seen.update(lake_dir=lake.lake_dir, threads=lake.duckdb_threads)

    monkeypatch.setenv("POOLSIEVE_LAKE", "/at/run/start")
    monkeypatch.setenv("POOLSIEVE_DUCKDB_THREADS", "3")
    assert dg.materialize([probe], resources={"lake": resources.lake}).success
    assert seen == {"lake_dir": "/at/run/start", "threads": 3}


def test_a_bad_variable_or_key_is_named():
    with pytest.raises(ValueError, match="POOLSIEVE_DOWNLOAD_TIMEOUT='soon'"):
        resources_from_env(env={"POOLSIEVE_DOWNLOAD_TIMEOUT": "soon"})
    with pytest.raises(ValueError, match="POOLSIEVE_VERIFY_SHA256"):
        resources_from_env(env={"POOLSIEVE_VERIFY_SHA256": "maybe"})
    with pytest.raises(ValueError, match="unknown resource keys"):
        resources_from_env(env={}, poolsieve={"lake_dir": "x"})


def test_every_field_has_a_variable_documented_in_configuration_md():
    doc = (REPO_ROOT / "docs" / "configuration.md").read_text()
    for key, cls in RESOURCE_CLASSES.items():
        variables = env_names(cls)
        assert set(variables) == set(cls.model_fields), cls.__name__
        for field, variable in variables.items():
            assert f"`{variable}`" in doc and f"`{key}.{field}`" in doc, (key, field)


def test_localhost_means_the_loopback_addresses_and_ips_pass_unchanged():
    assert endpoints_for_hosts(["localhost:80", "127.0.0.1:80", "10.0.0.2:9"]) == [
        "127.0.0.1:80",
        "[::1]:80",
        "10.0.0.2:9",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "POOLSIEVE_LAKE_OPTIONS is not JSON"), ("[1, 2]", "must be a JSON object")],
)
def test_bad_lake_options_are_named(text, message):
    from poolsieve.pipelines.resources import lake_options

    with pytest.raises(ValueError, match=message):
        lake_options(text)
    assert lake_options("") == {}
    assert lake_options('{"endpoint_url": "http://127.0.0.1:9000"}') == {
        "endpoint_url": "http://127.0.0.1:9000"
    }
