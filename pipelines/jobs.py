"""Jobs: the ingest job (pool_shard + url_dedup for one shard partition)."""

import dagster as dg

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets("pool_shard", "url_dedup"),
    description="Ingest and dedup one pool shard (the main job; later stages extend it).",
    tags={"poolsieve/catalog": "write"},
)
