"""Takedown hash lists at download: each shard's download reads the lists parsed once
(``takedown.parsed_lists``) against parsing them again for every shard (``load_lists``, the
baseline: what each shard's download did before).

Generated lists: one CSV of ``--entries`` sha256 entries (a known-abuse hash list's shape) and a
small request list. For each size, the wall seconds of one shard's list loading each way, the
first (parsing) call of ``parsed_lists`` too, and the ratio baseline/cached; the tables must be
equal (checked). Nothing is asserted on timings.

    .venv/bin/python bench/takedown/run.py --entries 100000,1000000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from poolsieve.curate.takedown import load_lists, parsed_lists
from poolsieve.lake import Lake

OUT = Path(__file__).parent / "out"


def write_lists(folder: Path, entries: int) -> None:
    folder.mkdir(parents=True)
    with open(folder / "hashes.csv", "w") as out:
        out.write("sha256,reason\n")
        for i in range(entries):
            out.write(f"{hashlib.sha256(str(i).encode()).hexdigest()},csam-hash-list\n")
    (folder / "requests.csv").write_text("uid,reference\n" + "ab" * 16 + ",REQ-1\n")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def one_size(root: Path, entries: int) -> dict:
    folder, lake = root / f"lists-{entries}", Lake(root / f"lake-{entries}")
    write_lists(folder, entries)
    lake.root.mkdir()
    baseline_s, baseline = timed(lambda: load_lists(folder))
    first_s, _ = timed(lambda: parsed_lists(lake, folder))
    cached_s, cached = timed(lambda: parsed_lists(lake, folder))
    assert cached.equals(baseline), "the cached table differs from the parsed one"
    return {
        "entries": entries,
        "baseline_parse_s": round(baseline_s, 3),
        "first_call_s": round(first_s, 3),
        "cached_s": round(cached_s, 4),
        "ratio_baseline_over_cached": round(baseline_s / cached_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", default="100000,1000000")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [one_size(Path(tmp), int(n)) for n in args.entries.split(",")]
    OUT.mkdir(exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
