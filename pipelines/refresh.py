"""Pool refresh: the sensor (new/changed files, by cursor) and the schedule (re-scan, by lineage).

Both plan with poolsieve.pool.sources.plan_refresh: new files become partitions and get a shard_job
run (the whole per-shard pipeline), changed files get a run, removed files are reported (log +
an AssetObservation on pool_shard), never silently dropped. Scorer first: while the scorer was
never materialized, they request one scorer_job run and hold the shard runs back (new files are
still registered), since every shard's embeddings need it; the next tick after it exists
requests them.
"""

import json
import os

import dagster as dg
from poolsieve.pipelines.jobs import SHARD_ASSETS, ingest_job, shard_job
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import LakeResource

from poolsieve.pool.sources import RefreshPlan, SourceListing, plan_refresh, scan_source

REFRESH_CRON = os.environ.get("POOLSIEVE_REFRESH_CRON", "0 3 * * *")


def removal_events(removed: list[str], source: str) -> list[dg.AssetObservation]:
    return [
        dg.AssetObservation(
            asset_key="pool_shard",
            partition=key,
            metadata={"removed_from_source": True, "source": source},
        )
        for key in removed
    ]


def run_requests(plan: RefreshPlan, listing: SourceListing) -> list[dg.RunRequest]:
    files = listing.by_key()
    return [
        dg.RunRequest(
            partition_key=key,
            run_key=f"{key}@{files[key].signature}",
            asset_selection=[dg.AssetKey(a) for a in SHARD_ASSETS],
            tags=shard_job.tags,
        )
        for key in plan.to_run
    ]


def scorer_missing(instance: dg.DagsterInstance) -> bool:
    return instance.get_latest_materialization_event(dg.AssetKey("scorer")) is None


SCORER_FIRST = dg.RunRequest(run_key="scorer-first", asset_selection=[dg.AssetKey("scorer")])
#: what refresh runs materialize: the scorer (once) and every per-shard asset
REFRESH_TARGET = dg.AssetSelection.assets("scorer", *SHARD_ASSETS)


def _log_plan(log, plan: RefreshPlan, listing: SourceListing) -> None:
    if plan.new or plan.changed:
        log.info(f"pool refresh: new {plan.new}, changed {plan.changed}")
    if plan.removed:
        log.warning(f"pool refresh: files gone from {listing.root}: {plan.removed}")
    if listing.ignored:
        log.info(f"pool refresh: ignored non-parquet files {listing.ignored}")


@dg.sensor(target=REFRESH_TARGET, minimum_interval_seconds=60)
def pool_source_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    """Registers new source files as shard partitions and requests their shard_job runs."""
    listing = scan_source(lake.source_url)
    cursor = json.loads(context.cursor) if context.cursor else {"seen": {}, "removed": []}
    registered = context.instance.get_dynamic_partitions(SHARDS.name)
    plan = plan_refresh(listing, registered, cursor["seen"])
    _log_plan(context.log, plan, listing)
    newly_removed = [k for k in plan.removed if k not in cursor["removed"]]
    hold = scorer_missing(context.instance) and bool(plan.to_run)
    ran = [] if hold else plan.to_run
    seen = {**cursor["seen"], **{k: listing.by_key()[k].signature for k in ran}}
    return dg.SensorResult(
        run_requests=[SCORER_FIRST] if hold else run_requests(plan, listing),
        dynamic_partitions_requests=[SHARDS.build_add_request(plan.new)] if plan.new else [],
        asset_events=removal_events(newly_removed, listing.root),
        cursor=json.dumps(
            {"seen": seen, "removed": sorted(set(cursor["removed"]) | set(plan.removed))}
        ),
    )


def latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> tuple[int, dict]:
    """(storage id, metadata) of the latest materialization of one asset partition; (0, {})."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return 0, {}
    return records[0].storage_id, dict(records[0].asset_materialization.metadata)


def materialized_signatures(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, str]:
    """shard -> 'size:mtime' of its source file at its latest pool_shard materialization."""
    signatures = {}
    for key in keys:
        meta = latest_metadata(instance, "pool_shard", key)[1]
        if "source_size" in meta:
            signatures[key] = f"{meta['source_size'].value}:{meta['source_mtime'].value}"
    return signatures


@dg.schedule(
    cron_schedule=REFRESH_CRON,
    target=REFRESH_TARGET,
    execution_timezone="UTC",
)
def pool_refresh_schedule(context: dg.ScheduleEvaluationContext, lake: LakeResource):
    """Daily (POOLSIEVE_REFRESH_CRON) re-scan: registers new files, re-runs new or changed shards."""
    listing = scan_source(lake.source_url)
    registered = context.instance.get_dynamic_partitions(SHARDS.name)
    plan = plan_refresh(listing, registered, materialized_signatures(context.instance, registered))
    _log_plan(context.log, plan, listing)
    if plan.new:
        context.instance.add_dynamic_partitions(SHARDS.name, plan.new)
    if plan.to_run and scorer_missing(context.instance):
        context.log.info("pool refresh: the scorer comes first; shard runs follow its run")
        return [SCORER_FIRST]
    requests = run_requests(plan, listing)
    return requests or dg.SkipReason(f"pool source {listing.root} has nothing new or changed")


def incomplete_dedups(instance: dg.DagsterInstance) -> list[tuple[str, int]]:
    """(shard, event id) of url_dedups that ran before an earlier shard was ingested, now is."""
    keys = instance.get_dynamic_partitions(SHARDS.name)
    ingested = set(instance.get_materialized_partitions(dg.AssetKey("pool_shard")))
    stale = []
    for key in keys:
        storage_id, meta = latest_metadata(instance, "url_dedup", key)
        missing = meta.get("earlier_shards_not_ingested")
        if missing and missing.value and set(missing.value) <= ingested:
            stale.append((key, storage_id))
    return stale


@dg.sensor(
    asset_selection=dg.AssetSelection.assets("url_dedup"),
    minimum_interval_seconds=120,
)
def dedup_recheck_sensor(context: dg.SensorEvaluationContext):
    """Re-decides a shard deduped before an earlier shard was ingested, once that one is."""
    stale = incomplete_dedups(context.instance)
    if not stale:
        return dg.SkipReason("every url_dedup partition was compared with all earlier shards")
    return [
        dg.RunRequest(partition_key=key, run_key=f"{key}@{event}", tags=ingest_job.tags)
        for key, event in stale
    ]
