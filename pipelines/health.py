"""Pool health on the refresh's clock: every scheduled refresh re-checks each downloaded shard
(pool_health), and subset_health follows once checks have landed.

pool_health_schedule fires on the refresh's cron (POOLSIEVE_REFRESH_CRON) and requests one
health_job run per shard that has images (shard_images or selected_images materialized), keyed
by the tick, so a
tick's checks run once. subset_health_sensor requests subset_health_job when a pool_health
materialization is newer than the one its last request saw (at most every 5 minutes, so a
tick's shards are mostly in before the share is computed; a late shard triggers another).
"""

from __future__ import annotations

import dagster as dg
from poolsieve.pipelines.jobs import health_job, subset_health_job
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.refresh import REFRESH_CRON

from poolsieve.images.health import IMAGE_ASSETS

POOL_HEALTH = dg.AssetKey("pool_health")


def downloaded_shards(instance: dg.DagsterInstance) -> list[str]:
    """The registered shards, in pool order, whose images were downloaded (shard_images, or
    metadata mode's selected_images)."""
    done = set().union(
        *(instance.get_materialized_partitions(dg.AssetKey(a)) for a in IMAGE_ASSETS)
    )
    return [s for s in instance.get_dynamic_partitions(SHARDS.name) if s in done]


def health_requests(instance: dg.DagsterInstance, tick: str):
    """A pool_health run per downloaded shard, keyed by ``tick``; a SkipReason when none."""
    shards = downloaded_shards(instance)
    if not shards:
        return dg.SkipReason("no shard has downloaded images to re-check yet")
    return [dg.RunRequest(partition_key=s, run_key=f"health-{s}-{tick}") for s in shards]


@dg.schedule(cron_schedule=REFRESH_CRON, job_name=health_job.name, execution_timezone="UTC")
def pool_health_schedule(context: dg.ScheduleEvaluationContext):
    """With each scheduled refresh: a pool_health run per downloaded shard."""
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    return health_requests(context.instance, tick)


def latest_health_id(instance: dg.DagsterInstance) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=POOL_HEALTH), limit=1
    ).records
    return records[0].storage_id if records else 0


def subset_health_request(instance: dg.DagsterInstance, cursor: str | None):
    """(request or SkipReason, new cursor): a subset_health run when a pool_health check is
    newer than ``cursor`` (the latest check's storage id seen)."""
    latest, seen = latest_health_id(instance), int(cursor or 0)
    if latest <= seen:
        return dg.SkipReason("no pool_health check since subset_health's last request"), cursor
    return dg.RunRequest(run_key=f"subset-health-{latest}"), str(latest)


@dg.sensor(job_name=subset_health_job.name, minimum_interval_seconds=300)
def subset_health_sensor(context: dg.SensorEvaluationContext):
    """subset_health again once a newer pool_health check exists."""
    request, cursor = subset_health_request(context.instance, context.cursor)
    if cursor != context.cursor:
        context.update_cursor(cursor)
    return request
