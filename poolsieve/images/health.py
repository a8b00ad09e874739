"""Pool health: a sample of one shard's downloaded URLs fetched again, and what changed.

Links rot and images drift after a pool is built (DataComp users saw 6-9% of downloads fail
soon after release and over a third of URLs invalid a year later; DataComp #67: 14% of
DataComp-1B's sha256 no longer match). Each check re-fetches a sample of the shard's downloaded
rows (shard_images', or in metadata mode selected_images') through the download guard and
compares each with what was downloaded:

- ``alive``: the same bytes (sha256 of the served bytes, image_hashes' ``sha256``);
- ``dead``: the fetch failed (``error_category`` as download_status names it: http_404, ...);
- ``opted_out``: the site opts the image out now (the guard's header check);
- ``reencoded``: other bytes, the same picture (pHash within ``phash_distance`` bits of the
  downloaded image's);
- ``replaced``: other bytes, another picture (or bytes that no longer decode).

Grain: one row per sampled uid per check. The sample is fixed per uid (a hash of the uid and
``salt`` below ``rate``), so successive checks follow the same rows and their rates compare over
time. ``pool_health/<shard>/checks.parquet`` holds the latest check; ``history.parquet`` one
summary row per check (the rates over time), and ``history.png`` plots them (the asset's
metadata shows it in the UI); ``subset_health/health_per_shard.png`` plots every shard's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.clip.embedding import shard_tars
from poolsieve.clip.encode import decode_image, index_tar, sample_bytes
from poolsieve.images.errors import categorize
from poolsieve.images.hashes import ASSET as HASHES_ASSET
from poolsieve.images.hashes import HASHES_FILE, phash64
from poolsieve.images.opener import build_opener, fetch_once
from poolsieve.images.optout import OPTED_OUT
from poolsieve.images.status import STATUS_FILE
from poolsieve.lake import Lake, atomic_file, upstream_file

ASSET = "pool_health"
#: where a shard's downloaded images are, the whole shard's first (metadata mode: selected_images)
IMAGE_ASSETS = ("shard_images", "selected_images")
CHECKS_FILE = "checks.parquet"
HISTORY_FILE = "history.parquet"
HISTORY_PLOT = "history.png"
POOL_PLOT = "health_per_shard.png"
PLOTTED_CHECKS = 100  # the latest checks of a shard drawn in its plots
LEGEND_SHARDS = 10  # more shards: thin lines, no legend
PLOT_DPI = 80  # ~30 KB: the PNG rides in every check's materialization event
PLOTTED_RATES = {
    "link_rot_rate": "link rot (% of checked)",
    "hash_drift_rate": "hash drift (% of reachable)",
}
OUTCOMES = ("alive", "dead", OPTED_OUT, "reencoded", "replaced")
CHECKS_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("url", pa.string()),
        ("checked_at", pa.timestamp("us", tz="UTC")),
        ("outcome", pa.string()),
        ("error_category", pa.string()),
        ("sha256_before", pa.string()),
        ("sha256_after", pa.string()),
        ("phash_distance", pa.int32()),  # NULL: same bytes, dead, or no longer decodable
    ]
)
HISTORY_SCHEMA = pa.schema(
    [
        ("checked_at", pa.timestamp("us", tz="UTC")),
        ("downloaded", pa.int64()),
        ("checked", pa.int64()),
        *((name, pa.int64()) for name in OUTCOMES),
        ("link_rot_rate", pa.float64()),
        ("hash_drift_rate", pa.float64()),
        ("image_change_rate", pa.float64()),
    ]
)


@dataclass(frozen=True)
class HealthSettings:
    """Which rows a check re-fetches and when other bytes still count as the same picture."""

    rate: float = 0.01  # share of downloaded rows re-checked each time
    minimum: int = 20  # per shard, at least this many (all when fewer were downloaded)
    phash_distance: int = 6  # bits; DCT pHash of a re-encoded picture moves a few bits
    salt: str = "pool-health-v1"  # changes which rows are sampled

    def __post_init__(self):
        if not 0 <= self.rate <= 1 or self.minimum < 0 or not 0 <= self.phash_distance <= 64:
            raise ValueError(
                f"health: rate in [0, 1], minimum >= 0, phash_distance in [0, 64] (got {self})"
            )


@dataclass(frozen=True)
class HealthResult:
    checks_path: Path
    history_path: Path
    summary: dict  # this check's HISTORY_SCHEMA row
    sampled: int  # rows the sample chose (each must have one check)
    history: list[dict]  # every check's summary row, the oldest first (this one last)
    plot_path: Path  # history.png: the history's rates over time


def _draw(uid: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{uid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sample(downloaded: list[dict], settings: HealthSettings) -> list[dict]:
    """The downloaded rows this shard re-checks: those whose draw is below ``rate``, topped up
    to ``minimum`` with the lowest draws (a fixed set per uid while the settings stay)."""
    ranked = sorted(downloaded, key=lambda r: _draw(r["uid"], settings.salt))
    chosen = [r for r in ranked if _draw(r["uid"], settings.salt) < settings.rate]
    return ranked[: max(len(chosen), min(settings.minimum, len(ranked)))]


def images_asset(lake: Lake, shard: str) -> str:
    """The download asset holding the shard's images: shard_images (the whole shard) or, in
    metadata mode, selected_images (the rows the chosen subsets keep)."""
    for asset in IMAGE_ASSETS:
        if lake.partition_file(asset, shard, STATUS_FILE).exists():
            return asset
    raise FileNotFoundError(
        f"shard {shard!r} has no downloaded images (no {' or '.join(IMAGE_ASSETS)} output): "
        "download it first"
    )


def _urls(lake: Lake, asset: str, shard: str) -> dict[str, str]:
    status = pq.read_table(lake.partition_file(asset, shard, STATUS_FILE), columns=["uid", "url"])
    return dict(zip(*(status.column(c).to_pylist() for c in ("uid", "url")), strict=True))


def downloaded_rows(lake: Lake, shard: str) -> list[dict]:
    """uid, url, sha256 (served) and phash of every image the shard downloaded (metadata mode:
    phash None and the tar ``sample`` to hash, so only the sampled rows are decoded)."""
    asset = images_asset(lake, shard)
    urls = _urls(lake, asset, shard)
    if asset == "selected_images":
        return [
            {"uid": s.uid, "url": urls[s.uid], "sha256": s.served_sha256 or None, "sample": s}
            for tar in shard_tars(lake, shard, asset)
            for s in index_tar(tar, {})
            if s.uid in urls
        ]
    hashes = pq.read_table(upstream_file(lake, HASHES_ASSET, shard, HASHES_FILE))
    return [
        {"uid": h["uid"], "url": urls[h["uid"]], "sha256": h["sha256"], "phash": h["phash"]}
        for h in hashes.select(["uid", "sha256", "phash"]).to_pylist()
        if h["uid"] in urls
    ]


def with_phash(rows: list[dict]) -> list[dict]:
    """``rows`` with the phash of each one that carries its tar ``sample`` instead."""
    pending = [r["sample"] for r in rows if "sample" in r]
    phashes = {s.uid: _phash(data) for s, data in sample_bytes(pending)}
    return [
        {k: v for k, v in r.items() if k != "sample"} | {"phash": phashes[r["uid"]]}
        if "sample" in r
        else r
        for r in rows
    ]


def _phash(data: bytes) -> int | None:
    image, _ = decode_image(data)
    return phash64(image) if image is not None else None


def fetch(opener, url: str, timeout: float) -> tuple[bytes | None, str | None]:
    """(body, None) or (None, error category): one guarded fetch (the body vetted as an image),
    never raising."""
    _, body, error = fetch_once(opener, url, timeout, lambda response: response.read())
    return body, (categorize(error) if error is not None else None)


def judge(row: dict, body: bytes | None, error: str | None, settings: HealthSettings) -> dict:
    """One sampled row's outcome (see the module docstring)."""
    out = {"uid": row["uid"], "url": row["url"], "sha256_before": row["sha256"]}
    if body is None:
        outcome = OPTED_OUT if error == OPTED_OUT else "dead"
        return out | {"outcome": outcome, "error_category": error}
    out["sha256_after"] = hashlib.sha256(body).hexdigest()
    if out["sha256_after"] == row["sha256"]:
        return out | {"outcome": "alive"}
    image, _ = decode_image(body)
    if image is None or row["phash"] is None:
        return out | {"outcome": "replaced"}
    distance = bin((phash64(image) ^ row["phash"]) & (2**64 - 1)).count("1")
    same = distance <= settings.phash_distance
    return out | {"outcome": "reencoded" if same else "replaced", "phash_distance": distance}


def recheck(rows: list[dict], download, settings: HealthSettings) -> list[dict]:
    """Fetch every row again (``download``: DownloadSettings: guard, timeout, threads)."""
    opener = build_opener(download.policy())
    checked_at = dt.datetime.now(dt.UTC)

    def one(row: dict) -> dict:
        body, error = fetch(opener, row["url"], download.timeout)
        return judge(row, body, error, settings) | {"checked_at": checked_at}

    if not rows:
        return []
    with ThreadPoolExecutor(max(1, min(download.thread_count, len(rows)))) as pool:
        return list(pool.map(one, rows))


def rates(counts: Counter) -> dict[str, float]:
    """Link rot over the rows checked; hash drift and image change over those still reachable."""
    checked = sum(counts.values())
    reachable = checked - counts["dead"] - counts[OPTED_OUT]
    drift = counts["reencoded"] + counts["replaced"]
    return {
        "link_rot_rate": counts["dead"] / checked if checked else 0.0,
        "hash_drift_rate": drift / reachable if reachable else 0.0,
        "image_change_rate": counts["replaced"] / reachable if reachable else 0.0,
    }


def summarize(checks: list[dict], downloaded: int, checked_at: dt.datetime) -> dict:
    """One check's counts per outcome and :func:`rates`."""
    counts = Counter(c["outcome"] for c in checks)
    return {
        "checked_at": checked_at,
        "downloaded": downloaded,
        "checked": len(checks),
        **{o: counts[o] for o in OUTCOMES},
        **rates(counts),
    }


def check_shard(lake: Lake, shard: str, download, settings: HealthSettings) -> HealthResult:
    """Re-check ``shard``'s sample; write the check, append its summary to the history and
    plot the history."""
    rows = downloaded_rows(lake, shard)
    chosen = with_phash(sample(rows, settings))
    checks = recheck(chosen, download, settings)
    folder = lake.partition_dir(ASSET, shard)
    folder.mkdir(parents=True, exist_ok=True)
    checked_at = checks[0]["checked_at"] if checks else dt.datetime.now(dt.UTC)
    summary = summarize(checks, len(rows), checked_at)
    history = _history(folder / HISTORY_FILE) + [summary]
    _write(folder / CHECKS_FILE, pa.Table.from_pylist(checks, schema=CHECKS_SCHEMA))
    _write(folder / HISTORY_FILE, pa.Table.from_pylist(history, schema=HISTORY_SCHEMA))
    plot = plot_history(
        {shard: history}, folder / HISTORY_PLOT, f"pool health of {shard} over time"
    )
    paths = (folder / CHECKS_FILE, folder / HISTORY_FILE)
    return HealthResult(*paths, summary, len(chosen), history, plot)


def read_history(path: Path) -> list[dict]:
    """A shard's checks, one summary row each, the oldest first."""
    return pq.read_table(path).to_pylist()


def plot_history(histories: dict[str, list[dict]], path: Path, title: str) -> Path:
    """Link rot and hash drift (%) over time, one line per shard (its latest PLOTTED_CHECKS
    checks), as a PNG at ``path``."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    from poolsieve.plots import pyplot, save_png

    fig, axes = pyplot().subplots(1, len(PLOTTED_RATES), figsize=(8, 3), sharex=True)
    many = len(histories) > LEGEND_SHARDS
    style = {"linewidth": 0.6, "alpha": 0.4, "marker": "."} if many else {"marker": "o"}
    for shard, rows in sorted(histories.items()):
        rows = rows[-PLOTTED_CHECKS:]
        times = [r["checked_at"] for r in rows]
        for ax, rate in zip(axes, PLOTTED_RATES, strict=True):
            ax.plot(times, [100 * r[rate] for r in rows], label=shard, **style)
    for ax, label in zip(axes, PLOTTED_RATES.values(), strict=True):
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        ax.set_ylabel(label, fontsize=8)
        ax.set_ylim(bottom=0, top=max(1.0, ax.get_ylim()[1]))
        ax.grid(alpha=0.3)
    if not many:
        axes[-1].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    return save_png(fig, path, dpi=PLOT_DPI)


def plot_pool(lake: Lake) -> Path | None:
    """Every shard's rates over time in one plot (None before any check)."""
    files = lake.glob(f"{ASSET}/*/{HISTORY_FILE}")
    if not files:
        return None
    histories = {f.parent.name: read_history(f) for f in files}
    title = f"pool health of {len(histories)} shards over time"
    return plot_history(histories, lake.path(SUBSET_ASSET, POOL_PLOT), title)


def _history(path: Path) -> list[dict]:
    return read_history(path) if path.exists() else []


def _write(path: Path, table: pa.Table) -> None:
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)


SUBSET_ASSET = "subset_health"
SUBSET_FILE = "subset_health.parquet"


def subset_health(lake: Lake, project=None) -> tuple[Path, pa.Table, list[str]]:
    """Each strategy's share still downloadable (dbt_like_sql/health/subset_health.sql) over
    the latest check of every shard, written as ``subset_health/subset_health.parquet``; and
    the model's failed YAML column tests."""
    from poolsieve.curate.strategies import subset_decisions_view
    from poolsieve.duck import DuckSettings, connect
    from poolsieve.sqlrunner import SqlProject, column_test_failures

    project = project or SqlProject()
    checks = lake.asset_files(ASSET, CHECKS_FILE)
    subsets = lake.asset_files("subset", "decisions.parquet")
    with connect(":memory:", DuckSettings(memory_limit="1GB")) as conn:
        _checks_view(conn, checks)
        subset_decisions_view(conn, subsets)
        sources = {"subset_decisions": "subset_decisions", "health_checks": "health_checks"}
        project.run(conn, ["subset_health"], sources)
        table = conn.table("subset_health").to_arrow_table()
        failures = column_test_failures(conn, project.model("subset_health"), "subset_health")
    path = lake.path(SUBSET_ASSET, SUBSET_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, table)
    return path, table, failures


def _checks_view(conn, files: list[str]) -> None:
    if files:
        conn.read_parquet(files).create_view("health_checks")
    else:
        conn.from_arrow(CHECKS_SCHEMA.empty_table()).create_view("health_checks")


def latest_counts(lake: Lake) -> dict[str, int]:
    """Outcome counts over every shard's latest check ({} when none ran)."""
    counts: Counter = Counter()
    for path in lake.asset_files(ASSET, CHECKS_FILE):
        counts.update(pq.read_table(path, columns=["outcome"]).column("outcome").to_pylist())
    return {o: counts[o] for o in OUTCOMES} if counts else {}


def read_subset_health(lake: Lake) -> list[dict]:
    """The shares subset_health wrote last ([] before it ran)."""
    path = lake.path(SUBSET_ASSET, SUBSET_FILE)
    return pq.read_table(path).to_pylist() if path.exists() else []


def health_lines(counts: dict[str, int], subsets: list[dict]) -> list[str]:
    """What ``poolsieve health`` prints: the pool's latest checks and each subset's share."""
    if not counts:
        return ["pool health: no check yet"]
    checked, summary = sum(counts.values()), rates(Counter(counts))
    lines = [
        f"pool health: {checked} downloaded URLs re-checked: "
        + ", ".join(f"{n} {o}" for o, n in counts.items())
        + f"; link rot {summary['link_rot_rate']:.1%}, hash drift "
        f"{summary['hash_drift_rate']:.1%} (image changed {summary['image_change_rate']:.1%})"
    ]
    lines += [
        f"  {r['strategy']}: {r['downloadable_share']:.1%} of {r['checked']} checked rows still "
        "downloadable"
        for r in subsets
    ]
    return lines
