"""The ``poolsieve`` console script.

    poolsieve demo                 generate the demo pool (once) and run the main job on it
    poolsieve run --source DIR     register every parquet file of DIR as a shard and run the main job
    poolsieve normalize-url URL..  print each URL's normalized form (the SQL macro's answer)

Runs are recorded in the Dagster instance at $DAGSTER_HOME (default: <repo>/.dagster_home), so
``dagster dev`` shows their materializations, metadata and lineage afterwards.
"""

from __future__ import annotations

import argparse
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


def run_main_job(source: str, lake_dir: str, memory_limit: str = "2GB") -> tuple[int, dict]:
    """Register the source's files as shards and ingest + dedup each, in pool order.

    Returns the exit status and the lake's counts (poolsieve.report.lake_counts)."""
    from pipelines.definitions import build_defs
    from pipelines.partitions import SHARDS
    from pipelines.resources import PoolsieveResource
    from poolsieve.report import lake_counts, lake_summary
    from poolsieve.sources import scan_source

    resource = PoolsieveResource(lake_dir=lake_dir, source=source, duckdb_memory_limit=memory_limit)
    job = build_defs(resource).resolve_job_def("ingest_job")
    instance = _instance()
    listing = scan_source(source)
    known = instance.get_dynamic_partitions(SHARDS.name)
    instance.add_dynamic_partitions(
        SHARDS.name, [f.key for f in listing.files if f.key not in known]
    )
    print(f"poolsieve: {len(listing.files)} shards in {source}; lake {lake_dir}")
    failed = [
        key
        for key in instance.get_dynamic_partitions(SHARDS.name)
        if key in listing.by_key() and not _run_one(job, instance, key)
    ]
    counts = lake_counts(Path(lake_dir))
    print(lake_summary(counts))
    if failed:
        print(f"poolsieve: {len(failed)} shard(s) failed: {failed}", file=sys.stderr)
    return (1 if failed else 0), counts


_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _run_one(job, instance, key: str) -> bool:
    start = time.monotonic()
    result = job.execute_in_process(
        partition_key=key, instance=instance, raise_on_error=False, run_config=_QUIET
    )
    status = "ok" if result.success else "FAILED"
    print(f"  {key:<40} {status:>6}  {time.monotonic() - start:6.1f}s")
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                print(f"    {event.event_specific_data.error.message.strip()}", file=sys.stderr)
    return result.success


def cmd_demo(args) -> int:
    from poolsieve.demo.pool import write_demo_pool
    from poolsieve.report import compare_with_truth

    source = Path(args.lake) / "demo" / "source"
    truth = Path(args.lake) / "demo" / "demo_truth.json"
    if not any(source.glob("*.parquet")) or not truth.exists():
        pool = write_demo_pool(source, truth, seed=args.seed)
        print(f"poolsieve: wrote demo pool ({len(pool.shard_paths)} shards) to {source}")
    status, counts = run_main_job(str(source), args.lake, args.memory_limit)
    mismatches = compare_with_truth(counts, truth)
    print(
        "demo ground truth: " + ("all counts match" if not mismatches else f"MISMATCH {mismatches}")
    )
    print("browse the runs: make dev  (Dagster UI on http://127.0.0.1:3000)")
    return status or (1 if mismatches else 0)


def cmd_run(args) -> int:
    return run_main_job(args.source, args.lake, args.memory_limit)[0]


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
        p.set_defaults(fn=fn)
        if name == "demo":
            p.add_argument("--seed", type=int, default=0)
        else:
            p.add_argument("--source", required=True)
    p = sub.add_parser("normalize-url", help="print normalized URLs")
    p.add_argument("urls", nargs="+")
    p.set_defaults(fn=cmd_normalize)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
