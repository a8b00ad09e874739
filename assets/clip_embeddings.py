"""clip_embeddings: image and text embeddings of one shard with the scorer, and the CLIP score."""

import dagster as dg
import numpy as np
from poolsieve.assets.metadata import ROWS_CONSERVED, conservation_check, failing_clearly
from poolsieve.assets.scorer import scorer
from poolsieve.assets.shard_images import shard_images
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import EmbeddingResource, LakeResource

from poolsieve.clip.embedding import embed_shard
from poolsieve.clip.encode import progress_logger
from poolsieve.clip.scorer import load_scorer, read_scorer

NPZ_ALIGNED = "npz_aligned"


@dg.asset(
    partitions_def=SHARDS,
    deps=[shard_images, scorer],
    code_version="embed-v1",
    group_name="images",
    kinds={"pytorch", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(ROWS_CONSERVED, asset="clip_embeddings", blocking=True),
        dg.AssetCheckSpec(NPZ_ALIGNED, asset="clip_embeddings", blocking=True),
    ],
)
def clip_embeddings(
    context: dg.AssetExecutionContext, lake: LakeResource, embedding: EmbeddingResource
):
    """Parquet (uid, float16 vectors, score) + DataComp .npz aligned with the shard's metadata."""
    shard = context.partition_key
    with failing_clearly(FileNotFoundError):
        info = read_scorer(lake.store)
        clip = load_scorer(info, embedding.device)
        out = embed_shard(
            lake.store,
            shard,
            clip,
            embedding.batch_size,
            embedding.workers,
            progress_logger(lambda m: context.log.info(f"{shard}: {m}")),
        )
    result = out.result
    quantile = _quantiles(result.scores)
    context.log.info(f"{shard}: embedded {len(result)} on {clip.device} in {result.seconds:.1f} s")
    return dg.MaterializeResult(
        metadata={
            "embedded": len(result),
            "skipped": len(result.skipped),
            "device": str(clip.device),
            "images_per_s": dg.MetadataValue.float(
                round(len(result) / max(result.seconds, 1e-9), 1)
            ),
            **quantile,
            "scorer_arch": info.arch,
            "scorer_sha256": info.weights_sha256,
            "npz_prefix": out.prefix,
            "parquet_path": dg.MetadataValue.path(str(out.parquet)),
            "npz_path": dg.MetadataValue.path(str(out.npz)),
        },
        check_results=[
            conservation_check(
                ROWS_CONSERVED,
                out.downloaded,
                {"embedded": len(result), "skipped": len(result.skipped)},
            ),
            dg.AssetCheckResult(
                check_name=NPZ_ALIGNED,
                passed=not out.alignment_problems,
                metadata={"problems": out.alignment_problems[:20]},
            ),
        ],
    )


def _quantiles(scores: np.ndarray) -> dict:
    if not len(scores):
        return {}
    qs = np.quantile(scores, [0.1, 0.5, 0.9])
    return {
        f"clip_score_p{p}": dg.MetadataValue.float(float(q))
        for p, q in zip((10, 50, 90), qs, strict=True)
    }
