"""train_shards: a subset's downloaded samples resharded into webdataset tars for training."""

import dagster as dg
from poolsieve.assets.metadata import ROWS_CONSERVED, conservation_check, problem_check
from poolsieve.assets.subset import subset
from poolsieve.pipelines.partitions import SHARDS, STRATEGIES
from poolsieve.pipelines.resources import CurationResource, LakeResource, TrainingResource

from poolsieve.curate.reshard import reshard
from poolsieve.curate.strategies import pairs_to_uids, read_subset_npy
from poolsieve.images.selection import missing_reasons

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
def train_shards(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    training: TrainingResource,
    curation: CurationResource,
):
    """DataComp resharder semantics: every listed uid's sample, k times if listed k times. In
    metadata mode the samples come from selected_images, and a subset uid whose download failed
    is a warning (its reason counted), not a blocking failure."""
    name, store = context.partition_key, lake.store
    npy = store.partition_dir("subset", name) / "subset.npy"
    if not npy.is_file():
        raise dg.Failure(f"no subset for {name!r} ({npy}): materialize subset first")
    uids = pairs_to_uids(read_subset_npy(npy))
    metadata = curation.mode == "metadata"
    images = "selected_images" if metadata else "shard_images"
    shards = context.instance.get_dynamic_partitions(SHARDS.name)
    tars = [t for s in shards for t in sorted(store.partition_dir(images, s).glob("*.tar"))]
    result = reshard(tars, uids, store.partition_dir("train_shards", name), training.shard_size)
    reasons = missing_reasons(store, shards, set(result.missing)) if metadata else {}
    if result.missing:
        context.log.warning(
            f"{name}: {len(result.missing)} subset uids have no downloaded image {reasons or ''}"
        )
    return dg.MaterializeResult(
        metadata={
            "subset_uids": len(uids),
            "samples": result.samples,
            "missing_images": len(result.missing),
            **{f"missing/{r}": dg.MetadataValue.int(n) for r, n in reasons.items()},
            "images_from": images,
            "tars": [t.name for t in result.tars],
            "path": dg.MetadataValue.path(str(result.out_dir)),
        },
        check_results=[
            conservation_check(
                ROWS_CONSERVED,
                len(uids),
                {"written": result.samples, "missing_image": len(result.missing)},
            ),
            _every_image_check(result.missing, reasons, warn_only=metadata),
        ],
    )


def _every_image_check(missing, reasons: dict[str, int], warn_only: bool) -> dg.AssetCheckResult:
    """Every subset uid has an image: blocking in download mode (a subset holds downloaded rows
    only); a warning in metadata mode, where failed downloads are recorded per uid (the status
    files of selected_images list them) and counted here by reason."""
    problem = f"{len(missing)} subset uids have no image" if missing else ""
    if problem and reasons:
        problem += " (" + ", ".join(f"{r} {n}" for r, n in reasons.items()) + ")"
    check = problem_check(EVERY_IMAGE, problem, missing=sorted(missing)[:20], **reasons)
    if warn_only:
        return dg.AssetCheckResult(
            check_name=check.check_name,
            passed=check.passed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=check.metadata,
            description=check.description,
        )
    return check
