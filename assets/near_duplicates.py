"""near_duplicates: near-duplicate images across the pool (pHash and SemDeDup), each dropped
image naming the one it duplicates; the pool features filters may use."""

import dagster as dg
from poolsieve.assets.image_hashes import image_hashes
from poolsieve.assets.metadata import INPUT_ERRORS, YAML_TESTS, failing_clearly, yaml_check
from poolsieve.pipelines.resources import CurationResource, LakeResource

from poolsieve.curate.near_duplicates import find_near_duplicates
from poolsieve.pool.registry import registered_shards
from poolsieve.sqlrunner import SqlProject

PROJECT = SqlProject()
MODELS = ["image_rows", "phash_duplicates"]


@dg.asset(
    # shard_clusters by key: its asset lives in assets/shard_clusters.py
    deps=[image_hashes, "shard_clusters"],
    code_version=PROJECT.code_version(MODELS) + "-semdedup-v2",
    group_name="curation",
    kinds={"duckdb", "faiss", "parquet"},
    check_specs=[dg.AssetCheckSpec(YAML_TESTS, asset="near_duplicates", blocking=True)],
)
def near_duplicates(
    context: dg.AssetExecutionContext, lake: LakeResource, curation: CurationResource
):
    """Per shard, its images dropped as near-duplicates of an earlier image (pool order), by
    pHash distance and by embedding similarity within an image cluster."""
    with failing_clearly(*INPUT_ERRORS):
        settings = curation.near_dup_settings()
        with lake.connect_memory() as conn:
            result = find_near_duplicates(conn, lake.store, registered_shards(lake.store), settings)
    context.log.info(
        f"near_duplicates: {result.dropped} dropped of {result.images} hashed and "
        f"{result.embedded} clustered images; {len(result.written)} shard files rewritten"
    )
    for what, shards in (
        ("image_hashes", result.without_hashes),
        ("shard_clusters", result.without_clusters),
    ):
        if shards:
            context.log.warning(f"near_duplicates: no {what} yet for {shards}: not compared")
    return dg.MaterializeResult(
        metadata={
            "phash_dropped": result.dropped["phash"],
            "semantic_dropped": result.dropped["semantic"],
            "phash_rate": dg.MetadataValue.float(result.dropped["phash"] / max(result.images, 1)),
            "semantic_rate": dg.MetadataValue.float(
                result.dropped["semantic"] / max(result.embedded, 1)
            ),
            "phash_max_distance": settings.phash_max_distance,
            "semantic_threshold": dg.MetadataValue.float(settings.semantic_threshold),
            "semantic_features": settings.semantic_features,
            "semantic_probes": settings.semantic_probes,
            "images_hashed": result.images,
            "images_clustered": result.embedded,
            "clusters": result.clusters,
            "largest_cluster": result.largest_cluster,
            "shards_rewritten": len(result.written),
            "shards_without_hashes": result.without_hashes,
            "shards_without_clusters": result.without_clusters,
        },
        check_results=[yaml_check(YAML_TESTS, result.failures)],
    )
