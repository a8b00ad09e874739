"""Compare two lakes' curation outputs: the proof that a refactor changed no behaviour.

    python scripts/compare_lakes.py BEFORE_LAKE AFTER_LAKE

Compares, per strategy, ``subset/<s>/subset.npy`` byte for byte and ``subset/<s>/decisions.parquet``
row for row (uid, keep, reason); per shard, URL-dedup decisions and download statuses row for
row; and the leaderboard's subset sizes. Model metrics are not compared (CPU training is not
bit-reproducible across runs that share the cores differently). Exits 1 on any difference.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import duckdb

TABLES = {  # relative glob -> the columns that must match, and the order to compare in
    "subset/*/decisions.parquet": ("uid, keep, reason", "uid"),
    "url_dedup/*/decisions.parquet": ("shard, row_idx, keep, reason, duplicate_of", "row_idx"),
    "shard_images/*/download_status.parquet": ("uid, status, error_category", "uid"),
    "pool_shard/*/quarantine.parquet": ("shard, row_idx, reason", "row_idx"),
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(path: Path, columns: str, order: str) -> list[tuple]:
    with duckdb.connect() as conn:
        return conn.sql(
            f"SELECT {columns} FROM read_parquet($p) ORDER BY {order}", params={"p": str(path)}
        ).fetchall()


def _leaderboard_sizes(lake: Path) -> list[tuple]:
    with duckdb.connect() as conn:
        path = str(lake / "leaderboard" / "leaderboard.parquet")
        return conn.sql(
            "SELECT strategy, subset_size FROM read_parquet($p) ORDER BY strategy",
            params={"p": path},
        ).fetchall()


def compare(before: Path, after: Path) -> list[str]:
    problems, checked = [], 0
    npys = sorted(p.relative_to(before) for p in before.glob("subset/*/subset.npy"))
    for rel in npys:
        checked += 1
        if not (after / rel).is_file() or _sha(before / rel) != _sha(after / rel):
            problems.append(f"{rel}: differs")
    for pattern, (columns, order) in TABLES.items():
        for rel in sorted(p.relative_to(before) for p in before.glob(pattern)):
            checked += 1
            if not (after / rel).is_file() or _rows(before / rel, columns, order) != _rows(
                after / rel, columns, order
            ):
                problems.append(f"{rel}: differs")
    if _leaderboard_sizes(before) != _leaderboard_sizes(after):
        problems.append("leaderboard subset sizes differ")
    print(
        f"compared {len(npys)} subset.npy files and {checked - len(npys)} decision/status tables; leaderboard sizes: {_leaderboard_sizes(after)}"
    )
    return problems


def main() -> int:
    before, after = (Path(a) for a in sys.argv[1:3])
    problems = compare(before, after)
    print("\n".join(problems) if problems else "identical")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
