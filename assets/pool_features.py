"""pool_features: one DuckDB relation over all shards with every feature a filter may use."""

import dagster as dg
from poolsieve.assets.clip_embeddings import clip_embeddings
from poolsieve.assets.eval_decontamination import eval_decontamination
from poolsieve.assets.metadata import (
    INPUT_ERRORS,
    YAML_TESTS,
    failing_clearly,
    reason_counts,
    yaml_check,
)
from poolsieve.assets.near_duplicates import near_duplicates
from poolsieve.assets.removals import removals
from poolsieve.assets.scorer import scorer
from poolsieve.assets.shard_features import shard_features
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import CurationResource, LakeResource

from poolsieve.curate.features import FEATURE_MODELS, build_pool_features
from poolsieve.sqlrunner import SqlProject

PROJECT = SqlProject()
INELIGIBLE = [
    "removed",
    "duplicate_url",
    "opted_out",
    "download_failed",
    "not_embedded",
    "eval_near_duplicate",
]


@dg.asset(
    check_specs=[dg.AssetCheckSpec(YAML_TESTS, asset="pool_features", blocking=True)],
    # shard_clusters by key: its asset lives in assets/shard_clusters.py
    deps=[
        shard_features,
        "shard_clusters",
        clip_embeddings,
        eval_decontamination,
        scorer,
        near_duplicates,
        removals,
    ],
    code_version=PROJECT.code_version(FEATURE_MODELS),
    group_name="curation",
    kinds={"duckdb", "parquet"},
)
def pool_features(
    context: dg.AssetExecutionContext, lake: LakeResource, curation: CurationResource
):
    """The shards' features, dedup decisions, download status, CLIP scores, decontamination and
    image clusters, one row per uid: one part per shard, rewritten only when its inputs changed."""
    registered = context.instance.get_dynamic_partitions(SHARDS.name)
    # the shards ingested into this lake (an instance may have served other lakes)
    shards = [s for s in registered if lake.store.has_partition("pool_shard", s)]
    with failing_clearly(*INPUT_ERRORS):
        settings = curation.feature_settings()
        with lake.connect() as conn:
            result = build_pool_features(conn, lake.store, shards, settings, PROJECT)
    context.log.info(
        f"pool_features: {result.rows} uids, {result.eligible} eligible; "
        f"{len(result.rebuilt)} shard parts rewritten, {len(result.reused)} unchanged"
    )
    if len(result.detectors) > 1:
        context.log.warning(
            f"pool_features: shards' languages come from different detectors {result.detectors}: "
            "re-materialize shard_features of the older shards"
        )
    if result.unclustered_shards:
        context.log.info(f"pool_features: no shard_clusters yet for {result.unclustered_shards}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            "eligible": result.eligible,
            **reason_counts("ineligible", result.ineligible, INELIGIBLE),
            "mode": settings.mode,
            "languages": result.languages,
            "language_detector": ", ".join(sorted({d for d, _ in result.detectors})),
            "laion_language_detector": ", ".join(sorted({d for _, d in result.detectors})),
            "image_clusters": result.k,
            "clusters_with_exemplars": result.exemplar_clusters,
            "shards": len(shards),
            "shards_rewritten": len(result.rebuilt),
            "shards_without_clusters": result.unclustered_shards,
            "path": dg.MetadataValue.path(str(result.path)),
            "catalog_table": "pool_features",
        },
        check_results=[yaml_check(YAML_TESTS, result.failures)],
    )
