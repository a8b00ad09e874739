"""shard_images: the kept rows of one shard downloaded with img2dataset (webdataset tars)."""

import dagster as dg
from poolsieve.assets.metadata import (
    ROWS_CONSERVED,
    conservation_check,
    failing_clearly,
    reason_counts,
    throttled,
)
from poolsieve.assets.url_dedup import url_dedup
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import CurationResource, DownloaderResource, LakeResource

from poolsieve.curate.takedown import ListError, download_blocks
from poolsieve.images.download import DOWNLOAD_MODELS, download_kept
from poolsieve.images.errors import GUARD_CATEGORIES
from poolsieve.images.optout import SIGNALS
from poolsieve.sqlrunner import SqlProject

PROJECT = SqlProject()
SUCCESS_RATE = "download_success_rate"
#: always reported (zeros included) so the UI can plot them; any other category is added
COMMON_ERRORS = [
    "http_404",
    "http_500",
    "timeout",
    "decode_error",
    "connection_error",
    *GUARD_CATEGORIES,
]


@dg.asset(
    partitions_def=SHARDS,
    deps=[url_dedup],
    code_version=PROJECT.code_version(DOWNLOAD_MODELS) + "-i2d1-optout1-takedown1",
    group_name="images",
    kinds={"img2dataset", "webdataset"},
    check_specs=[
        dg.AssetCheckSpec(ROWS_CONSERVED, asset="shard_images", blocking=True),
        dg.AssetCheckSpec(SUCCESS_RATE, asset="shard_images"),
    ],
)
def shard_images(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    downloader: DownloaderResource,
    curation: CurationResource,
):
    """img2dataset over the rows url_dedup kept (DataComp's settings): one status row per uid.
    Rows the takedown lists name are refused before any request (``removed``)."""
    return download_asset(context, lake, downloader, curation, "shard_images")


def download_asset(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    downloader: DownloaderResource,
    curation: CurationResource,
    asset: str,
    uids: set[str] | None = None,
) -> dg.MaterializeResult:
    """Download one shard's kept rows (``uids``: only those) into ``asset``'s folder; its
    metadata and checks (rows conserved, success rate). Shared by shard_images and
    selected_images, which declare the same two checks."""
    shard = context.partition_key
    report = throttled(context.log.info)
    with failing_clearly(FileNotFoundError, ListError):
        blocks = download_blocks(
            lake.store, shard, curation.takedown_lists, curation.takedown_phash_distance
        )
        result, rows = download_kept(
            lake.store,
            shard,
            downloader.settings,
            progress=lambda done, total: report(done, total, f"{shard}: downloaded"),
            project=PROJECT,
            log=context.log.debug,  # img2dataset's own progress lines: the run log, not the console
            uids=uids,
            asset=asset,
            blocks=blocks,
        )
    context.log.info(
        f"{shard}: {result.success}/{result.total} images in {result.seconds:.1f} s; "
        f"errors {result.errors}"
    )
    return dg.MaterializeResult(
        metadata=download_metadata(result, rows.num_rows, downloader.verify_sha256),
        check_results=[
            conservation_check(
                ROWS_CONSERVED, rows.num_rows, {"success": result.success, "failed": result.failed}
            ),
            _success_rate_check(result, downloader.min_success_rate),
        ],
    )


def download_metadata(result, rows_in: int, verify_sha256: bool) -> dict:
    """A download's materialization metadata (counts, error categories, speed, paths)."""
    return {
        "rows_in": rows_in,
        "success": result.success,
        "failed": result.failed,
        "success_rate": dg.MetadataValue.float(result.success / max(result.total, 1)),
        **reason_counts("errors", result.errors, sorted({*COMMON_ERRORS, *result.errors})),
        **reason_counts("opted_out", result.optouts, list(SIGNALS)),
        "seconds": dg.MetadataValue.float(round(result.seconds, 2)),
        "images_per_s": dg.MetadataValue.float(round(result.total / max(result.seconds, 1e-9), 1)),
        "tars": [str(p.name) for p in result.tars],
        "verify_sha256": verify_sha256,
        "images_path": dg.MetadataValue.path(str(result.out_dir)),
        "status_path": dg.MetadataValue.path(str(result.status_path)),
    }


def _success_rate_check(result, floor: float) -> dg.AssetCheckResult:
    """A warning (not blocking: the failures are recorded per uid) when too few images arrived."""
    rate = result.success / max(result.total, 1) if result.total else 1.0
    return dg.AssetCheckResult(
        check_name=SUCCESS_RATE,
        passed=rate >= floor,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"success_rate": rate, "floor": floor},
        description=f"{rate:.1%} of kept rows downloaded (warning below {floor:.0%})",
    )
