"""Download the images of one pool shard: the plain function behind the ``shard_images`` asset.

Re-running a shard is safe: img2dataset writes into a temporary folder beside ``out_dir``, and
only a finished folder (``download_status.parquet`` written last) replaces the old one, so a
crash mid-download leaves the previous version whole. The swap is two renames in one directory;
a crash between them leaves no ``out_dir`` (the shard reads as not downloaded, and the old copy
is kept under a ``.<name>.<uuid>.tmp`` name) — never a mix of old and new files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from poolsieve.curate.takedown import NO_BLOCKS, DownloadBlocks
from poolsieve.duck import DuckSettings, connect
from poolsieve.images.address import Allowlist, check_url
from poolsieve.images.img2dataset_run import Log, Progress, run_img2dataset
from poolsieve.images.optout.check import SIGNALS_FILE, host_optouts, signals_table
from poolsieve.images.optout.hosts import FOLDER as HOSTS_FOLDER
from poolsieve.images.optout.hosts import HostCache
from poolsieve.images.settings import DownloadSettings
from poolsieve.images.status import STATUS_FILE, build_status, error_counts, read_results
from poolsieve.lake import Lake, literal_path, replace_dir, tmp_path_for, upstream_file
from poolsieve.sqlrunner import SqlProject

REQUIRED_COLUMNS = ("uid", "url", "text")


@dataclass(frozen=True)
class DownloadResult:
    """What one shard's download produced; every path lies in the final ``out_dir``."""

    out_dir: Path
    success: int
    failed: int
    errors: dict[str, int]  # failed rows per error category, most frequent first
    tars: tuple[Path, ...]
    parquets: tuple[Path, ...]  # img2dataset's per-shard parquet (status per URL tried)
    stats: tuple[Path, ...]  # img2dataset's NNNNNNNN_stats.json
    status_path: Path  # download_status.parquet: one row per input uid
    seconds: float
    optouts: dict[str, int] = dataclasses.field(default_factory=dict)  # opted-out rows per signal

    @property
    def total(self) -> int:
        return self.success + self.failed


def download_shard(
    rows: pa.Table | str | Path,
    out_dir: str | Path,
    settings: DownloadSettings | None = None,
    progress: Progress | None = None,
    log: Log | None = None,
    hosts: HostCache | None = None,
    removed: dict[str, str] | None = None,
) -> DownloadResult:
    """Download the images of ``rows`` (uid, url, text[, face_bboxes, sha256]) into ``out_dir``.
    ``hosts``: where the hosts' opt-out files are cached (None: fetched, kept nowhere);
    ``removed``: uid -> the takedown entry that refuses it before any request.

    Must run in the main thread (img2dataset installs a signal handler). ``progress(done,
    total)`` is called from a background thread while img2dataset runs, and once at the end;
    ``log`` gets img2dataset's own console output (see run_img2dataset).
    """
    settings = settings or DownloadSettings()
    table, out_dir, start = load_rows(rows, settings), Path(out_dir), time.monotonic()
    work = tmp_path_for(out_dir)
    try:
        hosts = hosts or HostCache(None, out_dir.name)
        images = _download_into(work, table, settings, progress, log, hosts, removed or {})
        replace_dir(images, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if progress is not None:
        progress(table.num_rows, table.num_rows)
    return _result(out_dir, time.monotonic() - start)


def load_rows(rows: pa.Table | str | Path, settings: DownloadSettings) -> pa.Table:
    """The input table, checked: required columns present and uids unique."""
    table = rows if isinstance(rows, pa.Table) else pq.read_table(rows)
    needed = REQUIRED_COLUMNS + (("sha256",) if settings.verify_sha256 else ())
    missing = [name for name in needed if name not in table.column_names]
    if missing:
        raise ValueError(f"download rows lack columns {missing}")
    if pc.count_distinct(table.column("uid")).as_py() != table.num_rows:
        raise ValueError("download rows must have unique uids (one status row per uid)")
    return table


def refuse_bad_urls(table: pa.Table, settings: DownloadSettings) -> dict[str, str]:
    """uid -> reason for URLs refused from their text alone (scheme, missing host, private IP)."""
    allowlist = Allowlist.parse(settings.allowlist)
    uids, urls = table.column("uid").to_pylist(), table.column("url").to_pylist()
    reasons = {uid: check_url(url, allowlist) for uid, url in zip(uids, urls, strict=True)}
    return {uid: reason for uid, reason in reasons.items() if reason is not None}


def _without(table: pa.Table, uids: dict[str, str]) -> pa.Table:
    keep = [u not in uids for u in table.column("uid").to_pylist()]
    return table.filter(pa.array(keep, pa.bool_()))  # typed: an empty list has no type


def _download_into(work: Path, table, settings, progress, log, hosts, removed) -> Path:
    """Fill ``work/images`` with img2dataset's output, the rows' opt-out signal answers and,
    last, ``download_status.parquet``. Rows a takedown list removes or refused by their URL
    alone are not even checked against their host's opt-out files; rows those opt out are never
    fetched."""
    work.mkdir()
    images = work / "images"
    uids = set(table.column("uid").to_pylist())
    refused = {u: m for u, m in removed.items() if u in uids}
    refused |= {u: m for u, m in refuse_bad_urls(table, settings).items() if u not in refused}
    opted_out, answers = host_optouts(_without(table, refused), settings, hosts)
    refused |= opted_out
    todo = _without(table, refused)
    if todo.num_rows:
        has_bboxes = "face_bboxes" in todo.column_names
        run_img2dataset(
            _write_input(todo, work / "input.parquet", settings),
            images,
            settings,
            has_bboxes=has_bboxes,
            progress=progress,
            offset=len(refused),
            total=table.num_rows,
            log=log,
        )
    images.mkdir(exist_ok=True)
    status = build_status(table, refused, read_results(images))
    seen = dt.datetime.now(dt.UTC)
    signals = signals_table(status, answers, seen, settings.honour_optouts)
    pq.write_table(signals, images / SIGNALS_FILE)
    pq.write_table(status, images / STATUS_FILE)
    return images


def _write_input(table: pa.Table, path: Path, settings: DownloadSettings) -> Path:
    columns = ["url", "text", "uid"]
    columns += [c for c in ("face_bboxes",) if c in table.column_names]
    columns += ["sha256"] if settings.verify_sha256 else []
    pq.write_table(table.select(columns), path)
    return path


def _result(out_dir: Path, seconds: float) -> DownloadResult:
    status = pq.read_table(out_dir / STATUS_FILE)
    success = pc.sum(pc.equal(status.column("status"), "success")).as_py() or 0
    return DownloadResult(
        out_dir=out_dir,
        success=success,
        failed=status.num_rows - success,
        errors=error_counts(status),
        tars=tuple(sorted(out_dir.glob("*.tar"))),
        parquets=tuple(p for p in sorted(out_dir.glob("*.parquet")) if p.name != STATUS_FILE),
        stats=tuple(sorted(out_dir.glob("*_stats.json"))),
        status_path=out_dir / STATUS_FILE,
        seconds=seconds,
        optouts=dict(Counter(s for s in status.column("optout_signal").to_pylist() if s)),
    )


DOWNLOAD_MODELS = ["shard_download_rows"]
#: download_status error categories -> the outcome the pool summary counts them under
OUTCOME_OF_CATEGORY = {
    "blocked_private_address": "blocked",
    "blocked_redirect": "blocked",
    "blocked_scheme": "blocked",
}


def kept_rows(conn: duckdb.DuckDBPyConnection, lake: Lake, shard: str, project: SqlProject):
    """The kept rows of ``shard`` (uid, url, text, face_bboxes, sha256, row_idx) as Arrow."""
    for name, asset, file in [
        ("shard_rows", "pool_shard", "rows.parquet"),
        ("shard_decisions", "url_dedup", "decisions.parquet"),
    ]:
        conn.read_parquet(literal_path(upstream_file(lake, asset, shard, file))).create_view(name)
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
    log: Log | None = None,
    uids: set[str] | None = None,
    asset: str = "shard_images",
    blocks: DownloadBlocks = NO_BLOCKS,
) -> tuple[DownloadResult, pa.Table]:
    """Download the kept rows of ``shard`` into ``asset``'s lake folder; returns the result and
    the rows. ``uids``: only the kept rows with these uids (metadata mode's selection);
    ``blocks``: what the takedown lists refuse (rows before any request, sha256 in the guard)."""
    with connect(":memory:", DuckSettings(memory_limit="1GB")) as conn:
        rows = kept_rows(conn, lake, shard, project or SqlProject())
    if uids is not None:
        rows = rows.filter(pc.is_in(rows.column("uid"), pa.array(sorted(uids), pa.string())))
    out_dir = lake.partition_dir(asset, shard)
    hosts = HostCache(
        lake.root / HOSTS_FOLDER, shard, tuple(lake.glob(f"{HOSTS_FOLDER}/*.parquet"))
    )
    settings = dataclasses.replace(settings, blocked_sha256=blocks.sha256)
    result = download_shard(rows, out_dir, settings, progress, log, hosts, blocks.rows)
    return result, rows


def outcome_counts(errors: dict[str, int], success: int) -> dict[str, int]:
    """Download results by outcome (success, http_404, blocked...): the fetch guard's three
    refusals count as one ``blocked``, every other error category as itself."""
    counts = {"success": success} if success else {}
    for category, n in errors.items():
        outcome = OUTCOME_OF_CATEGORY.get(category, category)
        counts[outcome] = counts.get(outcome, 0) + n
    return counts
