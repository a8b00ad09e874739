"""eval_decontamination: how close each downloaded pool image is to an evaluation image."""

import dagster as dg
from poolsieve.assets.metadata import (
    INPUT_ERRORS,
    ROWS_CONSERVED,
    conservation_check,
    failing_clearly,
    throttled,
)
from poolsieve.assets.shard_images import shard_images
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import EvalSetsResource, LakeResource

from poolsieve.clip.embedding import downloaded_count
from poolsieve.images.decontamination import decontaminate_shard, eval_features


@dg.asset(
    partitions_def=SHARDS,
    deps=[shard_images],
    code_version="pixel-v1",
    group_name="images",
    kinds={"pytorch", "parquet"},
    check_specs=[dg.AssetCheckSpec(ROWS_CONSERVED, asset="eval_decontamination", blocking=True)],
)
def eval_decontamination(
    context: dg.AssetExecutionContext, lake: LakeResource, eval_sets: EvalSetsResource
):
    """Max cosine similarity of each pool image to any eval image, flagged at the threshold."""
    shard = context.partition_key
    report = throttled(context.log.info)
    with failing_clearly(*INPUT_ERRORS):
        evals = eval_features(eval_sets.eval_path, lake.store.path("eval_features"))
        result = decontaminate_shard(
            lake.store,
            shard,
            evals,
            eval_sets.decontam_threshold,
            progress=lambda done, total: report(done, total, f"{shard}: compared"),
        )
    context.log.info(
        f"{shard}: {result.flagged}/{result.samples} images flagged as near-duplicates of "
        f"{result.eval_images} eval images (threshold {result.threshold})"
    )
    downloaded = downloaded_count(lake.store, shard)
    return dg.MaterializeResult(
        metadata={
            "samples": result.samples,
            "flagged": result.flagged,
            "flag_rate": dg.MetadataValue.float(result.flagged / max(result.samples, 1)),
            "undecodable": result.undecodable,
            "threshold": dg.MetadataValue.float(result.threshold),
            "eval_images": result.eval_images,
            "feature": "pixel",
            "result_path": dg.MetadataValue.path(str(result.path)),
        },
        check_results=[
            conservation_check(
                ROWS_CONSERVED,
                downloaded,
                {
                    "compared": result.samples - result.undecodable,
                    "undecodable": result.undecodable,
                },
            )
        ],
    )
