"""selected_images: metadata mode's download, per shard: the kept rows download_selection chose."""

import dagster as dg
from poolsieve.assets.download_selection import download_selection
from poolsieve.assets.metadata import ROWS_CONSERVED, failing_clearly
from poolsieve.assets.shard_images import PROJECT, SUCCESS_RATE, download_asset
from poolsieve.assets.url_dedup import url_dedup
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import CurationResource, DownloaderResource, LakeResource

from poolsieve.images.download import DOWNLOAD_MODELS
from poolsieve.images.selection import selected_uids


@dg.asset(
    partitions_def=SHARDS,
    deps=[url_dedup, download_selection],
    code_version=PROJECT.code_version(DOWNLOAD_MODELS) + "-i2d1-optout1-takedown1",
    group_name="images",
    kinds={"img2dataset", "webdataset"},
    check_specs=[
        dg.AssetCheckSpec(ROWS_CONSERVED, asset="selected_images", blocking=True),
        dg.AssetCheckSpec(SUCCESS_RATE, asset="selected_images"),
    ],
)
def selected_images(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    downloader: DownloaderResource,
    curation: CurationResource,
):
    """img2dataset over the shard's url_dedup-kept rows that download_selection lists: one
    status row per selected uid (failures recorded, never fatal); none selected: zero rows."""
    with failing_clearly(FileNotFoundError):
        uids = selected_uids(lake.store, context.partition_key)
    return download_asset(context, lake, downloader, curation, "selected_images", uids)
