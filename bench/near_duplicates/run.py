"""pHash near-duplicates: poolsieve's block join (dbt_like_sql/near_duplicates/) against brute force.

Generated 64-bit pHashes (uniform random; a real pool's cluster more, so its candidate pairs are
more), with planted copies: ``--copies`` of the images get a later twin 0 to ``--distance`` bits
off. Contenders, each on the same hashes in pool order:

* ``poolsieve``: the ``phash_duplicates`` model in DuckDB (threads ``--threads``), as the
  near_duplicates asset runs it;
* ``brute_force`` (the baseline): every image against every earlier one, numpy XOR + popcount in
  blocks of rows (the plain way to get the same answer), only up to ``--brute-max`` images.

Both must drop the same images naming the same ones (checked); reported: wall seconds, ratio
brute/poolsieve, dropped rows. Nothing is asserted on timings.

    .venv/bin/python bench/near_duplicates/run.py --rows 20000,100000,1000000 --distance 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from poolsieve.images.hashes import phash_block_params
from poolsieve.sqlrunner import SqlProject

OUT = Path(__file__).parent / "out"


def make_hashes(rows: int, copies: float, distance: int, seed: int = 0) -> np.ndarray:
    """``rows`` uint64 pHashes in pool order; a ``copies`` share are twins of an earlier one."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, rows, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    hashes ^= rng.integers(0, 2, rows, dtype=np.int64).astype(np.uint64)
    twins = rng.choice(np.arange(1, rows), int(rows * copies), replace=False)
    for i in twins:
        source = rng.integers(0, i)
        flips = rng.choice(64, rng.integers(0, distance + 1), replace=False)
        hashes[i] = hashes[source] ^ np.uint64(sum(1 << int(b) for b in flips))
    return hashes


def run_poolsieve(hashes: np.ndarray, distance: int, threads: int) -> tuple[float, dict]:
    table = pa.table(
        {
            "uid": [f"{i:032x}" for i in range(len(hashes))],
            "shard": ["s"] * len(hashes),
            "shard_seq": np.zeros(len(hashes), np.int32),
            "row_idx": np.arange(len(hashes), dtype=np.int64),
            "phash": hashes.view(np.int64),
        }
    )
    with duckdb.connect() as conn:
        conn.execute(f"SET threads = {threads}; SET memory_limit = '4GB'")
        conn.register("image_rows_input", table)
        start = time.perf_counter()
        SqlProject().run(
            conn,
            ["phash_duplicates"],
            {"image_rows": "image_rows_input"},
            phash_block_params(distance),
        )
        rows = conn.execute("SELECT uid, duplicate_of FROM phash_duplicates").fetchall()
        seconds = time.perf_counter() - start
    return seconds, {int(u, 16): int(d, 16) for u, d in rows}


def run_brute_force(hashes: np.ndarray, distance: int, block: int = 2048) -> tuple[float, dict]:
    """Every image against every earlier one; the earliest within ``distance`` (an exact twin
    first, as the model names it)."""
    start = time.perf_counter()
    found = {}
    for lo in range(0, len(hashes), block):
        part = hashes[lo : lo + block]
        bits = np.bitwise_count(part[:, None] ^ hashes[None, : lo + len(part)])
        for q in range(len(part)):
            i = lo + q
            row = bits[q, :i]
            exact = np.flatnonzero(row == 0)
            near = np.flatnonzero(row <= distance)
            if len(exact):
                found[i] = int(exact[0])
            elif len(near):
                found[i] = _first_distinct(hashes, near, i)
    return time.perf_counter() - start, found


def _first_distinct(hashes: np.ndarray, near: np.ndarray, i: int) -> int:
    """The model compares distinct pHashes by their first image: the earliest image whose pHash
    first appears at or before the match."""
    firsts = [j for j in near if hashes[j] not in set(hashes[:j].tolist())]
    return int(firsts[0]) if firsts else int(near[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="20000,100000")
    parser.add_argument("--distance", type=int, default=2)
    parser.add_argument("--copies", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--brute-max", type=int, default=100_000)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    results = []
    print(
        f"{'rows':>10} {'poolsieve s':>12} {'brute s':>10} {'brute/poolsieve':>16} {'dropped':>8}"
    )
    for rows in [int(r) for r in args.rows.split(",")]:
        hashes = make_hashes(rows, args.copies, args.distance)
        ours, decided = run_poolsieve(hashes, args.distance, args.threads)
        result = {"rows": rows, "distance": args.distance, "poolsieve_s": ours}
        result["dropped"] = len(decided)
        if rows <= args.brute_max:
            brute, expected = run_brute_force(hashes, args.distance)
            result |= {"brute_force_s": brute, "ratio": brute / ours, "same": decided == expected}
            if not result["same"]:
                raise SystemExit(
                    f"rows {rows}: the two disagree ({len(decided)} vs {len(expected)})"
                )
        results.append(result)
        brute_text = (
            f"{result['brute_force_s']:10.2f} {result['ratio']:15.1f}x"
            if "ratio" in result
            else f"{'-':>10} {'-':>16}"
        )
        print(f"{rows:>10} {ours:12.2f} {brute_text} {len(decided):>8}")
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
