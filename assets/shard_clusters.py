"""shard_clusters: each of one shard's image embeddings assigned to its nearest centroid."""

import dagster as dg
from poolsieve.assets.clip_embeddings import clip_embeddings
from poolsieve.assets.image_centroids import image_centroids
from poolsieve.assets.metadata import (
    INPUT_ERRORS,
    ROWS_CONSERVED,
    conservation_check,
    failing_clearly,
)
from poolsieve.assets.metadata_embeddings import metadata_embeddings
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import CurationResource, LakeResource

from poolsieve.curate.clusters import assign_shard


@dg.asset(
    partitions_def=SHARDS,
    deps=[image_centroids, clip_embeddings, metadata_embeddings],
    code_version="shard-clusters-v1",
    group_name="curation",
    kinds={"faiss", "parquet"},
    check_specs=[dg.AssetCheckSpec(ROWS_CONSERVED, asset="shard_clusters", blocking=True)],
)
def shard_clusters(
    context: dg.AssetExecutionContext, lake: LakeResource, curation: CurationResource
):
    """uid, image_cluster, exemplar_cluster per embedded row of the shard (sorted by uid)."""
    shard = context.partition_key
    with failing_clearly(*INPUT_ERRORS):
        result = assign_shard(lake.store, shard, curation.cluster_embeddings)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            "exemplar_cluster_rows": result.exemplar_rows,
            "no_embedding": result.no_embedding,
            "embeddings": curation.cluster_embeddings,
            "path": dg.MetadataValue.path(str(result.path)),
        },
        check_results=[
            conservation_check(ROWS_CONSERVED, result.embeddings, {"written": result.rows})
        ],
    )
