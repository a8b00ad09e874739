"""Plain-text summaries of the lake (what the main job prints at the end)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from poolsieve.images.decontamination import RESULT_FILE as DECONTAM_FILE
from poolsieve.images.download import outcome_counts
from poolsieve.images.status import STATUS_FILE
from poolsieve.lake import Lake

EMB_FILE = "embeddings.parquet"


def lake_counts(lake: Lake | Path) -> dict[str, dict[str, int]]:
    """Counts over every shard: {"quarantine": {reason: n}, "dedup": {"keep": n, reason: n}}
    and, once images are downloaded, "download" ({outcome: n}, see images.download.outcome_counts),
    "embedded" and "decontamination" ({"compared": n, "flagged": n})."""
    lake = lake if isinstance(lake, Lake) else Lake(lake)
    conn = duckdb.connect()
    normalized = _count(conn, lake.asset_files("pool_shard", "rows.parquet"))
    dropped = _by_reason(conn, lake.asset_files("url_dedup", "decisions.parquet"))
    counts = {
        "quarantine": _by_reason(conn, lake.asset_files("pool_shard", "quarantine.parquet")),
        "dedup": {"keep": normalized - sum(dropped.values()), **dropped},
    }
    download = _by_reason(
        conn, lake.asset_files("shard_images", STATUS_FILE), "coalesce(error_category, 'success')"
    )
    if download:
        success = download.pop("success", 0)
        counts["download"] = outcome_counts(download, success)
        counts["embedded"] = {"rows": _count(conn, lake.asset_files("clip_embeddings", EMB_FILE))}
        flagged = _by_reason(
            conn, lake.asset_files("eval_decontamination", DECONTAM_FILE), "flagged"
        )
        counts["decontamination"] = {
            "compared": sum(flagged.values()),
            "flagged": flagged.get("true", 0),
        }
    return counts


def selection_summary(lake: Lake | Path) -> str:
    """Metadata mode: the downloads of the selection (selected_images' status files), by outcome."""
    lake = lake if isinstance(lake, Lake) else Lake(lake)
    conn = duckdb.connect()
    download = _by_reason(
        conn,
        lake.asset_files("selected_images", STATUS_FILE),
        "coalesce(error_category, 'success')",
    )
    success = download.pop("success", 0)
    lines = ["", "selection downloads (all shards)"]
    lines.append(f"  selected             {success + sum(download.values()):>10}")
    lines.append(f"  downloaded           {success:>10}")
    lines.append(f"  download failed      {sum(download.values()):>10}")
    lines += [f"    {reason:<18} {n:>10}" for reason, n in sorted(download.items())]
    return "\n".join(lines)


def lake_summary(counts: dict) -> str:
    """Rows read / quarantined per reason / kept / dropped per reason, from lake_counts."""
    quarantined = counts["quarantine"]
    dropped = {k: v for k, v in counts["dedup"].items() if k != "keep"}
    kept = counts["dedup"]["keep"]
    normalized = kept + sum(dropped.values())
    lines = ["", "pool summary (all shards)"]
    lines.append(f"  rows read            {normalized + sum(quarantined.values()):>10}")
    lines.append(f"  quarantined          {sum(quarantined.values()):>10}")
    lines += [f"    {reason:<18} {n:>10}" for reason, n in quarantined.items()]
    lines.append(f"  normalized           {normalized:>10}")
    lines.append(f"  dropped by dedup     {sum(dropped.values()):>10}")
    lines += [f"    {reason:<18} {n:>10}" for reason, n in dropped.items()]
    lines.append(f"  kept (unique URLs)   {kept:>10}")
    if "download" in counts:
        lines += _image_lines(counts)
    return "\n".join(lines)


def _image_lines(counts: dict) -> list[str]:
    download = counts["download"]
    lines = [f"  downloaded           {download.get('success', 0):>10}"]
    failed = {k: v for k, v in download.items() if k != "success"}
    lines.append(f"  download failed      {sum(failed.values()):>10}")
    lines += [f"    {reason:<18} {n:>10}" for reason, n in sorted(failed.items())]
    lines.append(f"  embedded             {counts['embedded']['rows']:>10}")
    lines.append(f"  eval near-duplicates {counts['decontamination']['flagged']:>10}  (flagged)")
    return lines


def _count(conn, files: list[str]) -> int:
    if not files:
        return 0
    return conn.execute("SELECT count(*) FROM read_parquet($p)", {"p": files}).fetchall()[0][0]


def _by_reason(conn, files: list[str], value: str = "reason") -> dict[str, int]:
    """{value: rows} of a column or expression (project text) over files; NULL is left out."""
    if not files:
        return {}
    rows = conn.execute(
        f"SELECT lower({value}::VARCHAR) AS v, count(*) FROM read_parquet($p) "
        "WHERE v IS NOT NULL GROUP BY v ORDER BY v",
        {"p": files},
    ).fetchall()
    return dict(rows)
