"""train_shards: a subset's downloaded samples resharded into webdataset tars for training."""

import dagster as dg
from poolsieve.assets.metadata import ROWS_CONSERVED, conservation_check, problem_check
from poolsieve.assets.subset import subset
from poolsieve.pipelines.partitions import SHARDS, STRATEGIES
from poolsieve.pipelines.resources import LakeResource, TrainingResource

from poolsieve.curate.reshard import reshard
from poolsieve.curate.strategies import pairs_to_uids, read_subset_npy

EVERY_IMAGE = "every_subset_uid_has_an_image"


@dg.asset(
    partitions_def=STRATEGIES,
    deps=[subset],
    code_version="reshard-v1",
    group_name="curation",
    kinds={"webdataset"},
    check_specs=[
        dg.AssetCheckSpec(ROWS_CONSERVED, asset="train_shards", blocking=True),
        dg.AssetCheckSpec(EVERY_IMAGE, asset="train_shards", blocking=True),
    ],
)
def train_shards(context: dg.AssetExecutionContext, lake: LakeResource, training: TrainingResource):
    """DataComp resharder semantics: every listed uid's sample, k times if listed k times."""
    name, store = context.partition_key, lake.store
    npy = store.partition_dir("subset", name) / "subset.npy"
    if not npy.is_file():
        raise dg.Failure(f"no subset for {name!r} ({npy}): materialize subset first")
    uids = pairs_to_uids(read_subset_npy(npy))
    shards = context.instance.get_dynamic_partitions(SHARDS.name)
    tars = [t for s in shards for t in sorted(store.partition_dir("shard_images", s).glob("*.tar"))]
    result = reshard(tars, uids, store.partition_dir("train_shards", name), training.shard_size)
    if result.missing:
        context.log.warning(f"{name}: {len(result.missing)} subset uids have no downloaded image")
    return dg.MaterializeResult(
        metadata={
            "subset_uids": len(uids),
            "samples": result.samples,
            "missing_images": len(result.missing),
            "tars": [t.name for t in result.tars],
            "path": dg.MetadataValue.path(str(result.out_dir)),
        },
        check_results=[
            conservation_check(
                ROWS_CONSERVED,
                len(uids),
                {"written": result.samples, "missing_image": len(result.missing)},
            ),
            problem_check(
                EVERY_IMAGE,
                f"{len(result.missing)} subset uids have no image" if result.missing else "",
                missing=sorted(result.missing)[:20],
            ),
        ],
    )
