"""Per-shard image download (img2dataset) behind a fetch guard; plain functions, no Dagster.

- :mod:`.settings`  — ``DownloadSettings`` (DataComp's defaults + safety limits) and the
  img2dataset arguments they become;
- :mod:`.address`   — pure checks: which URLs and addresses may be fetched;
- :mod:`.guard`     — the urllib opener that enforces them inside img2dataset's workers;
- :mod:`.errors`    — img2dataset's error messages folded into categories;
- :mod:`.status`    — ``download_status.parquet``, one row per input uid;
- :mod:`.shard`     — ``download_shard``: run it all for one shard and swap the result in.
"""

from poolsieve.download.address import check_address, check_url
from poolsieve.download.errors import categorize
from poolsieve.download.settings import DownloadSettings
from poolsieve.download.shard import DownloadResult, download_shard
from poolsieve.download.status import STATUS_FILE

__all__ = [
    "STATUS_FILE",
    "DownloadResult",
    "DownloadSettings",
    "categorize",
    "check_address",
    "check_url",
    "download_shard",
]
