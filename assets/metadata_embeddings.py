"""metadata_embeddings: DataComp's .npz beside one shard's parquet, validated where it is."""

import dagster as dg
from poolsieve.assets.metadata import failing_clearly, problem_check
from poolsieve.assets.pool_shard import pool_shard
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import CurationResource, LakeResource

from poolsieve.curate.metadata import (
    ASSET,
    INFO_FILE,
    npz_location,
    recorded_problem,
    required_keys,
    validate_npz,
    write_info,
)
from poolsieve.lake import remove

NPZ_RECORDED = "npz_recorded"


def _needed(curation: CurationResource) -> bool:
    """Metadata mode, or clusters of an .npz key, cannot go without the shard's .npz."""
    return curation.mode == "metadata" or curation.cluster_embeddings != "scorer"


@dg.asset(
    partitions_def=SHARDS,
    deps=[pool_shard],
    code_version="npz-v1",
    group_name="images",
    kinds={"numpy"},
    check_specs=[dg.AssetCheckSpec(NPZ_RECORDED, asset="metadata_embeddings", blocking=True)],
)
def metadata_embeddings(
    context: dg.AssetExecutionContext, lake: LakeResource, curation: CurationResource
):
    """Keys, row count and row alignment (dot(img, txt) = the parquet's score) of the shard's
    DataComp .npz; records its path and sha256 (npz.json), never copies the arrays."""
    shard = context.partition_key
    fs, _, path = npz_location(lake.source_url, shard)
    if not _needed(curation) and not fs.exists(path):
        remove(lake.store.partition_dir(ASSET, shard) / INFO_FILE)
        context.log.info(f"{shard}: no .npz at {path}; download mode does not need one")
        return dg.MaterializeResult(
            metadata={"npz": "none", "expected_path": path},
            check_results=[problem_check(NPZ_RECORDED, "", note="no .npz: download mode")],
        )
    with failing_clearly(FileNotFoundError, ValueError):  # NpzError is a ValueError
        info = validate_npz(
            lake.store, lake.source_url, shard, required_keys(curation.cluster_embeddings)
        )
    written = write_info(lake.store, shard, info)
    context.log.info(f"{shard}: {info.path}: {info.rows} rows, {info.dims}, aligned")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(info.sha256[:16]),
        metadata={
            "npz_path": dg.MetadataValue.path(info.path),
            "npz_sha256": info.sha256,
            "rows": info.rows,
            "keys": info.keys,
            "dims": info.dims,
            "pairs_checked": info.pairs_checked,
            "max_score_difference": dg.MetadataValue.float(info.max_score_difference),
            "info_path": dg.MetadataValue.path(written),
        },
        check_results=[problem_check(NPZ_RECORDED, recorded_problem(lake.store, shard))],
    )
