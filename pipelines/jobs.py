"""Jobs: per shard, ingest (pool_shard + url_dedup) or the whole shard pipeline; and the scorer."""

import dagster as dg

from poolsieve.lake import SHARD_ASSETS  # the per-shard assets (also read by the refresh)

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets("pool_shard", "url_dedup"),
    description="Ingest and dedup one pool shard.",
    tags={"poolsieve/catalog": "write"},
)

shard_job = dg.define_asset_job(
    "shard_job",
    selection=dg.AssetSelection.assets(*SHARD_ASSETS),
    description="The main job, per shard: ingest, dedup, download images, embed, decontaminate. "
    "Needs the scorer (scorer_job) materialized first.",
    tags={"poolsieve/catalog": "write"},
)

scorer_job = dg.define_asset_job(
    "scorer_job",
    selection=dg.AssetSelection.assets("scorer"),
    description="Resolve or train the scorer CLIP (once; re-run when its settings change).",
)

STRATEGY_ASSETS = ["subset", "train_shards", "clip_model", "evaluation"]

features_job = dg.define_asset_job(
    "features_job",
    selection=dg.AssetSelection.assets("pool_features"),
    description="pool_features over every shard (after the shards' main job).",
    tags={"poolsieve/catalog": "write"},
)

strategy_job = dg.define_asset_job(
    "strategy_job",
    selection=dg.AssetSelection.assets("filter_sql", *STRATEGY_ASSETS),
    description="Per strategy (filter): observe the filter's SQL, then subset, train shards, "
    "CLIP training, evaluation.",
)

observe_filters_job = dg.define_asset_job(
    "observe_filters_job",
    selection=dg.AssetSelection.assets("filter_sql"),
    description="Observe every filter's SQL + parameters (after an edit: shows what is stale).",
)

leaderboard_job = dg.define_asset_job(
    "leaderboard_job",
    selection=dg.AssetSelection.assets("leaderboard"),
    description="The leaderboard over every evaluated strategy.",
)
