"""Pool refresh: the sensor and the schedule plan from lineage (what is materialized).

Both plan with poolsieve.pool.sources.plan_refresh against the source signature (size, mtime)
recorded on each shard's latest pool_shard materialization: new files are enrolled in the lake's
pool order and become partitions (pipelines.partitions.register_shards) and get a shard_job run
(the whole per-shard pipeline); files whose signature differs from the materialized one get a run
tagged REPLACE_CHANGED_TAG (pool_shard may replace that shard's earlier content); removed files
are reported (log + an AssetObservation on pool_shard), never silently dropped. The sensor's
cursor only remembers what it already requested (so a run still queued is not requested again;
the run key, shard@signature, dedups as well) and which removals it reported. Scorer first: while
the scorer was never materialized, they request one scorer_job run and hold the shard runs back
(new files are still registered), since every shard's embeddings need it; the next tick after it
exists requests them.
"""

import json
import os
from dataclasses import replace

import dagster as dg
from poolsieve.pipelines.jobs import METADATA_SHARD_ASSETS, SHARD_ASSETS, ingest_job, shard_job
from poolsieve.pipelines.partitions import REPLACE_CHANGED_TAG, SHARDS, register_shards
from poolsieve.pipelines.resources import CurationResource, LakeResource

from poolsieve.lake import shard_assets
from poolsieve.pool.registry import RegistryLayoutError, ShardIdentityError
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


def run_requests(
    plan: RefreshPlan,
    listing: SourceListing,
    materialized: dict[str, str],
    assets: list[str] = SHARD_ASSETS,
) -> list[dg.RunRequest]:
    """One run of the per-shard ``assets`` per key to run; a key whose materialized signature
    differs from its file's (its content changed) is tagged so that pool_shard may replace it."""
    files = listing.by_key()
    return [
        dg.RunRequest(
            partition_key=key,
            run_key=f"{key}@{files[key].signature}",
            asset_selection=[dg.AssetKey(a) for a in assets],
            tags={
                **shard_job.tags,
                **({REPLACE_CHANGED_TAG: "true"} if key in materialized else {}),
            },
        )
        for key in plan.to_run
    ]


def scorer_missing(instance: dg.DagsterInstance) -> bool:
    return instance.get_latest_materialization_event(dg.AssetKey("scorer")) is None


def refresh_assets(instance: dg.DagsterInstance, curation: CurationResource) -> list[str]:
    """The per-shard assets of the pool's mode, and the shard's image clusters once
    image_centroids exists (a new shard is assigned to the centroids it has, never re-trained)."""
    assets = shard_assets(curation.mode)
    centroids = instance.get_latest_materialization_event(dg.AssetKey("image_centroids"))
    return [*assets, "shard_clusters"] if centroids is not None else assets


def needs_scorer_first(instance: dg.DagsterInstance, curation: CurationResource) -> bool:
    return curation.mode != "metadata" and scorer_missing(instance)


SCORER_FIRST = dg.RunRequest(run_key="scorer-first", asset_selection=[dg.AssetKey("scorer")])
#: what refresh runs materialize: the scorer (once) and every per-shard asset of either mode
REFRESH_TARGET = dg.AssetSelection.assets(
    "scorer", *dict.fromkeys([*SHARD_ASSETS, *METADATA_SHARD_ASSETS, "shard_clusters"])
)


def _log_plan(log, plan: RefreshPlan, listing: SourceListing) -> None:
    if plan.new or plan.changed:
        log.info(f"pool refresh: new {plan.new}, changed {plan.changed}")
    if plan.removed:
        log.warning(f"pool refresh: files gone from {listing.root}: {plan.removed}")
    if listing.ignored:
        log.info(f"pool refresh: ignored non-parquet files {listing.ignored}")


def register_new(log, instance: dg.DagsterInstance, lake: LakeResource, plan: RefreshPlan):
    """Enrol the plan's new files in the lake's pool order and as partitions; the plan without
    them (logged as an error) when the lake knows one of their names from another source."""
    if not plan.new:
        return plan
    try:
        register_shards(instance, lake, plan.new)
    except (ShardIdentityError, RegistryLayoutError) as err:
        log.error(f"pool refresh: new files {plan.new} not registered: {err}")
        return replace(plan, new=[])
    return plan


def plan_from_lineage(instance: dg.DagsterInstance, listing: SourceListing):
    """(plan, materialized signatures): the source compared with what pool_shard materialized."""
    registered = instance.get_dynamic_partitions(SHARDS.name)
    materialized = materialized_signatures(instance, registered)
    return plan_refresh(listing, registered, materialized), materialized


def read_cursor(text: str | None) -> dict:
    """{"requested": shard -> signature requested last, "removed": removals reported}; a cursor
    of an earlier release ({"seen": ...}) reads as the same."""
    cursor = json.loads(text) if text else {}
    return {
        "requested": cursor.get("requested", cursor.get("seen", {})),
        "removed": cursor.get("removed", []),
    }


def unrequested(plan: RefreshPlan, listing: SourceListing, requested: dict) -> RefreshPlan:
    """The plan less the keys already requested at their file's current signature."""
    files = listing.by_key()

    def pending(keys: list[str]) -> list[str]:
        return [k for k in keys if requested.get(k) != files[k].signature]

    return replace(plan, new=pending(plan.new), changed=pending(plan.changed))


@dg.sensor(target=REFRESH_TARGET, minimum_interval_seconds=60)
def pool_source_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, curation: CurationResource
):
    """Requests a shard_job run for each source file that is new or changed since its latest
    pool_shard materialization (and not requested already at that signature)."""
    listing = scan_source(lake.source_url)
    cursor = read_cursor(context.cursor)
    plan, materialized = plan_from_lineage(context.instance, listing)
    plan = unrequested(
        register_new(context.log, context.instance, lake, plan), listing, cursor["requested"]
    )
    _log_plan(context.log, plan, listing)
    hold = needs_scorer_first(context.instance, curation) and bool(plan.to_run)
    files = listing.by_key()
    requested = {
        **cursor["requested"],
        **{k: files[k].signature for k in ([] if hold else plan.to_run)},
    }
    removed = set(cursor["removed"]) | set(plan.removed)
    return dg.SensorResult(
        run_requests=[SCORER_FIRST]
        if hold
        else run_requests(plan, listing, materialized, refresh_assets(context.instance, curation)),
        asset_events=removal_events(
            sorted(set(plan.removed) - set(cursor["removed"])), listing.root
        ),
        # a file back in the source is forgotten as removed: gone again, it is reported again
        cursor=json.dumps({"requested": requested, "removed": sorted(removed - set(files))}),
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
def pool_refresh_schedule(
    context: dg.ScheduleEvaluationContext, lake: LakeResource, curation: CurationResource
):
    """Daily (POOLSIEVE_REFRESH_CRON) re-scan: registers new files, re-runs new or changed shards."""
    listing = scan_source(lake.source_url)
    plan, materialized = plan_from_lineage(context.instance, listing)
    _log_plan(context.log, plan, listing)
    plan = register_new(context.log, context.instance, lake, plan)
    if plan.to_run and needs_scorer_first(context.instance, curation):
        context.log.info("pool refresh: the scorer comes first; shard runs follow its run")
        return [SCORER_FIRST]
    assets = refresh_assets(context.instance, curation)
    requests = run_requests(plan, listing, materialized, assets)
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
