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
import contextlib
import os
import sys
import time
from pathlib import Path

from poolsieve.paths import REPO_ROOT


def _instance():
    import dagster as dg

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text((REPO_ROOT / "pipelines" / "dagster.yaml").read_text())
    return dg.DagsterInstance.get()


def run_main_job(resource, job_name: str = "all") -> tuple[int, dict]:
    """Register the source's files as shards and run the main job on them, in pool order.

    ``all`` (the default): the scorer (once), then ``shard_job`` per shard (ingest, dedup,
    download, embed, decontaminate), then the DataComp loop (pool_features; per strategy subset,
    train shards, CLIP training, evaluation; the leaderboard). ``shard_job`` stops after the
    shards, ``ingest_job`` runs ingest + dedup only. On the demo world the image server is kept
    up, shared, for the whole run. Returns the exit status and poolsieve.report.lake_counts."""
    from pipelines.definitions import build_defs
    from pipelines.partitions import SHARDS
    from poolsieve.report import lake_counts, lake_summary
    from poolsieve.sources import scan_source

    defs, instance = build_defs(resource), _instance()
    listing = scan_source(resource.source_url)
    known = instance.get_dynamic_partitions(SHARDS.name)
    instance.add_dynamic_partitions(
        SHARDS.name, [f.key for f in listing.files if f.key not in known]
    )
    print(
        f"poolsieve: {len(listing.files)} shards in {resource.source_url}; lake {resource.lake_dir}"
    )
    if job_name != "ingest_job" and not _ensure_scorer(defs, instance, resource):
        return 1, lake_counts(Path(resource.lake_dir))
    shard_job = defs.resolve_job_def("ingest_job" if job_name == "ingest_job" else "shard_job")
    with _demo_server(resource):
        keys = [k for k in instance.get_dynamic_partitions(SHARDS.name) if k in listing.by_key()]
        failed = _run_each(shard_job, instance, keys)
    counts = lake_counts(Path(resource.lake_dir))
    print(lake_summary(counts))
    if failed:
        print(f"poolsieve: {len(failed)} shard(s) failed: {failed}", file=sys.stderr)
    elif job_name == "all":
        failed = _curate(defs, instance, resource)
    return (1 if failed else 0), counts


def _curate(defs, instance, resource) -> list[str]:
    """pool_features, then per strategy subset -> train_shards -> clip_model -> evaluation, then
    the leaderboard; returns what failed."""
    from pipelines.partitions import STRATEGIES
    from poolsieve.curate.leaderboard import build_leaderboard

    if not _run_one(defs.resolve_job_def("features_job"), instance, None):
        return ["pool_features"]
    print(f"poolsieve: training and evaluating {len(STRATEGIES.get_partition_keys())} strategies")
    job = defs.resolve_job_def("strategy_job")
    failed = _run_each(job, instance, STRATEGIES.get_partition_keys())
    if not _run_one(defs.resolve_job_def("leaderboard_job"), instance, None):
        return [*failed, "leaderboard"]
    board = build_leaderboard(resource.lake, STRATEGIES.get_partition_keys())
    print("\nleaderboard (same samples seen and seed for every strategy)\n" + board.markdown())
    return failed


def _ensure_scorer(defs, instance, resource) -> bool:
    from poolsieve.scorer import scorer_path

    if scorer_path(resource.lake).is_file():
        return True
    print("poolsieve: no scorer yet; materializing it (the demo trains a tiny CLIP: a few minutes)")
    return _run_one(defs.resolve_job_def("scorer_job"), instance, None)


def _demo_server(resource):
    """The shared demo image server for the whole run, when the pool is the demo world."""
    from poolsieve.demo.shared import shared_demo_server
    from poolsieve.demo.world import load_demo_world

    if resource.demo_world is None:
        return contextlib.nullcontext()
    world = load_demo_world(resource.demo_world)
    return shared_demo_server(world.root, world.port, Path(resource.lake_dir) / "locks")


_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _run_each(job, instance, keys: list[str]) -> list[str]:
    """Run ``job`` per partition key with a progress line each ([i/n], a bar, elapsed, ETA); the
    keys that failed."""
    failed, start = [], time.monotonic()
    for i, key in enumerate(keys, start=1):
        if not _run_one(job, instance, key, f"[{i}/{len(keys)}]"):
            failed.append(key)
        elapsed = time.monotonic() - start
        eta = elapsed / i * (len(keys) - i)
        if i < len(keys):
            print(f"  {'':<8}{job.name} {progress_bar(i, len(keys))} {i}/{len(keys)} done "
                  f"in {elapsed:.0f}s, ETA {eta:.0f}s")  # fmt: skip
    return failed


def progress_bar(done: int, total: int, width: int = 20) -> str:
    """``[#####---------------]``: a plain-text bar (readable in logs and CI, no terminal tricks)."""
    filled = round(width * done / max(total, 1))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _run_one(job, instance, key: str | None, step: str = "") -> bool:
    start = time.monotonic()
    result = job.execute_in_process(
        partition_key=key, instance=instance, raise_on_error=False, run_config=_QUIET
    )
    status = "ok" if result.success else "FAILED"
    print(f"  {step:<8}{key or job.name:<40} {status:>6}  {time.monotonic() - start:6.1f}s")
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                print(f"    {event.event_specific_data.error.message.strip()}", file=sys.stderr)
    return result.success


def _resource(args, **overrides):
    from pipelines.resources import resource_from_env

    return resource_from_env(lake_dir=args.lake, duckdb_memory_limit=args.memory_limit, **overrides)


def cmd_demo(args) -> int:
    from pipelines.resources import demo_world_dir
    from poolsieve.demo.world import TRUTH_FILE, write_demo_world
    from poolsieve.report import compare_with_truth, near_duplicate_rates

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
    return run_main_job(_resource(args, source=args.source), args.job)[0]


def _registered_shards(instance) -> list[str]:
    from pipelines.partitions import SHARDS

    return instance.get_dynamic_partitions(SHARDS.name)


def cmd_why(args) -> int:
    import json

    from poolsieve.audit import explain_uid, format_explanation
    from poolsieve.lake import Lake

    doc = explain_uid(Lake(Path(args.lake)), args.uid.strip().lower(), _instance())
    if args.json:
        print(json.dumps(doc, indent=1, default=str))
    else:
        print(format_explanation(doc, args.strategy))
    return 0 if doc["occurrences"] else 1


def cmd_lineage(args) -> int:
    import json

    from pipelines.partitions import STRATEGIES
    from poolsieve.audit import dataset_lineage, format_lineage

    if args.strategy not in STRATEGIES.get_partition_keys():
        print(f"unknown strategy {args.strategy!r}; known: {STRATEGIES.get_partition_keys()}",
              file=sys.stderr)  # fmt: skip
        return 2
    instance = _instance()
    doc = dataset_lineage(instance, args.strategy, _registered_shards(instance))
    print(json.dumps(doc, indent=1, default=str) if args.json else format_lineage(doc))
    return 0 if doc["steps"]["clip_model"] else 1


def cmd_stale(args) -> int:
    import json

    from pipelines.definitions import build_defs
    from poolsieve.staleness import format_report, observe_filters, stale_report

    defs, instance = build_defs(_resource(args, source="")), _instance()
    if not args.no_observe and not observe_filters(defs, instance):
        print("poolsieve: observing the filters failed (see the run in the UI)", file=sys.stderr)
        return 1
    report = stale_report(instance, defs)
    if args.json:
        doc = {"stale": {f"{a}[{p}]" if p else a: c for (a, p), c in report.stale.items()},
               "downstream": report.downstream, "to_rerun": report.to_rerun}  # fmt: skip
        print(json.dumps(doc, indent=1))
    else:
        print(format_report(report))
    return 0


def cmd_normalize(args) -> int:
    from poolsieve.urlnorm import normalize_urls

    for url, norm in zip(args.urls, normalize_urls(args.urls), strict=True):
        print(f"{url}\t{norm if norm is not None else '<unparseable>'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poolsieve", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lake_default = os.environ.get("POOLSIEVE_LAKE", str(REPO_ROOT / "lake"))
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
