"""Jobs: per shard, ingest (pool_shard + url_dedup) or the whole shard pipeline; and the scorer."""

import dagster as dg

from poolsieve.lake import METADATA_SHARD_ASSETS, SHARD_ASSETS  # also read by the refresh

# Run-queue tags (pipelines/dagster.yaml limits each to one run at a time, for runs the daemon
# launches: backfills and sensors from the UI; the CLI runs its own runs in order):
#: jobs that ingest and dedup a shard in one run: in pool order, so no shard is decided before
#: an earlier one is ingested (the split jobs below have no such tag and run side by side)
POOL_ORDER_TAGS = {"poolsieve/pool_order": "ingest"}
#: jobs that write the lake's DuckDB catalog (one writing process per file)
CATALOG_TAGS = {"poolsieve/catalog": "write"}

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets("pool_shard", "url_dedup"),
    description="Ingest and dedup one pool shard.",
    tags=POOL_ORDER_TAGS,
)

shard_job = dg.define_asset_job(
    "shard_job",
    selection=dg.AssetSelection.assets(*SHARD_ASSETS),
    description="The main job, per shard: ingest, dedup, features, download images, embed, "
    "decontaminate. "
    "Needs the scorer (scorer_job) materialized first.",
    tags=POOL_ORDER_TAGS,
)

metadata_shard_job = dg.define_asset_job(
    "metadata_shard_job",
    selection=dg.AssetSelection.assets(*METADATA_SHARD_ASSETS),
    description="The main job per shard in metadata mode (DataComp's filtering track): ingest, "
    "dedup, features, the .npz beside the parquet checked; nothing downloaded.",
    tags=POOL_ORDER_TAGS,
)

health_job = dg.define_asset_job(
    "health_job",
    selection=dg.AssetSelection.assets("pool_health"),
    description="Per shard: a sample of its downloaded URLs fetched again (link rot, hash "
    "drift); pool_health_schedule runs it for every downloaded shard.",
)

subset_health_job = dg.define_asset_job(
    "subset_health_job",
    selection=dg.AssetSelection.assets("subset_health"),
    description="Each strategy's share still downloadable, from the latest pool_health checks.",
)

scorer_job = dg.define_asset_job(
    "scorer_job",
    selection=dg.AssetSelection.assets("scorer"),
    description="Resolve or train the scorer CLIP (once; re-run when its settings change).",
)

STRATEGY_ASSETS = ["subset", "train_shards", "clip_model", "evaluation"]
#: per strategy after the downloads of metadata mode (the subsets are already there)
TRAINING_ASSETS = ["train_shards", "clip_model", "evaluation"]

centroids_job = dg.define_asset_job(
    "centroids_job",
    selection=dg.AssetSelection.assets("image_centroids"),
    description="Image k-means centroids on a seeded sample of the pool (after the shards).",
)

shard_clusters_job = dg.define_asset_job(
    "shard_clusters_job",
    selection=dg.AssetSelection.assets("shard_clusters"),
    description="Per shard: image embeddings assigned to image_centroids' centroids.",
)

features_job = dg.define_asset_job(
    "features_job",
    selection=dg.AssetSelection.assets(
        "near_duplicates", "takedown_lists", "removals", "pool_features"
    ),
    description="near_duplicates, the takedown lists observed and their removals, then "
    "pool_features over every shard (after the shards' main job and their image clusters).",
    tags=CATALOG_TAGS,
)

subset_job = dg.define_asset_job(
    "subset_job",
    selection=dg.AssetSelection.assets("filter_sql", "subset"),
    description="Per strategy (filter): observe the filter's SQL, then its subset (metadata "
    "mode stops here unless curation.download_selection downloads the subsets' images).",
)

selection_job = dg.define_asset_job(
    "selection_job",
    selection=dg.AssetSelection.assets("download_selection"),
    description="Metadata mode, after the subsets: the uids to download (curation."
    "download_selection: the chosen strategies' kept uids, or every kept row).",
)

selected_images_job = dg.define_asset_job(
    "selected_images_job",
    selection=dg.AssetSelection.assets("selected_images"),
    description="Metadata mode, per shard: download the kept rows download_selection chose.",
)

strategy_job = dg.define_asset_job(
    "strategy_job",
    selection=dg.AssetSelection.assets("filter_sql", *STRATEGY_ASSETS),
    description="Per strategy (filter): observe the filter's SQL, then subset, train shards, "
    "CLIP training, evaluation.",
)

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(*TRAINING_ASSETS),
    description="Per strategy, metadata mode after selected_images: train shards, CLIP "
    "training, evaluation (the subset as it is).",
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


def _after_ingest(assets: list[str]) -> list[str]:
    return [a for a in assets if a != "pool_shard"]


# On a Ray cluster (pipelines.execution) the shards' runs execute at the same time, but a shard's
# url_dedup must see every earlier shard's rows: so the shard jobs run in two phases, each a run
# per shard submitted at once (one backfill each), ingest for every shard first, then the rest.
# Neither phase takes a queue tag: a daemon runs a backfill of each side by side too.
pool_shard_job = dg.define_asset_job(
    "pool_shard_job",
    selection=dg.AssetSelection.assets("pool_shard"),
    description="Ingest one pool shard (the first phase of the shard jobs on Ray).",
)

url_dedup_job = dg.define_asset_job(
    "url_dedup_job",
    selection=dg.AssetSelection.assets("url_dedup"),
    description="Dedup one ingested shard (ingest_job's second phase on Ray).",
)

shard_steps_job = dg.define_asset_job(
    "shard_steps_job",
    selection=dg.AssetSelection.assets(*_after_ingest(SHARD_ASSETS)),
    description="shard_job after ingest: dedup, features, download, embed, decontaminate "
    "(its second phase on Ray).",
)

metadata_shard_steps_job = dg.define_asset_job(
    "metadata_shard_steps_job",
    selection=dg.AssetSelection.assets(*_after_ingest(METADATA_SHARD_ASSETS)),
    description="metadata_shard_job after ingest (its second phase on Ray).",
)

#: a shard job -> the jobs that make it up on Ray, in order (each run for every shard at once)
RAY_PHASES = {
    "shard_job": ["pool_shard_job", "shard_steps_job"],
    "metadata_shard_job": ["pool_shard_job", "metadata_shard_steps_job"],
    "ingest_job": ["pool_shard_job", "url_dedup_job"],
}
