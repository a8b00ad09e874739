"""image_hashes: each downloaded image's sha256 and perceptual hash (pHash), per shard."""

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
from poolsieve.pipelines.resources import LakeResource

from poolsieve.clip.embedding import downloaded_count
from poolsieve.images.hashes import hash_shard


@dg.asset(
    partitions_def=SHARDS,
    deps=[shard_images],
    code_version="phash-v1-copy1",
    group_name="images",
    kinds={"parquet"},
    check_specs=[dg.AssetCheckSpec(ROWS_CONSERVED, asset="image_hashes", blocking=True)],
)
def image_hashes(context: dg.AssetExecutionContext, lake: LakeResource):
    """sha256 of each downloaded image's bytes and its 64-bit pHash (NULL: undecodable)."""
    shard = context.partition_key
    report = throttled(context.log.info)
    with failing_clearly(*INPUT_ERRORS):
        result = hash_shard(
            lake.store, shard, progress=lambda done, total: report(done, total, f"{shard}: hashed")
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.samples,
            "undecodable": result.undecodable,
            "path": dg.MetadataValue.path(str(result.path)),
        },
        check_results=[
            conservation_check(
                ROWS_CONSERVED,
                downloaded_count(lake.store, shard),
                {"hashed": result.samples - result.undecodable, "undecodable": result.undecodable},
            )
        ],
    )
