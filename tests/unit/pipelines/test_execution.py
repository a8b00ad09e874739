"""Where runs execute: the POOLSIEVE_RAY_* settings, the jobs they give, the job a worker rebuilds."""

from __future__ import annotations

import dagster as dg
import pytest
from poolsieve.pipelines.definitions import build_defs
from poolsieve.pipelines.execution import (
    Execution,
    forwarded_env,
    ray_job,
    reconstructable_job,
    resources_from_spec,
    resources_spec,
    submission_address,
)
from poolsieve.pipelines.jobs import RAY_PHASES, shard_job
from poolsieve.pipelines.resources import resources_from_env

from poolsieve.lake import METADATA_SHARD_ASSETS, SHARD_ASSETS
from poolsieve_demo.resources import DemoDownloaderResource, demo_resources


def test_no_address_is_in_process_and_the_jobs_are_unchanged():
    execution = Execution.from_env({})
    assert not execution.on_ray
    assert execution.bind(shard_job) is shard_job
    defs = build_defs(resources_from_env({}), execution)
    assert defs.resolve_job_def("shard_job").executor_def.name != "ray"


def test_an_address_gives_every_job_the_ray_executor_and_a_retry_policy():
    env = {"POOLSIEVE_RAY_ADDRESS": " 127.0.0.1:6379 ", "POOLSIEVE_RAY_MAX_RETRIES": "3"}
    execution = Execution.from_env(env)
    assert execution.address == "127.0.0.1:6379" and execution.max_retries == 3
    defs = build_defs(resources_from_env({}), execution)
    for name in ("shard_job", "pool_shard_job", "shard_steps_job", "subset_job", "scorer_job"):
        job = defs.resolve_job_def(name)
        assert job.executor_def.name == "ray", name
        assert job.op_retry_policy == dg.RetryPolicy(max_retries=3), name
    bound = execution.bind(shard_job)
    assert (bound.name, bound.tags, bound.selection) == (
        shard_job.name,
        shard_job.tags,
        shard_job.selection,
    )


@pytest.mark.parametrize(
    ("var", "raw", "message"),
    [
        ("POOLSIEVE_RAY_MAX_RETRIES", "two", "is not int"),
        ("POOLSIEVE_RAY_MAX_RETRIES", "-1", "at least 0"),
        ("POOLSIEVE_RAY_GPUS_PER_EMBED", "x", "is not float"),
        ("POOLSIEVE_RAY_MAX_RUNS", "0", "at least 1"),
    ],
)
def test_a_bad_value_names_its_variable(var, raw, message):
    with pytest.raises(ValueError, match=f"{var}={raw!r}.*{message}"):
        Execution.from_env({var: raw})


def test_only_the_embedding_steps_ask_for_gpus():
    execution = Execution.from_env(
        {"POOLSIEVE_RAY_GPUS_PER_EMBED": "0.5", "POOLSIEVE_RAY_CPUS_PER_STEP": "2"}
    )
    assert execution.step_options("clip_embeddings") == {"num_cpus": 2.0, "num_gpus": 0.5}
    assert execution.step_options("metadata_embeddings")["num_gpus"] == 0  # no model
    assert execution.step_options("shard_images") == {"num_cpus": 2.0, "num_gpus": 0.0}


def test_unset_gpus_follow_the_cluster():
    auto = Execution.from_env({"POOLSIEVE_RAY_ADDRESS": "127.0.0.1:6379"})
    assert auto.gpus_per_embed is None
    assert auto.step_options("clip_embeddings", cluster_gpus=8)["num_gpus"] == 1.0
    assert auto.step_options("clip_embeddings", cluster_gpus=0)["num_gpus"] == 0.0
    assert auto.step_options("shard_images", cluster_gpus=8)["num_gpus"] == 0.0
    pinned = Execution.from_env({"POOLSIEVE_RAY_GPUS_PER_EMBED": "0"})
    assert pinned.step_options("clip_embeddings", cluster_gpus=8)["num_gpus"] == 0.0


def test_the_phases_on_ray_cover_each_shard_job_with_ingest_first():
    defs = build_defs(resources_from_env({}), Execution())
    wanted = {"shard_job": SHARD_ASSETS, "metadata_shard_job": METADATA_SHARD_ASSETS}
    wanted["ingest_job"] = ["pool_shard", "url_dedup"]
    for job, phases in RAY_PHASES.items():
        assets = [
            key.to_user_string()
            for phase in phases
            for key in sorted(defs.resolve_job_def(phase).asset_layer.executable_asset_keys)
        ]
        assert sorted(assets) == sorted(wanted[job]), job
        assert phases[0] == "pool_shard_job"


def test_a_worker_rebuilds_the_same_resources_from_plain_values(tmp_path):
    resources = demo_resources(tmp_path / "lake", env={}, training={"seed": 7})
    spec = resources_spec(resources)
    rebuilt = resources_from_spec(spec)
    assert isinstance(rebuilt.downloader, DemoDownloaderResource)
    assert rebuilt == resources
    execution = Execution(address="127.0.0.1:1")
    job = ray_job("subset_job", spec, {"address": "127.0.0.1:1"})
    assert job.name == "subset_job" and job.executor_def.name == "ray"
    recon = reconstructable_job("subset_job", resources, execution)
    assert recon.get_definition().name == "subset_job"


def test_resources_naming_environment_variables_are_refused():
    with pytest.raises(ValueError, match="dg.EnvVar"):
        resources_spec(resources_from_env({"POOLSIEVE_LAKE": "/x"}, env_vars=True))


def test_http_addresses_are_used_as_they_are_and_the_steps_get_poolsieve_variables():
    assert submission_address("http://head:8265") == "http://head:8265"
    env = {"POOLSIEVE_LAKE": "/l", "DAGSTER_HOME": "/h", "HOME": "/root"}
    assert forwarded_env(env) == ["DAGSTER_HOME=/h", "POOLSIEVE_LAKE=/l"]
