"""The ``poolsieve`` console script.

    poolsieve run --source DIR     register every parquet file of DIR as a shard and run the main
                                   job (--job ingest_job: ingest + dedup only)
    poolsieve why UID [--strategy S]  why a uid is in or out of each subset, and who decided
    poolsieve affected LISTS       what takedown/hash lists remove: the rows they match, the
                                   subsets that keep them and the models built on those
    poolsieve lineage STRATEGY     what produced a strategy's model (Dagster event log)
    poolsieve stale                what an edit made stale (filters observed first) and what to re-run
    poolsieve normalize-url URL..  print each URL's normalized form (the SQL macro's answer)

Other installed packages add commands through the ``poolsieve.commands`` entry-point group.
Runs are recorded in the Dagster instance at $DAGSTER_HOME (default: ./.dagster_home), so
``dagster dev`` shows their materializations, metadata and lineage afterwards.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

#: entry points of this group are functions that add a subcommand: fn(subparsers) -> None
COMMANDS_GROUP = "poolsieve.commands"


def _resources(args, **overrides):
    """The resources from the environment, with the command's lake options on top."""
    from poolsieve.pipelines.resources import resources_from_env

    lake = {"lake_dir": args.lake, "duckdb_memory_limit": args.memory_limit}
    return resources_from_env(lake={**lake, **overrides.pop("lake", {})}, **overrides)


def cmd_run(args) -> int:
    from poolsieve.pipelines.runner import run_main_job

    resources = _resources(args, lake={"source": args.source})
    return run_main_job(
        resources, args.job, replace_changed=args.replace_changed, force=args.force
    )[0]


def cmd_health(args) -> int:
    from poolsieve.pipelines.runner import run_health

    return run_health(_resources(args))


def _registered_shards(instance) -> list[str]:
    from poolsieve.pipelines.partitions import SHARDS

    return instance.get_dynamic_partitions(SHARDS.name)


def cmd_why(args) -> int:
    import json

    from poolsieve.audit.why import explain_uid, format_explanation
    from poolsieve.pipelines.resources import resources_from_env
    from poolsieve.pipelines.runner import get_instance

    lake = resources_from_env(lake={"lake_dir": args.lake}).lake.store  # a folder or a URL
    doc = explain_uid(lake, args.uid.strip().lower(), get_instance())
    if args.json:
        print(json.dumps(doc, indent=1, default=str))
    else:
        print(format_explanation(doc, args.strategy))
    return 0 if doc["occurrences"] else 1


def cmd_affected(args) -> int:
    import json

    from poolsieve.curate import takedown
    from poolsieve.duck import connect
    from poolsieve.pipelines.resources import resources_from_env
    from poolsieve.pool.registry import registered_shards, registry_listing

    lake = resources_from_env(lake={"lake_dir": args.lake}).lake.store  # a folder or a URL
    if not registry_listing(lake) and not lake.catalog.exists():  # a mistyped --lake: say so
        print(
            f"poolsieve affected: {lake.location} is not a lake (no url_registry)", file=sys.stderr
        )
        return 2
    shards = registered_shards(lake)
    try:  # a bad list, a bad distance, a shard whose rows are gone: said, not a traceback
        lists = takedown.load_lists(args.lists)
        with connect() as conn:
            matches = takedown.match_removals(conn, lake, lists, shards, args.phash_max_distance)
    except (ValueError, FileNotFoundError) as err:
        print(f"poolsieve affected: {err}", file=sys.stderr)
        return 2
    found = takedown.affected(lake, matches.column("uid").to_pylist())
    missing = takedown.shards_without_hashes(lake, shards)
    doc = takedown.report(lists, matches, found, shards, missing)
    print(json.dumps(doc, indent=1) if args.json else takedown.format_report(doc))
    return 0


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
    lineage = dataset_lineage(instance, args.strategy, _registered_shards(instance))
    text = json.dumps(lineage.to_dict(), indent=1, default=str)
    print(text if args.json else format_lineage(lineage))
    return 0 if lineage.steps["clip_model"] else 1


def cmd_stale(args) -> int:
    import json

    from poolsieve.audit.stale import format_report, observe_filters, stale_report
    from poolsieve.pipelines.definitions import build_defs
    from poolsieve.pipelines.instance import run_tags
    from poolsieve.pipelines.runner import console_run_config, get_instance

    profile = {} if args.profile is None else {"curation": {"param_profile": args.profile}}
    defs, instance = build_defs(_resources(args, **profile)), get_instance()
    observed = args.no_observe or observe_filters(defs, instance, console_run_config(), run_tags())
    if not observed:
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
    lake_default = default_lake()
    _added_commands(sub)
    p = sub.add_parser("run", help="run the main job on a pool source (folder or fsspec URL)")
    add_run_options(p)
    p.add_argument("--source", required=True)
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser(
        "health", help="re-check a sample of the downloaded URLs now: link rot, hash drift"
    )
    p.add_argument("--lake", default=lake_default)
    p.add_argument("--memory-limit", default="2GB", help=argparse.SUPPRESS)
    p.set_defaults(fn=cmd_health)
    p = sub.add_parser("why", help="why a uid is in or out of each subset (sample provenance)")
    p.add_argument("uid")
    p.add_argument("--strategy", default=None, help="only this strategy's decision")
    p.add_argument("--lake", default=lake_default)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_why)
    p = sub.add_parser(
        "affected", help="what takedown/hash lists remove, and the subsets and models they touch"
    )
    p.add_argument("lists", help="a list file (.csv or .parquet) or a folder of them")
    p.add_argument("--lake", default=lake_default)
    p.add_argument(
        "--phash-max-distance",
        type=int,
        default=4,
        help="bits within which an image's pHash matches a listed one (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_affected)
    p = sub.add_parser("lineage", help="what produced a strategy's model (from the event log)")
    p.add_argument("strategy")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_lineage)
    p = sub.add_parser("stale", help="what a change made stale, and what to re-run")
    p.add_argument("--lake", default=lake_default)
    p.add_argument("--memory-limit", default="2GB", help=argparse.SUPPRESS)
    p.add_argument("--no-observe", action="store_true", help="don't re-observe the filters first")
    p.add_argument(
        "--profile",
        default=None,
        help="the filters' parameter profile the runs used (default: $POOLSIEVE_PARAM_PROFILE)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_stale)
    sub.add_parser(  # main() hands its arguments to pipelines.dev before parsing
        "dev",
        help="dagster dev (every argument passed on, e.g. -w workspace.yaml) that stops on SIGTERM",
        add_help=False,
    )
    p = sub.add_parser("normalize-url", help="print normalized URLs")
    p.add_argument("urls", nargs="+")
    p.set_defaults(fn=cmd_normalize)
    for p in [parser, *sub.choices.values()]:
        _verbose_option(p, top=p is parser)
    return parser


def _verbose_option(p: argparse.ArgumentParser, top: bool) -> None:
    """``-v`` before or after the command (a command's own default must not reset the top's)."""
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show the libraries' debug logs (Python logging and Dagster's run events)",
    )


def _configure_logging(verbose: bool) -> None:
    """Libraries log warnings only (Python's default); ``-v`` puts Python logging at DEBUG, which
    also turns Dagster's console logger up for in-process runs (runner.console_run_config)."""
    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")


def default_lake() -> str:
    return os.environ.get("POOLSIEVE_LAKE", str(Path.cwd() / "lake"))


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of a command that runs the main job: --lake, --memory-limit, --job."""
    p.add_argument(
        "--lake", default=default_lake(), help="lake folder or fsspec URL (default: %(default)s)"
    )
    p.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit")
    p.add_argument(
        "--job",
        choices=["all", "shard_job", "ingest_job"],
        default="all",
        help="all: the whole graph and the leaderboard; shard_job: the per-shard pipeline "
        "only; ingest_job: ingest + dedup only",
    )
    p.add_argument(
        "--replace-changed",
        action="store_true",
        help="re-ingest a shard whose source file's content changed since it was ingested "
        "(without it such a shard fails, naming the file: its rows are not silently replaced)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="run every step for every shard and strategy, even those already materialized and "
        "up to date (by default a run skips them: only new or changed files, stale assets and "
        "what follows them run)",
    )


def _added_commands(sub) -> None:
    """The subcommands other installed packages add (entry-point group COMMANDS_GROUP); one
    that fails to import is reported and left out, so the others still work."""
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            add_command = entry.load()
        except ImportError as err:
            print(f"poolsieve: command {entry.name!r} unavailable: {err}", file=sys.stderr)
            continue
        add_command(sub)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dev"]:  # dagster dev's own options (-h, -m, -w...) pass through unparsed
        from poolsieve.pipelines.dev import main as dev

        dev(argv[1:])
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
