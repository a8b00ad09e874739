"""The Dagster code location: assets, checks, jobs, sensors, schedules and resources."""

import dagster as dg
from poolsieve.assets.clip_embeddings import clip_embeddings
from poolsieve.assets.clip_model import clip_model
from poolsieve.assets.download_selection import download_selection
from poolsieve.assets.eval_decontamination import eval_decontamination
from poolsieve.assets.evaluation import evaluation
from poolsieve.assets.filter_sql import filter_sql
from poolsieve.assets.image_centroids import image_centroids
from poolsieve.assets.image_hashes import image_hashes
from poolsieve.assets.leaderboard import leaderboard
from poolsieve.assets.metadata_embeddings import metadata_embeddings
from poolsieve.assets.near_duplicates import near_duplicates
from poolsieve.assets.pool_features import pool_features
from poolsieve.assets.pool_health import pool_health, subset_health
from poolsieve.assets.pool_shard import pool_shard
from poolsieve.assets.removals import removals
from poolsieve.assets.scorer import scorer
from poolsieve.assets.selected_images import selected_images
from poolsieve.assets.shard_clusters import shard_clusters
from poolsieve.assets.shard_features import shard_features
from poolsieve.assets.shard_images import shard_images
from poolsieve.assets.subset import subset
from poolsieve.assets.takedown_lists import takedown_lists
from poolsieve.assets.train_shards import train_shards
from poolsieve.assets.url_dedup import url_dedup
from poolsieve.pipelines.execution import Execution
from poolsieve.pipelines.health import pool_health_schedule, subset_health_sensor
from poolsieve.pipelines.jobs import (
    centroids_job,
    features_job,
    health_job,
    ingest_job,
    leaderboard_job,
    metadata_shard_job,
    metadata_shard_steps_job,
    observe_filters_job,
    pool_shard_job,
    scorer_job,
    selected_images_job,
    selection_job,
    shard_clusters_job,
    shard_job,
    shard_steps_job,
    strategy_job,
    subset_health_job,
    subset_job,
    training_job,
    url_dedup_job,
)
from poolsieve.pipelines.refresh import (
    dedup_recheck_sensor,
    pool_refresh_schedule,
    pool_source_sensor,
)
from poolsieve.pipelines.resources import Resources, resources_from_env

JOBS = [
    ingest_job,
    shard_job,
    metadata_shard_job,
    scorer_job,
    centroids_job,
    shard_clusters_job,
    features_job,
    strategy_job,
    subset_job,
    selection_job,
    selected_images_job,
    training_job,
    leaderboard_job,
    observe_filters_job,
    pool_shard_job,
    url_dedup_job,
    shard_steps_job,
    metadata_shard_steps_job,
    health_job,
    subset_health_job,
]


def build_defs(resources: Resources, execution: Execution | None = None) -> dg.Definitions:
    """The whole code location bound to one set of resources (the CLI and tests pass their own)
    and to where its runs execute (default: the POOLSIEVE_RAY_* variables; in process when no
    address is set)."""
    execution = Execution.from_env() if execution is None else execution
    return dg.Definitions(
        assets=[
            pool_shard,
            url_dedup,
            shard_features,
            shard_images,
            scorer,
            clip_embeddings,
            eval_decontamination,
            image_hashes,
            pool_health,
            subset_health,
            metadata_embeddings,
            image_centroids,
            shard_clusters,
            near_duplicates,
            takedown_lists,
            removals,
            pool_features,
            filter_sql,
            subset,
            download_selection,
            selected_images,
            train_shards,
            clip_model,
            evaluation,
            leaderboard,
        ],
        jobs=[execution.bind(job) for job in JOBS],
        sensors=[pool_source_sensor, dedup_recheck_sensor, subset_health_sensor],
        schedules=[pool_refresh_schedule, pool_health_schedule],
        resources=resources.as_dict(),
    )


# configured by the POOLSIEVE_* variables (docs/configuration.md); the launchpad overrides per run
defs = build_defs(resources_from_env(env_vars=True))
