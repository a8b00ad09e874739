"""image_centroids: faiss k-means centroids of a seeded sample of the pool's image embeddings."""

import resource

import dagster as dg
from poolsieve.assets.clip_embeddings import clip_embeddings
from poolsieve.assets.metadata import INPUT_ERRORS, failing_clearly, problem_check
from poolsieve.assets.metadata_embeddings import metadata_embeddings
from poolsieve.assets.scorer import scorer
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import (
    CurationResource,
    EmbeddingResource,
    LakeResource,
    ScorerResource,
    TrainingResource,
)

from poolsieve.clip.scorer import load_scorer, read_scorer
from poolsieve.curate.clusters import (
    CentroidSettings,
    build_centroids,
    centroid_problem,
    embed_tars,
)

CENTROIDS_VALID = "centroids_valid"


@dg.asset(
    deps=[clip_embeddings, metadata_embeddings, scorer],
    code_version="centroids-v1",
    group_name="curation",
    kinds={"faiss", "numpy"},
    check_specs=[dg.AssetCheckSpec(CENTROIDS_VALID, asset="image_centroids", blocking=True)],
)
def image_centroids(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    embedding: EmbeddingResource,
    scorer: ScorerResource,
    curation: CurationResource,
    training: TrainingResource,
):
    """k-means centroids (a bounded sample, read shard by shard) and the exemplars' clusters."""
    registered = context.instance.get_dynamic_partitions(SHARDS.name)
    shards = [s for s in registered if lake.store.has_partition("pool_shard", s)]
    settings = CentroidSettings(
        curation.image_clusters,
        curation.centroid_sample,
        training.seed,
        curation.cluster_embeddings,
    )

    def embed(tars):
        return embed_tars(tars, load_scorer(read_scorer(lake.store), embedding.device))

    with failing_clearly(*INPUT_ERRORS):
        result = build_centroids(
            lake.store, shards, settings, curation.exemplar_dir or scorer.trusted_dir, embed
        )
    if not result.exemplar_rows:
        context.log.warning("image_centroids: no exemplars configured: no exemplar cluster")
    context.log.info(
        f"image_centroids: k {result.k} on {result.sample_rows} of {result.pool_rows} rows; "
        f"exemplars in {result.clusters_hit} clusters"
    )
    return dg.MaterializeResult(
        metadata={
            "k": result.k,
            "sample_rows": result.sample_rows,
            "pool_rows": result.pool_rows,
            "shards": len(shards),
            "dims": result.dims,
            "embeddings": settings.source,
            "seed": settings.seed,
            "exemplar_rows": result.exemplar_rows,
            "exemplar_clusters": result.clusters_hit,
            "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "path": dg.MetadataValue.path(str(result.centroids)),
        },
        check_results=[problem_check(CENTROIDS_VALID, centroid_problem(result))],
    )
