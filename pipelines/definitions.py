"""The Dagster code location: assets, checks, jobs, sensors, schedules and resources."""

import dagster as dg

from assets.pool_shard import pool_shard
from assets.url_dedup import url_dedup
from pipelines.jobs import ingest_job
from pipelines.refresh import pool_refresh_schedule, pool_source_sensor
from pipelines.resources import resource_from_env

defs = dg.Definitions(
    assets=[pool_shard, url_dedup],
    jobs=[ingest_job],
    sensors=[pool_source_sensor],
    schedules=[pool_refresh_schedule],
    resources={"poolsieve": resource_from_env()},
)
