"""shard_images' logic: download the rows URL dedup kept, into the lake, with img2dataset.

Layout: ``<lake>/shard_images/<shard>/`` holds img2dataset's ``NNNNNNNN.tar`` / ``.parquet`` /
``_stats.json`` and ``download_status.parquet`` (one row per kept uid). The whole folder is
swapped in atomically (poolsieve.download.shard), so re-materializing a shard replaces exactly it.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from poolsieve.download import DownloadResult, DownloadSettings, download_shard
from poolsieve.download.img2dataset_run import Progress
from poolsieve.duck import DuckSettings, connect
from poolsieve.lake import Lake
from poolsieve.sqlrunner import SqlProject

DOWNLOAD_MODELS = ["shard_download_rows"]
#: download_status error categories -> the demo truth's download outcomes
OUTCOME_OF_CATEGORY = {
    "blocked_private_address": "blocked",
    "blocked_redirect": "blocked",
    "blocked_scheme": "blocked",
}


def upstream_file(lake: Lake, asset: str, shard: str, name: str) -> Path:
    """A file an earlier asset wrote for ``shard``; a clear error when it is not there yet."""
    path = lake.partition_dir(asset, shard) / name
    if not path.exists():
        raise FileNotFoundError(
            f"shard {shard!r} has no {asset} output ({path}): materialize {asset} for it first"
        )
    return path


def kept_rows(conn: duckdb.DuckDBPyConnection, lake: Lake, shard: str, project: SqlProject):
    """The kept rows of ``shard`` (uid, url, text, face_bboxes, sha256, row_idx) as Arrow."""
    for name, asset, file in [
        ("shard_rows", "pool_shard", "rows.parquet"),
        ("shard_decisions", "url_dedup", "decisions.parquet"),
    ]:
        conn.read_parquet(str(upstream_file(lake, asset, shard, file))).create_view(name)
    project.run(
        conn, DOWNLOAD_MODELS, {"shard_rows": "shard_rows", "shard_decisions": "shard_decisions"}
    )
    return conn.table("shard_download_rows").to_arrow_table()


def download_kept(
    lake: Lake,
    shard: str,
    settings: DownloadSettings,
    progress: Progress | None = None,
    project: SqlProject | None = None,
) -> tuple[DownloadResult, pa.Table]:
    """Download the kept rows of ``shard`` into its lake folder; returns the result and the rows."""
    with connect(":memory:", DuckSettings(memory_limit="1GB")) as conn:
        rows = kept_rows(conn, lake, shard, project or SqlProject())
    result = download_shard(rows, lake.partition_dir("shard_images", shard), settings, progress)
    return result, rows


def outcome_counts(errors: dict[str, int], success: int) -> dict[str, int]:
    """Download results folded into the demo truth's outcome names (success, http_404, blocked...)."""
    counts = {"success": success} if success else {}
    for category, n in errors.items():
        outcome = OUTCOME_OF_CATEGORY.get(category, category)
        counts[outcome] = counts.get(outcome, 0) + n
    return counts
