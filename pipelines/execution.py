"""Where a run's steps execute: in the CLI's own process (the default), or on a Ray cluster.

Choosing Ray is configuration: ``POOLSIEVE_RAY_ADDRESS`` (empty: in process). Every other
``POOLSIEVE_RAY_*`` variable is read here too (docs/configuration.md, docs/ray.md). With an
address, every job gets ``dagster-ray``'s executor: each step is submitted to the cluster as one
Ray job (``dagster api execute_step`` in a process Ray places on a node with the step's CPUs and,
for the embedding steps, GPUs), the run's coordinator stays in the submitting process and tails
the instance's event log. A step whose Ray job dies (its worker killed, its node lost) is failed
by the executor's health check and retried by Dagster up to ``POOLSIEVE_RAY_MAX_RETRIES`` times.

Steps run in other processes, so they rebuild the job from a code pointer: ``reconstructable``
points at ``ray_job`` with the run's resources as plain values (the CLI's resources, with its
command-line options, not the environment's), so a worker builds exactly the job the CLI built.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

ADDRESS_ENV = "POOLSIEVE_RAY_ADDRESS"
MAX_RETRIES_ENV = "POOLSIEVE_RAY_MAX_RETRIES"
CPUS_ENV = "POOLSIEVE_RAY_CPUS_PER_STEP"
GPUS_ENV = "POOLSIEVE_RAY_GPUS_PER_EMBED"
MAX_RUNS_ENV = "POOLSIEVE_RAY_MAX_RUNS"
#: the steps that run a CLIP forward pass: they ask Ray for GPUS_ENV GPUs each
EMBED_STEPS = frozenset({"clip_embeddings"})  # metadata_embeddings only checks a .npz
#: variables every step's Ray job gets from the submitting process (when set there)
FORWARDED_PREFIXES = ("POOLSIEVE_", "DAGSTER_HOME")


@dataclasses.dataclass(frozen=True)
class Execution:
    """How runs execute. ``address`` empty: in process (Dagster's default executor, unchanged)."""

    address: str = ""
    max_retries: int = 2
    cpus_per_step: float = 1.0
    gpus_per_embed: float | None = None  # None: 1 when the cluster has GPUs, else 0
    max_runs: int = 8

    @property
    def on_ray(self) -> bool:
        return bool(self.address)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Execution:
        """The settings from the POOLSIEVE_RAY_* variables (a clear ValueError names a bad one)."""
        env = os.environ if env is None else env
        return cls(
            address=env.get(ADDRESS_ENV, "").strip(),
            max_retries=_number(env, MAX_RETRIES_ENV, int, cls.max_retries, minimum=0),
            cpus_per_step=_number(env, CPUS_ENV, float, cls.cpus_per_step, minimum=0),
            gpus_per_embed=_number(env, GPUS_ENV, float, None, minimum=0),
            max_runs=_number(env, MAX_RUNS_ENV, int, cls.max_runs, minimum=1),
        )

    def step_options(self, step_key: str, cluster_gpus: float = 0.0) -> dict[str, float]:
        """What one step's Ray job asks the cluster for (the entrypoint's CPUs and GPUs). At
        least one CPU makes Ray place it on any node with a free CPU; with none it would run on
        the head node only. GPUs unset: one for an embedding step when the cluster has any."""
        gpus = self.gpus_per_embed
        if gpus is None:
            gpus = 1.0 if cluster_gpus > 0 else 0.0
        gpus = gpus if step_key in EMBED_STEPS else 0.0
        return {"num_cpus": self.cpus_per_step, "num_gpus": gpus}

    def bind(self, job: dg.UnresolvedAssetJobDefinition) -> dg.UnresolvedAssetJobDefinition:
        """``job`` as it runs under these settings: itself in process; on Ray, the same job
        with the Ray executor and a retry policy for its steps."""
        if not self.on_ray:
            return job
        return dg.define_asset_job(
            job.name,
            selection=job.selection,
            config=job.config,
            description=job.description,
            tags=job.tags,
            run_tags=job.run_tags,
            metadata=job.metadata,
            partitions_def=job.partitions_def,
            hooks=job.hooks,
            executor_def=ray_executor(self),
            op_retry_policy=dg.RetryPolicy(max_retries=self.max_retries),
        )


def _number(env: Mapping[str, str], var: str, kind: type, default, minimum: float):
    raw = env.get(var, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"environment variable {var}={raw!r} is not {kind.__name__}") from None
    if value < minimum:
        raise ValueError(f"environment variable {var}={raw!r} must be at least {minimum}")
    return value


def submission_address(address: str) -> str:
    """The HTTP address of the cluster's job server for ``address``: an ``http(s)://`` address
    as is; a GCS address (``host:6379``), ``auto`` or a Ray Client address (``ray://host:10001``)
    asked of the cluster (Ray's own rule, which the ``RAY_ADDRESS`` variable overrides)."""
    if address.startswith(("http://", "https://")):
        return address
    from ray.dashboard.utils import get_address_for_submission_client

    return get_address_for_submission_client(address)


def forwarded_env(env: Mapping[str, str] | None = None) -> list[str]:
    """``KEY=VALUE`` of the variables each step's Ray job gets: POOLSIEVE_* and DAGSTER_HOME."""
    env = os.environ if env is None else env
    return sorted(f"{k}={v}" for k, v in env.items() if k.startswith(FORWARDED_PREFIXES))


def ray_executor(execution: Execution) -> dg.ExecutorDefinition:
    """dagster-ray's executor (each step one Ray job) with per-step resources: its step handler
    takes one CPU/GPU request for every step, so a subclass sets it per step (``step_options``)."""
    from poolsieve.audit.dagster_private import (
        multiple_process_requirements,
        step_delegating_executor,
    )

    @dg.executor(name="ray", requirements=multiple_process_requirements())
    def poolsieve_ray_executor(_init_context) -> Any:
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(submission_address(execution.address))
        return step_delegating_executor(_step_handler()(client, execution, forwarded_env()))

    return poolsieve_ray_executor


def cluster_gpus(address: str) -> float:
    """The GPUs of the cluster's live nodes (Ray's state API, through its dashboard)."""
    from ray.util.state import list_nodes

    nodes = list_nodes(address=submission_address(address), raise_on_missing_output=False)
    return sum(n.resources_total.get("GPU", 0.0) for n in nodes if n.state == "ALIVE")


def _step_handler() -> type:
    from dagster_ray.core.executor import RayStepHandler

    class PerStepRayHandler(RayStepHandler):
        """RayStepHandler asking for each step's own CPUs and GPUs (``Execution.step_options``).
        Steps of one run are launched one after another from the run's coordinator thread."""

        def __init__(self, client, execution: Execution, env_vars: list[str]):
            super().__init__(client, env_vars, None, None, None, None, None)
            self.execution = execution
            auto = execution.gpus_per_embed is None
            self.cluster_gpus = cluster_gpus(execution.address) if auto else 0.0

        def launch_step(self, step_handler_context) -> Iterator[dg.DagsterEvent]:
            step = self._get_step_key(step_handler_context)
            options = self.execution.step_options(step, self.cluster_gpus)
            self.num_cpus = options["num_cpus"] or None
            self.num_gpus = options["num_gpus"] or None
            yield from super().launch_step(step_handler_context)

    return PerStepRayHandler


# --- the job a step's worker rebuilds ---------------------------------------------------------


def resources_spec(resources) -> dict[str, list]:
    """``Resources`` as plain values: key -> [class as "module:name", {field: value}]."""
    spec = {}
    for key, res in resources.as_dict().items():
        cls = type(res)
        values = {name: getattr(res, name) for name in cls.model_fields}
        bound = [name for name, value in values.items() if isinstance(value, dg.EnvVar)]
        if bound:
            raise ValueError(
                f"resource {key}: fields {bound} name environment variables (dg.EnvVar); a Ray "
                "run's steps need their values (build the resources with env_vars=False)"
            )
        spec[key] = [f"{cls.__module__}:{cls.__qualname__}", values]
    return spec


def resources_from_spec(spec: Mapping[str, list]):
    """The ``Resources`` that ``resources_spec`` described."""
    from poolsieve.pipelines.resources import Resources

    built = {}
    for key, (path, values) in spec.items():
        module, name = path.split(":")
        built[key] = getattr(importlib.import_module(module), name)(**values)
    return Resources(**built)


def ray_job(job_name: str, resources: dict, execution: dict) -> dg.JobDefinition:
    """The job ``job_name`` of the code location bound to ``resources`` (a resources_spec) and
    ``execution`` (Execution's fields): what every process of a Ray run builds."""
    from poolsieve.pipelines.definitions import build_defs

    defs = build_defs(resources_from_spec(resources), Execution(**execution))
    return defs.resolve_job_def(job_name)


def reconstructable_job(job_name: str, resources, execution: Execution):
    """A job Dagster can rebuild in another process: ``ray_job`` with these arguments."""
    return dg.build_reconstructable_job(
        __name__,
        ray_job.__name__,
        reconstructable_kwargs={
            "job_name": job_name,
            "resources": resources_spec(resources),
            "execution": dataclasses.asdict(execution),
        },
    )
