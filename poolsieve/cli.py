"""The ``poolsieve`` console script.

    poolsieve demo                 generate the demo world (once) and run the main job on it:
                                   train the scorer, then per shard ingest, dedup, download the
                                   images from the demo server, embed, decontaminate
    poolsieve run --source DIR     register every parquet file of DIR as a shard and run the main
                                   job (--job ingest_job: ingest + dedup only)
    poolsieve why UID [--strategy S]  why a uid is in or out of each subset, and who decided
    poolsieve lineage STRATEGY     what produced a strategy's model (Dagster event log)
    poolsieve stale                what an edit made stale (filters observed first) and what to re-run
    poolsieve normalize-url URL..  print each URL's normalized form (the SQL macro's answer)

Runs are recorded in the Dagster instance at $DAGSTER_HOME (default: <repo>/.dagster_home), so
``dagster dev`` shows their materializations, metadata and lineage afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _resource(args, **overrides):
    from poolsieve.pipelines.resources import resource_from_env

    return resource_from_env(lake_dir=args.lake, duckdb_memory_limit=args.memory_limit, **overrides)


def cmd_demo(args) -> int:
    from poolsieve.audit.report import compare_with_truth, near_duplicate_rates
    from poolsieve.pipelines.resources import demo_world_dir
    from poolsieve.pipelines.runner import run_main_job
    from poolsieve_demo.world import TRUTH_FILE, write_demo_world

    world_dir = demo_world_dir(args.lake)
    if not (world_dir / TRUTH_FILE).exists():
        world = write_demo_world(
            world_dir, seed=args.seed, n_shards=args.shards, rows_per_shard=args.rows_per_shard
        )
        print(f"poolsieve: wrote the demo world ({len(world.shard_paths)} shards) to {world_dir}")
    resource = _resource(
        args, source="", scorer_samples=args.scorer_samples, train_samples=args.train_samples
    )
    status, counts = run_main_job(resource, args.job)
    truth = world_dir / TRUTH_FILE
    mismatches = compare_with_truth(counts, truth)
    print(
        "demo ground truth: " + ("all counts match" if not mismatches else f"MISMATCH {mismatches}")
    )
    if "decontamination" in counts:
        rates = near_duplicate_rates(Path(args.lake), truth)
        print(
            f"eval near-duplicates: {rates.recall:.1%} of {rates.near_duplicates} planted flagged, "
            f"{rates.false_flag_rate:.2%} of {rates.unrelated} others flagged"
        )
    print("browse the runs: make dev  (Dagster UI on http://127.0.0.1:3000)")
    return status or (1 if mismatches else 0)


def cmd_run(args) -> int:
    from poolsieve.pipelines.runner import run_main_job

    return run_main_job(_resource(args, source=args.source), args.job)[0]


def _registered_shards(instance) -> list[str]:
    from poolsieve.pipelines.partitions import SHARDS

    return instance.get_dynamic_partitions(SHARDS.name)


def cmd_why(args) -> int:
    import json

    from poolsieve.audit.why import explain_uid, format_explanation
    from poolsieve.lake import Lake
    from poolsieve.pipelines.runner import get_instance

    doc = explain_uid(Lake(Path(args.lake)), args.uid.strip().lower(), get_instance())
    if args.json:
        print(json.dumps(doc, indent=1, default=str))
    else:
        print(format_explanation(doc, args.strategy))
    return 0 if doc["occurrences"] else 1


def cmd_lineage(args) -> int:
    import json

    from poolsieve.audit.lineage import dataset_lineage, format_lineage
    from poolsieve.pipelines.partitions import STRATEGIES
    from poolsieve.pipelines.runner import get_instance

    if args.strategy not in STRATEGIES.get_partition_keys():
        print(
            f"unknown strategy {args.strategy!r}; known: {STRATEGIES.get_partition_keys()}",
            file=sys.stderr,
        )
        return 2
    instance = get_instance()
    doc = dataset_lineage(instance, args.strategy, _registered_shards(instance))
    print(json.dumps(doc, indent=1, default=str) if args.json else format_lineage(doc))
    return 0 if doc["steps"]["clip_model"] else 1


def cmd_stale(args) -> int:
    import json

    from poolsieve.audit.stale import format_report, observe_filters, stale_report
    from poolsieve.pipelines.definitions import build_defs
    from poolsieve.pipelines.runner import get_instance

    defs, instance = build_defs(_resource(args, source="")), get_instance()
    if not args.no_observe and not observe_filters(defs, instance):
        print("poolsieve: observing the filters failed (see the run in the UI)", file=sys.stderr)
        return 1
    report = stale_report(instance, defs)
    if args.json:
        doc = {
            "stale": {f"{a}[{p}]" if p else a: c for (a, p), c in report.stale.items()},
            "downstream": report.downstream,
            "to_rerun": report.to_rerun,
        }
        print(json.dumps(doc, indent=1))
    else:
        print(format_report(report))
    return 0


def cmd_normalize(args) -> int:
    from poolsieve.pool.urlnorm import normalize_urls

    for url, norm in zip(args.urls, normalize_urls(args.urls), strict=True):
        print(f"{url}\t{norm if norm is not None else '<unparseable>'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poolsieve", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lake_default = os.environ.get("POOLSIEVE_LAKE", str(Path.cwd() / "lake"))
    for name, fn, helptext in [
        ("demo", cmd_demo, "generate the demo pool and run the main job on it"),
        ("run", cmd_run, "run the main job on a pool source (folder or fsspec URL)"),
    ]:
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--lake", default=lake_default, help="lake folder (default: %(default)s)")
        p.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit")
        p.add_argument(
            "--job",
            choices=["all", "shard_job", "ingest_job"],
            default="all",
            help="all: the whole graph and the leaderboard; shard_job: the per-shard pipeline "
            "only; ingest_job: ingest + dedup only",
        )
        p.set_defaults(fn=fn)
        if name == "demo":
            _demo_options(p)
        else:
            p.add_argument("--source", required=True)
    p = sub.add_parser("why", help="why a uid is in or out of each subset (sample provenance)")
    p.add_argument("uid")
    p.add_argument("--strategy", default=None, help="only this strategy's decision")
    p.add_argument("--lake", default=lake_default)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_why)
    p = sub.add_parser("lineage", help="what produced a strategy's model (from the event log)")
    p.add_argument("strategy")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_lineage)
    p = sub.add_parser("stale", help="what a change made stale, and what to re-run")
    p.add_argument("--lake", default=lake_default)
    p.add_argument("--memory-limit", default="2GB", help=argparse.SUPPRESS)
    p.add_argument("--no-observe", action="store_true", help="don't re-observe the filters first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_stale)
    p = sub.add_parser("normalize-url", help="print normalized URLs")
    p.add_argument("urls", nargs="+")
    p.set_defaults(fn=cmd_normalize)
    return parser


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
