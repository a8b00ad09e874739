"""shard_features: every per-row feature of one shard (caption counts, languages, scores, sizes)."""

import dagster as dg
from poolsieve.assets.metadata import (
    INPUT_ERRORS,
    ROWS_CONSERVED,
    conservation_check,
    failing_clearly,
    throttled,
)
from poolsieve.assets.pool_shard import pool_shard
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import CurationResource, LakeResource

from poolsieve.curate.shard_features import CODE_VERSION, build_shard_features


@dg.asset(
    partitions_def=SHARDS,
    deps=[pool_shard],
    code_version=CODE_VERSION,
    group_name="curation",
    kinds={"python", "parquet"},
    check_specs=[dg.AssetCheckSpec(ROWS_CONSERVED, asset="shard_features", blocking=True)],
)
def shard_features(
    context: dg.AssetExecutionContext, lake: LakeResource, curation: CurationResource
):
    """One row per pool_shard row: caption words and characters (DataComp's rule), language,
    precomputed CLIP scores and metadata sizes; computed in batches, this shard only."""
    shard = context.partition_key
    with failing_clearly(*INPUT_ERRORS):
        settings = curation.feature_settings()
        result = build_shard_features(lake.store, shard, settings, throttled(context.log.info))
    context.log.info(f"{shard}: {result.rows} rows of features at {result.rows_per_s:.0f} rows/s")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            "rows_per_s": dg.MetadataValue.float(round(result.rows_per_s, 1)),
            "languages": {k: v for k, v in result.languages.most_common(10)},
            "language_detector": settings.language_detector,
            "laion_language_detector": settings.laion_language_detector,
            "batch_rows": settings.batch_rows,
            "language_workers": settings.language_workers,
            "path": dg.MetadataValue.path(str(result.path)),
        },
        check_results=[
            conservation_check(ROWS_CONSERVED, result.source_rows, {"features": result.rows})
        ],
    )
