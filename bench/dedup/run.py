"""URL-dedup benchmark: poolsieve vs polars vs pandas vs a DuckDB scan, plus incremental poolsieve
and the single-file URL registry poolsieve had before the bucket-partitioned one.

    .venv/bin/python bench/dedup/run.py [--rows N] [--shard-rows N] [--memory-limit 2GB]
        [--skip pandas,polars] [--only poolsieve] [--data-dir DIR] [--timeout 900]
        [--registry-partitions 1,16]

Each contender runs in a fresh subprocess (contenders.py); its peak RSS is the larger of the
child's own ``VmHWM`` and psutil samples of its process tree. (wait4's ``ru_maxrss`` is not used:
it counts the parent's RSS at fork time.) Results: a table on stdout and
``<out-dir>/results-<rows>.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import gen  # noqa: E402

ORDER = [
    "poolsieve",
    "incremental",
    "single_file",
    "single_file_incremental",
    "polars",
    "pandas",
    "scan",
]
#: contenders that take --registry-partitions (one run per value, named "NAME@PARTITIONS")
PARTITIONED = ("poolsieve", "incremental")
#: the bucket-partitioned registry's contender -> the single-file registry's counterpart
SINGLE_FILE = {"poolsieve": "single_file", "incremental": "single_file_incremental"}
DEFAULT_PARTITIONS = 16  # poolsieve/pool/registry.py
TARGETS = {  # ratio name -> (description, numerator, denominator, comparison, bound)
    "polars_vs_poolsieve": ("polars wall / poolsieve wall", "polars", "poolsieve", ">=", 1.5),
    "pandas_vs_poolsieve": ("pandas wall / poolsieve wall", "pandas", "poolsieve", ">=", 1.5),
    "poolsieve_vs_scan": ("poolsieve wall / scan wall", "poolsieve", "scan", "<=", 5.0),
    "incremental_vs_scratch": (
        "incremental / from-scratch wall",
        "incremental",
        "poolsieve",
        "<=",
        0.20,
    ),
}
RSS_TARGET_MB = 3 * 1024
CODE_GLOBS = ["poolsieve/**/*.py", "dbt_like_sql/**/*.sql", "dbt_like_sql/**/*.yml"]
SAMPLE_S = 0.05


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--shard-rows",
        type=int,
        default=None,
        help="rows per shard (default: 1,000,000, or rows/10 when smaller)",
    )
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    parser.add_argument("--skip", default="", help="comma-separated contenders to leave out")
    parser.add_argument("--only", default="", help="comma-separated contenders to run")
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--out-dir", type=Path, default=HERE / "out")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per contender")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per contender; the fastest is reported (all walls kept)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each run, wait up to this long for other CPU load < 20%%",
    )
    parser.add_argument(
        "--code-ref",
        default="HEAD",
        help="git commit of poolsieve to benchmark (a snapshot of poolsieve/ and dbt_like_sql/ "
        "under <out-dir>/code, so edits made meanwhile do not leak in); 'worktree': the checkout",
    )
    parser.add_argument(
        "--registry-partitions",
        default="",
        help="comma-separated registry bucket groups (powers of two) for poolsieve and "
        "incremental, each run as NAME@N (e.g. 1,16); default: the registry's default",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-work", action="store_true", help="keep lakes/temp files")
    args = parser.parse_args(argv)
    args.shard_rows = args.shard_rows or min(1_000_000, max(1, args.rows // 10))
    return args


def selected(args: argparse.Namespace) -> list[str]:
    only = [n for n in args.only.split(",") if n]
    skip = {n for n in args.skip.split(",") if n}
    unknown = (set(only) | skip) - set(ORDER)
    if unknown:
        raise SystemExit(f"unknown contenders {sorted(unknown)}; known: {ORDER}")
    names = [n for n in ORDER if (not only or n in only) and n not in skip]
    groups = [int(g) for g in args.registry_partitions.split(",") if g]
    if not groups:
        return names
    return _expand(names, groups)


def _expand(names: list[str], groups: list[int]) -> list[str]:
    """Each PARTITIONED name once per registry partitions value ("incremental@16")."""
    out = []
    for name in names:
        out += [f"{name}@{g}" for g in groups] if name in PARTITIONED else [name]
    return out


def base(name: str) -> str:
    """The contender function of a run name ("incremental@16" -> "incremental")."""
    return name.split("@")[0]


# ---------------------------------------------------------------- running one contender


def _tree_rss(proc: psutil.Process) -> int:
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _busy_cpu_s() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def wait_quiet(max_wait_s: float, busy_pct: float = 20.0) -> float:
    """Wait (at most ``max_wait_s``) until other processes use < ``busy_pct`` % of the CPUs."""
    started = time.monotonic()
    while time.monotonic() - started < max_wait_s:
        if psutil.cpu_percent(interval=1.0) < busy_pct:
            break
    return round(time.monotonic() - started, 1)


def _watch(child: subprocess.Popen, timeout: float) -> tuple[int | None, float, list]:
    """Poll the child until it exits or times out: (exit code, None on timeout; the child's CPU
    seconds; RSS samples)."""
    proc, samples, deadline = psutil.Process(child.pid), [], time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return child.returncode, usage.ru_utime + usage.ru_stime, samples
        if time.monotonic() > deadline:
            os.killpg(child.pid, signal.SIGKILL)
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            return None, usage.ru_utime + usage.ru_stime, samples
        samples.append((time.time(), _tree_rss(proc)))
        time.sleep(SAMPLE_S)


def _git(*cmd: str, stdout=subprocess.PIPE) -> str:
    done = subprocess.run(["git", *cmd], cwd=REPO, stdout=stdout, text=True, check=True)
    return done.stdout or ""


def code_snapshot(ref: str, out_dir: Path) -> tuple[Path, str]:
    """(folder holding poolsieve/ and dbt_like_sql/, description) for ``ref``: a git-archive
    snapshot of that commit, or the live checkout for 'worktree'."""
    if ref == "worktree":
        dirty = _git("status", "--porcelain", "--", "poolsieve", "dbt_like_sql").strip()
        head = _git("rev-parse", "--short", "HEAD").strip()
        return REPO, f"worktree at {head}" + (" + uncommitted changes" if dirty else "")
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    dest = out_dir / "code" / sha[:12]
    if not dest.exists():
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with subprocess.Popen(
            ["git", "archive", sha, "poolsieve", "dbt_like_sql"], cwd=REPO, stdout=subprocess.PIPE
        ) as archive:
            subprocess.run(["tar", "-x", "-C", str(tmp)], stdin=archive.stdout, check=True)
        tmp.rename(dest)
    return dest, f"commit {sha[:12]} ({ref})"


def code_fingerprint(root: Path) -> str:
    """Hash of poolsieve's Python and SQL under ``root`` (to see if it changed between runs)."""
    digest = hashlib.sha256()
    for path in sorted(p for pattern in CODE_GLOBS for p in root.glob(pattern)):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def run_contender(name: str, cfg: dict, timeout: float) -> dict:
    """Run one contender in a fresh process; its result plus status, peak RSS and the CPU share
    other processes took meanwhile (``other_cpu_pct``: 100 = every core busy elsewhere)."""
    cfg_path = Path(cfg["work_dir"]).with_suffix(".config.json")
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(json.dumps(cfg))
    Path(cfg["result_path"]).unlink(missing_ok=True)
    print(f"[run] {name} ...", flush=True)
    root = Path(cfg["code_root"])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    code, busy0, wall0 = code_fingerprint(root), _busy_cpu_s(), time.monotonic()
    child = subprocess.Popen(
        [sys.executable, str(HERE / "contenders.py"), name, str(cfg_path)],
        start_new_session=True,
        env=env,
    )
    exit_code, child_cpu, samples = _watch(child, timeout)
    other = max(0.0, _busy_cpu_s() - busy0 - child_cpu)
    result = _read_result(cfg["result_path"], exit_code)
    result["code_fingerprint"] = code
    result["process_cpu_s"] = round(child_cpu, 2)  # whole process, setup included
    result["other_cpu_pct"] = round(100 * other / ((time.monotonic() - wall0) * os.cpu_count()))
    sampled = max((r for _, r in samples), default=0) // 2**20
    result["peak_rss_mb"] = max(
        sampled, result.get("setup_peak_rss_mb", 0), result.get("vm_hwm_mb", 0)
    )
    if "window" in result:
        t0, t1 = result["window"]
        timed = max((r for t, r in samples if t0 <= t <= t1), default=0) // 2**20
        result["peak_rss_timed_mb"] = max(timed, result["vm_hwm_mb"])
    print(f"[run] {name}: {_one_line(result)}", flush=True)
    return result


def run_best_of(name: str, args: argparse.Namespace, manifest: dict) -> dict:
    """``args.repeat`` runs of one contender; the fastest successful one, with every wall."""
    runs = []
    for _ in range(args.repeat):
        waited = wait_quiet(args.quiet_wait)
        runs.append(run_contender(name, contender_config(name, args, manifest), args.timeout))
        runs[-1]["waited_for_quiet_s"] = waited
        if runs[-1]["status"] != "ok":
            break
    ok = [r for r in runs if r["status"] == "ok"]
    best = min(ok, key=lambda r: r["wall_s"]) if ok else runs[-1]
    return {
        **best,
        "all_walls_s": [r.get("wall_s", r["status"]) for r in runs],
        "code_fingerprints": sorted({r["code_fingerprint"] for r in runs}),
    }


def _read_result(path: str, code: int | None) -> dict:
    if code is None:
        return {"status": "timeout"}
    if code != 0 or not Path(path).exists():
        return {"status": f"failed (exit {code})"}
    return {"status": "ok", **json.loads(Path(path).read_text())}


def _one_line(result: dict) -> str:
    if result["status"] != "ok":
        return f"{result['status']}, peak RSS {result['peak_rss_mb']} MB"
    return (
        f"{result['wall_s']} s, kept {result.get('kept')}, "
        f"peak RSS {result['peak_rss_mb']} MB, phases {result.get('phases', {})}"
    )


def contender_config(name: str, args: argparse.Namespace, manifest: dict) -> dict:
    work = args.out_dir / "work" / name.replace("@", "-")
    groups = int(name.split("@")[1]) if "@" in name else None
    return {
        "registry_partitions": groups,
        "code_root": str(args.code_root),
        "shards": manifest["shards"],
        "memory_limit": args.memory_limit,
        "threads": args.threads,
        "work_dir": str(work),
        "result_path": str(work.with_suffix(".result.json")),
    }


# ---------------------------------------------------------------- checks and report


def normalization_check(manifest: dict, code_root: Path) -> dict:
    """polars/pandas ports vs the SQL macro, row by row, on shard 0 plus hand-written cases."""
    import duckdb
    from urlnorm_df import EDGE_CASES, check_against_duckdb

    macros = sorted((code_root / "dbt_like_sql" / "macros").glob("*.sql"))  # as SqlProject does
    path = manifest["shards"][0]["path"]
    urls = [r[0] for r in duckdb.sql(f"SELECT url FROM read_parquet('{path}')").fetchall()]
    return check_against_duckdb(EDGE_CASES + urls, "\n".join(p.read_text() for p in macros))


def agreement_checks(manifest: dict, results: dict, norm: dict | None) -> list[tuple[str, bool]]:
    ok = {n: r for n, r in results.items() if r["status"] == "ok"}
    expected = manifest["expected_distinct"]
    checks = [
        (f"{n} kept {r['kept']:,} == planted distinct URLs {expected:,}", r["kept"] == expected)
        for n, r in ok.items()
        if base(n) in ("poolsieve", "single_file", "polars", "pandas")
    ]
    last = manifest["shards"][-1]
    for name, r in ok.items():
        if base(name) not in ("incremental", "single_file_incremental"):
            continue
        kept = r["kept"]
        checks.append(
            (
                f"{name} kept {kept:,} == planted new URLs in {last['key']} "
                f"{last['expected_distinct_new']:,}",
                kept == last["expected_distinct_new"],
            )
        )
        for scratch_name, s in ok.items():
            if base(scratch_name) in ("poolsieve", "single_file"):
                scratch = s["kept_per_shard"][last["key"]]
                checks.append(
                    (
                        f"{name} kept == {scratch_name} kept for {last['key']} ({scratch:,})",
                        kept == scratch,
                    )
                )
    if "scan" in ok:
        rows = sum(s["rows"] for s in manifest["shards"])
        checks.append(
            (
                f"scan read {ok['scan']['urls_read']:,} urls == {rows:,} rows",
                ok["scan"]["urls_read"] == rows,
            )
        )
    codes = {
        c
        for n, r in ok.items()
        if base(n) in ("poolsieve", "incremental")
        for c in r.get("code_fingerprints", [])
    }
    if codes:
        checks.append(
            (
                f"poolsieve code unchanged between its runs (fingerprints {sorted(codes)})",
                len(codes) == 1,
            )
        )
    for port, res in (norm or {}).items():
        checks.append(
            (
                f"{port} normalization == SQL macro on {res['rows']:,} URLs "
                f"({res['mismatches']} mismatches)",
                res["mismatches"] == 0,
            )
        )
    return checks


def ratios(results: dict) -> dict:
    out = {}
    for key, (desc, num, den, cmp, bound) in TARGETS.items():
        a, b = _result(results, num), _result(results, den)
        if a.get("status") != "ok" or b.get("status") != "ok":
            status = a.get("status") if a.get("status") not in (None, "ok") else "not run"
            out[key] = {"desc": desc, "value": None, "target": f"{cmp} {bound}", "met": status}
            continue
        value = a["wall_s"] / b["wall_s"]
        met = value >= bound if cmp == ">=" else value <= bound
        cpu = a["cpu_s"] / b["cpu_s"] if a.get("cpu_s") and b.get("cpu_s") else None
        out[key] = {
            "desc": desc,
            "value": round(value, 3),
            "cpu_value": None if cpu is None else round(cpu, 3),  # same ratio of CPU seconds
            "target": f"{cmp} {bound}",
            "met": met,
        }
    return out


def _result(results: dict, name: str) -> dict:
    """``name``'s result, or that of its run at the registry's default partitions."""
    return results.get(name) or results.get(f"{name}@{DEFAULT_PARTITIONS}", {})


def registry_ratios(results: dict) -> dict:
    """new / old: each bucket-partitioned registry run against the single-file registry's
    (walls, CPU seconds and timed peak RSS); informational, no target."""
    out = {}
    for name, r in results.items():
        old = results.get(SINGLE_FILE.get(base(name), ""), {})
        if r.get("status") != "ok" or old.get("status") != "ok":
            continue
        rss = "peak_rss_timed_mb" if base(name) == "incremental" else "peak_rss_mb"
        out[f"{name}_vs_single_file"] = {
            "desc": f"{name} / {SINGLE_FILE[base(name)]}",
            "wall": round(r["wall_s"] / old["wall_s"], 3),
            "cpu": round(r["cpu_s"] / old["cpu_s"], 3)
            if r.get("cpu_s") and old.get("cpu_s")
            else None,
            "peak_rss": round(r[rss] / old[rss], 3) if old.get(rss) else None,
            "phases": {
                k: round(v / old["phases"][k], 3)
                for k, v in r.get("phases", {}).items()
                if old.get("phases", {}).get(k)
            },
        }
    return out


def rss_targets(results: dict) -> dict:
    out = {}
    for name, r in results.items():
        if base(name) in ("poolsieve", "incremental") and r.get("status") == "ok":
            peak = r["peak_rss_mb"] if base(name) == "poolsieve" else r["peak_rss_timed_mb"]
            out[f"{name}_peak_rss_mb"] = {
                "value": peak,
                "target": f"<= {RSS_TARGET_MB}",
                "met": peak <= RSS_TARGET_MB,
            }
    return out


def _table_rows(results: dict) -> list[list[str]]:
    rows = []
    for name, r in results.items():
        if r["status"] != "ok":
            rows.append(
                [name, r["status"], "-", "-", str(r["peak_rss_mb"]), "-", "-"]
                + [str(r["other_cpu_pct"])]
            )
            continue
        kept = "-" if r.get("kept") is None else f"{r['kept']:,}"
        rows.append(
            [
                name,
                f"{r['wall_s']:.2f}",
                f"{r.get('cpu_s', '-')}",
                f"{r['rows'] / r['wall_s']:,.0f}",
                str(r["peak_rss_mb"]),
                kept,
                f"{r['rows']:,}",
                str(r["other_cpu_pct"]),
            ]
        )
    return rows


def format_table(results: dict) -> str:
    header = ["contender", "wall s", "CPU s", "rows/s", "peak RSS MB", "kept", "rows timed"]
    header.append("other CPU %")
    rows = [header, *_table_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def format_breakdown(results: dict) -> str:
    lines = []
    for name, r in results.items():
        if r.get("status") != "ok" or "phases" not in r:
            continue
        lines.append(
            f"{name} phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items())
        )
        top = sorted(r.get("steps", {}).items(), key=lambda kv: -kv[1]["s"])
        lines += [f"    {k:<45} {v['s']:8.2f} s  ({v['calls']} calls)" for k, v in top[:10]]
    for name, r in results.items():
        if r.get("status") == "ok" and "setup_s" in r:
            lines.append(
                f"{name}: untimed setup {r['setup_s']:.1f} s; peak RSS of the timed "
                f"part {r['peak_rss_timed_mb']} MB (whole process {r['peak_rss_mb']} MB)"
            )
    return "\n".join(lines)


def _verdict(met) -> str:
    return {True: "met", False: "MISSED"}.get(met, str(met))


def print_report(report: dict) -> None:
    print("\n" + format_table(report["results"]))
    print("\n" + format_breakdown(report["results"]))
    print("\nratios (of walls; in brackets the same ratio of CPU seconds, less sensitive to load):")
    for r in report["ratios"].values():
        value = "-" if r["value"] is None else f"{r['value']:.3f}"
        cpu = "" if r.get("cpu_value") is None else f"({r['cpu_value']:.3f})"
        print(
            f"  {r['desc']:<34} {value:>8} {cpu:>9}  target {r['target']:<7} {_verdict(r['met'])}"
        )
    if report["registry_ratios"]:
        print("\nnew registry / single-file registry (wall, CPU s, peak RSS; per phase wall):")
    for r in report["registry_ratios"].values():
        phases = ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items())
        print(
            f"  {r['desc']:<44} wall {r['wall']:.3f}  cpu {r['cpu']}  rss {r['peak_rss']}  ({phases})"
        )
    for key, r in report["rss"].items():
        print(f"  {key:<34} {r['value']:>8} {'':>9}  target {r['target']:<7} {_verdict(r['met'])}")
    print("\nchecks:")
    for text, ok in report["checks"]:
        print(f"  [{'ok' if ok else 'FAIL'}] {text}")


def machine() -> dict:
    import duckdb
    import polars

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "polars": polars.__version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    names = selected(args)
    manifest = gen.load_or_generate(args.data_dir, args.rows, args.shard_rows, args.seed)
    info = machine()
    args.code_root, info["poolsieve_code"] = code_snapshot(args.code_ref, args.out_dir)
    print(f"[code] poolsieve {info['poolsieve_code']} from {args.code_root}", flush=True)
    wanted = {"polars", "pandas"} & set(names)
    norm = normalization_check(manifest, args.code_root) if wanted else None
    results = {n: run_best_of(n, args, manifest) for n in names}
    if not args.keep_work:
        shutil.rmtree(args.out_dir / "work", ignore_errors=True)
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": info,
        "data": {k: v for k, v in manifest.items() if k != "shards"}
        | {"shards": len(manifest["shards"])},
        "normalization_check": norm,
        "results": results,
        "ratios": ratios(results),
        "registry_ratios": registry_ratios(results),
        "rss": rss_targets(results),
        "checks": agreement_checks(manifest, results, norm),
    }
    print_report(report)
    out = args.out_dir / f"results-{args.rows}.json"
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\nresults: {out}")
    return 0 if all(ok for _, ok in report["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
