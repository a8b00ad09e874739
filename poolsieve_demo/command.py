"""``poolsieve demo``: generate the demo world (once) and run the main job on it.

Train the scorer, then per shard ingest, dedup, download the images from the demo server, embed,
decontaminate; then the strategies and the leaderboard. Afterwards the lake's counts are compared
with the world's truth. poolsieve's CLI finds this command through the ``poolsieve.commands``
entry-point group (pyproject.toml).
"""

from __future__ import annotations

import argparse

from poolsieve.cli import add_run_options


def add_command(sub) -> None:
    """Add ``demo`` to the ``poolsieve`` subcommands."""
    p = sub.add_parser("demo", help="generate the demo pool and run the main job on it")
    add_run_options(p)
    p.set_defaults(fn=run_demo)
    _demo_options(p)


def _demo_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="the demo world's seed")
    p.add_argument("--shards", type=int, default=4, help="demo pool shards (new world only)")
    p.add_argument("--rows-per-shard", type=int, default=500, help="(new world only)")
    p.add_argument(
        "--scorer-samples", type=int, default=0, help="scorer training budget (0: tiny-cpu's)"
    )
    p.add_argument(
        "--train-samples",
        type=int,
        default=0,
        help="samples seen per strategy's CLIP, the same for all (0: tiny-cpu's 12,800)",
    )


def run_demo(args) -> int:
    """The world (written once per lake), the main job on it, and the comparison with its truth;
    exit status 1 when a run failed or a count differs from the truth."""
    from poolsieve.pipelines.runner import run_main_job

    from poolsieve_demo.resources import demo_resources, world_dir
    from poolsieve_demo.world import TRUTH_FILE

    world = world_dir(args.lake)
    if not (world / TRUTH_FILE).exists():
        _write_world(args, world)
    resources = demo_resources(
        args.lake,
        lake={"duckdb_memory_limit": args.memory_limit},
        scorer={"samples": args.scorer_samples},
        training={"samples": args.train_samples},
    )
    status, counts = run_main_job(resources, args.job)
    mismatches = _report_truth(counts, args.lake, world / TRUTH_FILE)
    print("browse the runs: make dev  (Dagster UI on http://127.0.0.1:3000)")
    return status or (1 if mismatches else 0)


def _write_world(args, world) -> None:
    from poolsieve_demo.world import write_demo_world

    written = write_demo_world(
        world, seed=args.seed, n_shards=args.shards, rows_per_shard=args.rows_per_shard
    )
    print(f"poolsieve: wrote the demo world ({len(written.shard_paths)} shards) to {world}")


def _report_truth(counts: dict, lake_dir: str, truth) -> dict:
    """Print how the lake's counts and decontamination compare with the truth; the mismatches."""
    from pathlib import Path

    from poolsieve_demo.compare import compare_with_truth, near_duplicate_rates

    mismatches = compare_with_truth(counts, truth)
    print(
        "demo ground truth: " + ("all counts match" if not mismatches else f"MISMATCH {mismatches}")
    )
    if "decontamination" in counts:
        rates = near_duplicate_rates(Path(lake_dir), truth)
        print(
            f"eval near-duplicates: {rates.recall:.1%} of {rates.near_duplicates} planted flagged, "
            f"{rates.false_flag_rate:.2%} of {rates.unrelated} others flagged"
        )
    return mismatches
