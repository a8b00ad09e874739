"""Plain-text summaries of the lake (what the main job prints at the end)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from poolsieve.lake import Lake


def lake_counts(root: Path) -> dict[str, dict[str, int]]:
    """{"quarantine": {reason: n}, "dedup": {"keep": n, reason: n}} over every shard."""
    lake = Lake(root)
    conn = duckdb.connect()
    normalized = _count(conn, lake.asset_glob("pool_shard", "rows.parquet"))
    dropped = _by_reason(conn, lake.asset_glob("url_dedup", "decisions.parquet"))
    return {
        "quarantine": _by_reason(conn, lake.asset_glob("pool_shard", "quarantine.parquet")),
        "dedup": {"keep": normalized - sum(dropped.values()), **dropped},
    }


def compare_with_truth(counts: dict, truth_path: Path) -> dict:
    """Counts (from lake_counts) that differ from the demo's ground truth ({} when all match)."""
    expected = json.loads(Path(truth_path).read_text())["expected"]
    diffs = {}
    for part in ("quarantine", "dedup"):
        want = {k: v for k, v in expected[part].items() if v}
        if counts[part] != want:
            diffs[part] = {"expected": want, "got": counts[part]}
    return diffs


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
    return "\n".join(lines)


def _count(conn, pattern: str) -> int:
    try:
        return conn.execute("SELECT count(*) FROM read_parquet($p)", {"p": pattern}).fetchall()[0][
            0
        ]
    except duckdb.IOException:
        return 0


def _by_reason(conn, pattern: str) -> dict[str, int]:
    try:
        rows = conn.execute(
            "SELECT reason, count(*) FROM read_parquet($p) WHERE reason IS NOT NULL "
            "GROUP BY reason ORDER BY reason",
            {"p": pattern},
        ).fetchall()
    except duckdb.IOException:
        return {}
    return dict(rows)
