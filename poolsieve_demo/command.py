"""``poolsieve demo``: generate the demo world (once) and run the main job on it.

Train the scorer, then per shard ingest, dedup, download the images from the demo server, embed,
decontaminate; then the strategies and the leaderboard. Afterwards the lake's counts are compared
with the world's truth. poolsieve's CLI finds this command through the ``poolsieve.commands``
entry-point group (pyproject.toml).
"""

from __future__ import annotations

import argparse
import os
import sys

from poolsieve.cli import add_run_options
from poolsieve_demo.server import DEFAULT_PORT

LOCATION = "poolsieve_demo.definitions"  # the code location the demo's backfills name


def add_command(sub) -> None:
    """Add ``demo`` to the ``poolsieve`` subcommands."""
    p = sub.add_parser("demo", help="generate the demo pool and run the main job on it")
    add_run_options(p)
    p.set_defaults(fn=run_demo)
    _demo_options(p)


def _demo_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="the demo world's seed")
    p.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"the demo image server's port on 127.0.0.1, written into a new world's URLs "
        f"(default {DEFAULT_PORT}); an existing world keeps its own",
    )
    p.add_argument("--shards", type=int, default=4, help="demo pool shards (new world only)")
    p.add_argument("--rows-per-shard", type=int, default=500, help="(new world only)")
    p.add_argument(
        "--scorer-samples", type=int, default=0, help="scorer training budget (0: tiny-cpu's)"
    )
    p.add_argument(
        "--no-aging",
        action="store_true",
        help="skip pool health: the re-checks before and after the world ages (epoch 2)",
    )
    p.add_argument(
        "--train-samples",
        type=int,
        default=0,
        help="samples seen per strategy's CLIP, the same for all (0: tiny-cpu's 12,800)",
    )


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text}")
    return port


def run_demo(args) -> int:
    """The world (written once per lake), the main job on it, and the comparison with its truth;
    exit status 1 when a run failed or a count differs from the truth."""
    from poolsieve.pipelines.runner import run_main_job

    from poolsieve_demo.aging import serve_epoch
    from poolsieve_demo.resources import demo_resources, world_dir
    from poolsieve_demo.world import TRUTH_FILE

    world = world_dir(args.lake, os.environ.get("POOLSIEVE_LAKE_CACHE"))
    problem = _port_problem(args, world)
    if problem is not None:
        print(f"poolsieve demo: {problem}", file=sys.stderr)
        return 1
    if not (world / TRUTH_FILE).exists():
        _write_world(args, world)
    resources = demo_resources(
        args.lake,
        lake={"duckdb_memory_limit": args.memory_limit},
        scorer={"samples": args.scorer_samples},
        training={"samples": args.train_samples},
    )
    serve_epoch(world, 1)  # the pool as it was built: what the truth's downloads expect
    status, counts = run_main_job(resources, args.job, force=args.force, location=LOCATION)
    if status == 0 and args.job == "all" and not args.no_aging:
        status = _age_and_recheck(resources, world)
    mismatches = _report_truth(counts, args.lake, world / TRUTH_FILE)
    print("browse the runs: make dev  (Dagster UI on http://127.0.0.1:3000)")
    return status or (1 if mismatches else 0)


def _age_and_recheck(resources, world) -> int:
    """Pool health as a scheduled refresh would see it: every downloaded URL re-checked at
    epoch 1 (all alive), the world aged (aging.age_world: links die, images are re-encoded or
    replaced), and checked again; the exit status."""
    from poolsieve.pipelines.runner import run_health

    from poolsieve_demo.aging import age_world

    print("poolsieve demo: pool health at epoch 1 (as downloaded)")
    status = run_health(resources, LOCATION)
    record = age_world(world)
    sizes = ", ".join(f"{len(record[k])} {k}" for k in ("dead", "reencoded", "replaced"))
    print(f"poolsieve demo: the world aged to epoch {record['epoch']} ({sizes}); checked again")
    return status or run_health(resources, LOCATION)


def _port_problem(args, world) -> str | None:
    """Why the world's image server could not serve its port (checked before any work): the
    port is written into the world's URLs, so a busy one would fail every download later."""
    from poolsieve_demo.shared import port_problem
    from poolsieve_demo.world import TRUTH_FILE, load_demo_world

    existing = (world / TRUTH_FILE).exists()
    port = load_demo_world(world).port if existing else (args.port or DEFAULT_PORT)
    keeps = f"the demo world in {world} names port {port} in its URLs"
    if existing and args.port not in (None, port):
        return f"{keeps}; --port applies to a new world: use another --lake, or delete {world}"
    problem = port_problem(world, port)
    if problem is None:
        return None
    change = f" ({keeps}: for another port, use another --lake or delete {world})"
    return (
        f"the demo image server needs port {port}, but {problem}. Stop that process, or choose "
        f"another port with --port N{change if existing else ''}"
    )


def _write_world(args, world) -> None:
    from poolsieve_demo.world import write_demo_world

    base_url = f"http://127.0.0.1:{args.port or DEFAULT_PORT}"
    written = write_demo_world(
        world,
        seed=args.seed,
        base_url=base_url,
        n_shards=args.shards,
        rows_per_shard=args.rows_per_shard,
    )
    print(f"poolsieve: wrote the demo world ({len(written.shard_paths)} shards) to {world}")


def _report_truth(counts: dict, lake_dir: str, truth) -> dict:
    """Print how the lake's counts, decontamination, pool near-duplicate drops, takedown
    removals and opted-out downloads (when the lake has them) compare with the truth; the
    mismatches."""
    from pathlib import Path

    from poolsieve_demo.compare import (
        aging_lines,
        aging_rates,
        compare_with_truth,
        image_duplicate_lines,
        image_duplicate_rates,
        near_duplicate_rates,
        optout_lines,
        optout_rates,
        removal_lines,
        removal_rates,
    )

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
    image_rates = image_duplicate_rates(Path(lake_dir), truth)
    for line in image_duplicate_lines(image_rates or {}):
        print(line)
    for line in removal_lines(removal_rates(Path(lake_dir), truth)):
        print(line)
    for line in optout_lines(optout_rates(Path(lake_dir), truth)):
        print(line)
    for line in aging_lines(aging_rates(Path(lake_dir), truth)):
        print(line)
    return mismatches
