"""Caption language ID, side by side: fastText lid.176, gcld3, lingua, langid on the same captions.

    .venv/bin/python bench/language.py [--rows 20000] [--slow-rows N] [--repeat 3]
        [--detectors fasttext,fasttext-list,gcld3,lingua,langid] [--quiet-wait 30] [--json PATH]

Captions: the 1,000 real LAION alt-texts of tests/data/laion_sample_1000.parquet, repeated to
``--rows`` and varied as DataComp's pool is (every 3rd copy gets a tab, a newline, a no-break or
an em space between two words; every 7th a trailing newline), so newline handling is timed too.
Every detector reads the same captions (``--slow-rows N``: lingua and langid only the first N,
for a quicker run). Each detector is called through ``poolsieve.curate.language.detector(name)``,
exactly as the pipeline calls it, after one untimed warm-up call that loads its model (load time
reported). Other jobs only slow a run down, so the table shows the best of ``--repeat`` runs;
``CPU s`` is process time (lingua may use several threads, the others one), and ``/ CPU s`` the
rate per CPU second. ``agree`` = share of the 1,000 distinct captions on which the detector and
fastText agree on English / not English (what DataComp's rules read).

``fasttext-list`` is not a detector: it is fasttext-predict's list API (``multilinePredict``) on
the same lines, the batch call ``fasttext`` does not use because with numpy 2 it returns the labels
without their probabilities; it shows what one call per caption costs against it.

``pair`` (fastText then gcld3, as shard_features called them before), ``pair-w1`` and
``pair-wN`` (both through ``LanguageIdentifier`` with N worker processes; ``pair-w0``: one per
core) are not in the default list: ``--detectors pair,pair-w1,pair-w2``. They read the captions
made distinct (a copy number appended: the identifier answers a repeated caption once, which the
repeated sample would overrate); ``CPU s`` of ``pair-wN`` (N > 1) is this process's only (the
workers' is not counted), and the first run includes starting the workers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from functools import cache
from pathlib import Path

import psutil
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poolsieve.curate.language import (  # noqa: E402
    LanguageIdentifier,
    detector,
    fasttext_model_path,
)

SAMPLE = ROOT / "tests" / "data" / "laion_sample_1000.parquet"
SPACES = ("\t", "\n", "\u00a0", "\u2003")
SLOW = {"lingua", "langid"}
DETECTOR_NAMES = {"fasttext", "gcld3", "lingua", "langid"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--slow-rows", type=int, help="rows for lingua, langid (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--detectors", default="fasttext,fasttext-list,gcld3,lingua,langid")
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="max s to wait per run")
    parser.add_argument("--quiet-cpu", type=float, default=20.0, help="percent of all cores")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def vary(caption: str, copy: int) -> str:
    """A copy of a real caption with DataComp-style whitespace in it (every 3rd / 7th copy)."""
    if copy % 3 == 1 and " " in caption:
        caption = caption.replace(" ", SPACES[copy // 3 % len(SPACES)], 1)
    if copy % 7 == 2:
        caption += "\n"
    return caption


def captions(rows: int) -> tuple[list[str], list[str]]:
    """(the distinct real captions, ``rows`` varied copies of them)."""
    real = pq.read_table(SAMPLE, columns=["TEXT"]).column("TEXT").to_pylist()
    copies = [vary(real[i % len(real)], i // len(real)) for i in range(rows)]
    return real, copies


def wait_for_quiet(max_wait_s: float, max_cpu: float) -> float:
    """Wait (at most ``max_wait_s``) until the machine is below ``max_cpu`` % busy."""
    deadline = time.monotonic() + max_wait_s
    busy = psutil.cpu_percent(interval=1.0)
    while busy > max_cpu and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=1.0)
    return busy


@cache
def lid176():
    import fasttext

    return fasttext.load_model(str(fasttext_model_path()))


def fasttext_list(texts: list[str]) -> list[str]:
    """lid.176's labels from one list call (no probabilities: see the module docstring)."""
    model = lid176()
    lines = [text.replace("\n", " ") + "\n" for text in texts]
    return model.f.multilinePredict(lines, 1, 0.0, "replace")


def pair_separately(texts: list[str]) -> list[tuple[str, float]]:
    """shard_features' two detectors as it called them before issue 12: one after the other,
    each preparing every caption (answers zipped, for the length check)."""
    return list(zip(detector("fasttext")(texts), detector("gcld3")(texts), strict=True))


def pair_identifier(workers: int):
    """shard_features' two detectors as it calls them now: ``LanguageIdentifier`` (captions
    prepared once, repeats identified once) over ``workers`` processes (1: this one)."""
    languages = LanguageIdentifier(["fasttext", "gcld3"], workers, min_texts=1)

    def detect(texts: list[str]) -> list[tuple[str, float]]:
        found = languages.start(texts)()
        return list(zip(found["fasttext"], found["gcld3"], strict=True))

    return detect


def contender(name: str):
    if name == "fasttext-list":
        return fasttext_list
    if name == "pair":
        return pair_separately
    if name.startswith("pair-w"):
        return pair_identifier(int(name.removeprefix("pair-w") or 0))
    return detector(name)


def time_detector(name: str, texts: list[str], args: argparse.Namespace) -> dict:
    detect = contender(name)
    start = time.perf_counter()
    detect(texts[:1])  # loads the model
    load_s = time.perf_counter() - start
    runs = []
    for _ in range(args.repeat):
        busy = wait_for_quiet(args.quiet_wait, args.quiet_cpu)
        wall, cpu = time.perf_counter(), time.process_time()
        found = detect(texts)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert len(found) == len(texts)
        runs.append({"wall_s": wall, "cpu_s": cpu, "busy_before_pct": busy})
    best = min(runs, key=lambda run: run["wall_s"])
    return {
        "detector": name,
        "rows": len(texts),
        "load_s": load_s,
        "wall_s": best["wall_s"],
        "cpu_s": best["cpu_s"],
        "captions_per_s": len(texts) / best["wall_s"],
        "captions_per_cpu_s": len(texts) / max(best["cpu_s"], 1e-9),
        "runs": runs,
    }


def english_shares(names: list[str], real: list[str]) -> dict[str, dict]:
    """Per detector: share of English, and agreement with fastText on English / not English."""
    names = [name for name in names if name in DETECTOR_NAMES]
    english = {name: [code == "en" for code, _ in detector(name)(real)] for name in names}
    reference = english.get("fasttext") or [code == "en" for code, _ in detector("fasttext")(real)]
    return {
        name: {
            "english_share": sum(flags) / len(flags),
            "agree_with_fasttext": sum(a == b for a, b in zip(flags, reference, strict=True))
            / len(flags),
        }
        for name, flags in english.items()
    }


def table(results: list[dict], shares: dict[str, dict]) -> str:
    by_name = {r["detector"]: r for r in results}
    base = by_name.get("lingua")
    lines = [
        "| detector | rows | load s | wall s | CPU s | captions/s | / CPU s | x lingua | en | agree |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = r["captions_per_s"] / base["captions_per_s"] if base else float("nan")
        share = shares.get(r["detector"])
        en = (
            f"{share['english_share']:.1%} | {share['agree_with_fasttext']:.1%}"
            if share
            else "- | -"
        )
        lines.append(
            f"| {r['detector']} | {r['rows']:,} | {r['load_s']:.2f} | {r['wall_s']:.2f} | "
            f"{r['cpu_s']:.2f} | {r['captions_per_s']:,.0f} | {r['captions_per_cpu_s']:,.0f} | "
            f"{ratio:,.0f} | {en} |"
        )
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    names = args.detectors.split(",")
    real, texts = captions(args.rows)
    results = []
    for name in names:
        rows = texts[: args.slow_rows] if name in SLOW and args.slow_rows else texts
        if name.startswith("pair"):
            rows = [f"{text} {i}" for i, text in enumerate(rows)]
        results.append(time_detector(name, rows, args))
        print(f"{name}: {results[-1]['captions_per_s']:,.0f} captions/s", file=sys.stderr)
    shares = english_shares(names, real)
    print(table(results, shares))
    machine = f"{platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
    print(f"\nmachine: {machine}; captions: {SAMPLE.name} varied, {args.rows:,} rows")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "english": shares}, indent=1))


if __name__ == "__main__":
    main()
