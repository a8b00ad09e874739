"""The Dagster code location: assets, checks, jobs, sensors, schedules and resources."""

import dagster as dg

from assets.pool_shard import pool_shard
from assets.url_dedup import url_dedup
from pipelines.jobs import ingest_job
from pipelines.refresh import dedup_recheck_sensor, pool_refresh_schedule, pool_source_sensor
from pipelines.resources import PoolsieveResource, resource_from_env


def build_defs(poolsieve: PoolsieveResource) -> dg.Definitions:
    """The whole code location bound to one lake/source (the CLI and tests pass their own)."""
    return dg.Definitions(
        assets=[pool_shard, url_dedup],
        jobs=[ingest_job],
        sensors=[pool_source_sensor, dedup_recheck_sensor],
        schedules=[pool_refresh_schedule],
        resources={"poolsieve": poolsieve},
    )


defs = build_defs(resource_from_env())
