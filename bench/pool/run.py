"""The real-scale benchmark: DataComp small's pool through the asset graph, beside a polars script.

    .venv/bin/python bench/pool/run.py [--rows 12800000] [--files 128] [--npz-files 16]
        [--npz-link] [--refresh-rows 100000] [--k 36] [--centroid-sample 1000000]
        [--skip baseline,refresh] [--data-dir bench/pool/data] [--out bench/pool/out]

1. **Pool**: bench/pool/generate.py's DataComp-format pool (reused when the manifest matches;
   generation time recorded).
2. **polars**: bench/pool/baseline.py, the same rules as a hand-written polars script, in its
   own process (its stages are timed inside it).
3. **poolsieve**: the real assets through Dagster, one process per stage
   (bench/pool/dagster_stage.py), a fresh lake and a temporary ``DAGSTER_HOME`` under
   ``--out``: ingest (ingest_job = pool_shard + url_dedup per shard) -> shard_features ->
   metadata_embeddings (files with an .npz) -> image_centroids -> shard_clusters ->
   pool_features -> subset per strategy (metadata mode, profile datacomp, clusters of l14_img).
4. **Refresh**: one more shard of ``--refresh-rows`` rows (with its .npz) is added to the source,
   and only what it changes runs: ingest, shard_features, metadata_embeddings, shard_clusters
   of the new shard, then pool_features and the subsets. The other shards' feature files must
   stay byte-identical (checked by sha256).

Printed: each stage's wall, rows/s and peak RSS (the stage process and its children), the
polars script's stages beside them and the ratios, Dagster's per-run overhead, the checks
(quarantine, dedup and subset counts against the generator's planted truth and the polars
script) and the targets. Everything goes to ``--out/results-<rows>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generate  # noqa: E402
from dagster_stage import STAGES  # noqa: E402
from measure import watch_child  # noqa: E402

PY = sys.executable
TARGET_WALL_S, TARGET_RSS_MB, TARGET_REFRESH = 15 * 60, 4096, 0.05
REFRESH_STAGES = [
    "ingest",
    "shard_features",
    "metadata_embeddings",
    "shard_clusters",
    "pool_features",
    "subsets",
]
#: poolsieve stages -> the polars stage doing the same work
PAIRS = {
    "ingest + dedup": (["ingest"], ["ingest_dedup"]),
    "features": (["shard_features"], ["features"]),
    "clusters": (["metadata_embeddings", "image_centroids", "shard_clusters"], ["clusters"]),
    "pool_features + subsets": (["pool_features", "subsets"], ["subsets"]),
}


# ---------------------------------------------------------------- the pool


def pool(args) -> tuple[Path, dict]:
    spec = replace(
        generate.PoolSpec(),
        rows=args.rows,
        files=args.files,
        npz_files=args.npz_files,
        npz_link=args.npz_link,
        seed=args.seed,
    )
    name = f"rows{spec.rows}-files{spec.files}-npz{spec.npz_files}{'-link' if spec.npz_link else ''}-seed{spec.seed}"
    data = args.data_dir / name
    generate.reset_appended(data)
    if not generate.matches(data, spec):
        shutil.rmtree(data, ignore_errors=True)
        print(f"generating {spec.rows:,} rows in {spec.files} files into {data} ...", flush=True)
        generate.generate(spec, data, args.workers)
    manifest = json.loads((data / generate.MANIFEST).read_text())
    print(
        f"pool: {data} ({generate.disk_bytes(data / generate.SOURCE) / 1e9:.2f} GB on disk; "
        f"generated in {manifest['generate_wall_s']:.0f}s with {manifest['workers']} workers)"
    )
    return data, manifest


# ---------------------------------------------------------------- polars


def run_baseline(args, data: Path, work: Path) -> dict:
    result_path = work / "baseline.json"
    cmd = [
        PY,
        str(HERE / "baseline.py"),
        "--source",
        str(data / generate.SOURCE),
        "--out",
        str(work / "polars"),
        "--exemplars",
        str(data / generate.EXEMPLARS),
        "--profile",
        args.profile,
        "--k",
        str(args.k),
        "--centroid-sample",
        str(args.centroid_sample),
        "--seed",
        str(args.seed),
        "--workers",
        str(args.workers),
        "--json",
        str(result_path),
    ]
    print("\n== polars script", flush=True)
    outer = watch_child(subprocess.Popen(cmd))
    if outer["returncode"]:
        raise SystemExit(f"baseline failed ({outer['returncode']})")
    result = json.loads(result_path.read_text())
    result["outer"] = outer
    shutil.rmtree(work / "polars", ignore_errors=True)  # its copy of the pool (disk)
    return result


# ---------------------------------------------------------------- poolsieve through Dagster


def run_path(stages: list[str], cfg: dict, work: Path, env: dict, tag: str) -> dict:
    """``stages`` in one process (as the CLI runs them): per stage its measurements, plus the
    process as a whole under "process"."""
    cfg = {**cfg, "result": str(work / f"dagster-{tag}.json")}
    config = work / f"dagster-{tag}.config.json"
    config.write_text(json.dumps(cfg))
    cmd = [
        PY,
        str(HERE / "dagster_stage.py"),
        "--stages",
        ",".join(stages),
        "--config",
        str(config),
    ]
    outer = watch_child(subprocess.Popen(cmd, env=env))
    result = Path(cfg["result"])
    inner = json.loads(result.read_text()) if result.is_file() else {"stages": {}}
    out = {}
    for stage, s in inner["stages"].items():
        runs = s.pop("runs")
        out[stage] = {
            **s,
            "runs": len(runs),
            "runs_wall_s": round(sum(r["wall_s"] for r in runs), 2),
            "steps_s": round(sum(r["steps_s"] for r in runs), 2),
            "overhead_s": round(sum(r["overhead_s"] for r in runs), 2),
            "run_walls": [r["wall_s"] for r in runs],
            "errors": [e for r in runs for e in r["errors"]][:3],
        }
    process = {
        **outer,
        "setup_s": inner.get("setup_s"),
        "vm_hwm_mb": inner.get("vm_hwm_mb"),
        "stages_run": list(out),
        "stages_asked": stages,
    }
    process["startup_s"] = round(outer["wall_s"] - sum(s["wall_s"] for s in out.values()), 2)
    return {"stages": out, "process": process}


#: the stages of the report, from the assets the CLI's runs materialized
CLI_STAGES = {
    "ingest": ["pool_shard", "url_dedup"],
    "shard_features": ["shard_features"],
    "metadata_embeddings": ["metadata_embeddings"],
    "image_centroids": ["image_centroids"],
    "shard_clusters": ["shard_clusters"],
    "pool_features": ["pool_features"],
    "subsets": ["filter_sql", "subset"],
}


def run_cli_path(cfg: dict, work: Path, env: dict, tag: str) -> dict:
    """The whole path as ``poolsieve run`` runs it, in one process; per stage, its assets' step
    seconds plus their share of the runs' overhead (CPU and RSS only for the whole process)."""
    cfg = {**cfg, "result": str(work / f"dagster-{tag}.json")}
    config = work / f"dagster-{tag}.config.json"
    config.write_text(json.dumps(cfg))
    cmd = [PY, str(HERE / "dagster_stage.py"), "--cli", "--config", str(config)]
    outer = watch_child(subprocess.Popen(cmd, env=env))
    result = Path(cfg["result"])
    inner = json.loads(result.read_text()) if result.is_file() else {"assets": {}}
    stages = {}
    for stage, assets in CLI_STAGES.items():
        found = [inner["assets"][a] for a in assets if a in inner["assets"]]
        if not found:
            continue
        wall = sum(a["steps_s"] + a["overhead_s"] for a in found)
        rows = cfg.get("rows", {}).get(stage, 0)
        stages[stage] = {
            "stage": stage,
            "wall_s": round(wall, 2),
            "steps_s": round(sum(a["steps_s"] for a in found), 2),
            "overhead_s": round(sum(a["overhead_s"] for a in found), 2),
            "runs": max(a["runs"] for a in found),
            "rows": rows,
            "rows_per_s": round(rows / wall) if wall > 0 and rows else None,
            "cpu_s": None,
            "other_cpu_pct": None,
            "peak_rss_mb": None,
            "failed": [] if outer["returncode"] == 0 else ["cli"],
        }
    process = {
        **outer,
        "setup_s": inner.get("setup_s"),
        "vm_hwm_mb": inner.get("vm_hwm_mb"),
        "inner": inner.get("process"),
        "runs": inner.get("runs"),
        "stages_run": list(stages),
    }
    process["startup_s"] = round(outer["wall_s"] - sum(s["wall_s"] for s in stages.values()), 2)
    return {"stages": stages, "process": process, "mode": "cli"}


def dagster_env(work: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix="dagster_home.", dir=work))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLSIEVE_")}
    env["DAGSTER_HOME"] = str(home)
    return env


def run_poolsieve(args, data: Path, work: Path, manifest: dict) -> tuple[dict, dict, Path]:
    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    cfg = {
        "lake": str(lake),
        "source": str(data / generate.SOURCE),
        "profile": args.profile,
        "exemplars": str(data / generate.EXEMPLARS),
        "k": args.k,
        "centroid_sample": args.centroid_sample,
        "seed": args.seed,
        "duckdb_memory": args.duckdb_memory,
        "rows": stage_rows(manifest),
    }
    env = dagster_env(work)
    print(
        f"\n== poolsieve through Dagster (DAGSTER_HOME {env['DAGSTER_HOME']}, lake {lake})",
        flush=True,
    )
    if args.per_stage:
        return run_path(STAGES, cfg, work, env, "full"), {"cfg": cfg, "env": env}, lake
    return run_cli_path(cfg, work, env, "full"), {"cfg": cfg, "env": env}, lake


def feature_hashes(lake: Path) -> dict[str, str]:
    folder = lake / "shard_features"
    return (
        {
            p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*/features.parquet"))
        }
        if folder.is_dir()
        else {}
    )


def run_refresh(args, data: Path, work: Path, ctx: dict, lake: Path, manifest: dict) -> dict:
    before = feature_hashes(lake)
    info = generate.append_shard(data, args.refresh_rows, npz=True)
    key = info["file"]
    print(f"\n== refresh: new shard {key} ({args.refresh_rows:,} rows)", flush=True)
    if args.per_stage:
        cfg = {**ctx["cfg"], "shards": [key], "rows": stage_rows(manifest, args.refresh_rows)}
        path = run_path(REFRESH_STAGES, cfg, work, ctx["env"], "refresh")
    else:  # poolsieve run again: what is up to date is skipped
        cfg = {**ctx["cfg"], "rows": stage_rows(manifest, args.refresh_rows)}
        path = run_cli_path(cfg, work, ctx["env"], "refresh")
    after = feature_hashes(lake)
    changed = sorted(k for k, h in before.items() if after.get(k) != h)
    return {
        **path,
        "shard": key,
        "rows": args.refresh_rows,
        "append_s": info["seconds"],
        "old_feature_files": len(before),
        "old_feature_files_changed": changed,
        "new_feature_file": key in after,
    }


# ---------------------------------------------------------------- checks and report


def lake_checks(lake: Path, manifest: dict, baseline: dict | None) -> dict:
    import duckdb
    import numpy as np

    sys.path.insert(0, str(HERE.parent.parent))
    from poolsieve.audit.report import lake_counts

    counts = lake_counts(lake)
    subsets = {
        p.parent.name: len(np.load(p)) for p in sorted((lake / "subset").glob("*/subset.npy"))
    }
    expected = manifest["expected"]
    checks = {
        "quarantine = planted": counts["quarantine"]
        == {k: v for k, v in expected["quarantined"].items() if v},
        "dedup kept = planted": counts["dedup"].get("keep") == expected["dedup_kept"],
    }
    found = {"quarantine": counts["quarantine"], "dedup": counts["dedup"], "subsets": subsets}
    if baseline:
        info = baseline["info"]
        checks["polars quarantine = planted"] = {
            k: v for k, v in info["ingest_dedup"]["quarantined"].items()
        } == {k: v for k, v in expected["quarantined"].items() if v}
        checks["polars dedup kept = planted"] = (
            info["ingest_dedup"]["decisions"].get("keep") == expected["dedup_kept"]
        )
        exact = {
            k: v
            for k, v in info["subsets"]["kept"].items()
            if k not in ("image_based", "image_and_clip")
        }
        checks["subset sizes = polars (all but the cluster-based)"] = all(
            subsets.get(k) == v for k, v in exact.items()
        )
        found["polars_subsets"] = info["subsets"]["kept"]
    del duckdb
    return {"checks": checks, "found": found}


def fmt_rss(mb) -> str:
    return f"{mb:,.0f}" if mb is not None else "-"


def fmt(value, spec: str = ".1f") -> str:
    return format(value, spec) if value is not None else "-"


def table(stages: dict) -> list[str]:
    lines = [
        "| stage | wall s | rows | rows/s | peak RSS MB | CPU s | other CPU % | runs | "
        "Dagster overhead s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in stages.items():
        rate = f"{s['rows_per_s']:,}" if s.get("rows_per_s") else "-"
        lines.append(
            f"| {name} | {s['wall_s']:.1f} | {s['rows']:,} | {rate} | "
            f"{fmt_rss(s['peak_rss_mb'])} | {fmt(s['cpu_s'])} | {fmt(s['other_cpu_pct'], '')} | "
            f"{s['runs']} | "
            f"{s['overhead_s']:.1f} |"
        )
    return lines


def path_totals(path: dict) -> dict:
    stages, process = path["stages"], path["process"]
    runs = process.get("runs") or sum(s["runs"] for s in stages.values())  # cli: the real count
    overhead = sum(s["overhead_s"] for s in stages.values())
    return {
        "wall_s": process["wall_s"],
        "stages_wall_s": round(sum(s["wall_s"] for s in stages.values()), 2),
        "startup_s": process["startup_s"],
        "peak_rss_mb": max(
            [process["peak_rss_tree_sampled_mb"], process.get("vm_hwm_mb") or 0]
            + [s["peak_rss_mb"] or 0 for s in stages.values()]
        ),
        "runs": runs,
        "overhead_s": round(overhead, 2),
        "overhead_per_run_s": round(overhead / max(runs, 1), 3),
    }


def stage_rows(manifest: dict, refresh: int = 0) -> dict:
    """Rows each stage handles: rows read (ingest), valid rows, or rows with an .npz."""
    exp = manifest["expected"]
    npz_rows = sum(f["rows"] for f in manifest["files"] if f["npz"])
    if refresh:
        return {
            "ingest": refresh,
            "shard_features": refresh,
            "metadata_embeddings": refresh,
            "shard_clusters": refresh,
            "pool_features": exp["valid"] + refresh,
            "subsets": exp["valid"] + refresh,
        }
    return {
        "ingest": exp["rows"],
        "shard_features": exp["valid"],
        "metadata_embeddings": npz_rows,
        "image_centroids": npz_rows,
        "shard_clusters": npz_rows,
        "pool_features": exp["valid"],
        "subsets": exp["valid"],
    }


def report(result: dict) -> str:
    full, base, refresh = result["poolsieve"], result.get("baseline"), result.get("refresh")
    t = path_totals(full)
    code = result.get("code", {}).get("start", {})
    lines = [
        f"code: commit {code.get('head')} + working tree (fingerprint {code.get('sha256')})",
        f"poolsieve through Dagster, {result['rows']:,} rows, {result['files']} files "
        + (
            "(poolsieve run's path: run_main_job in one process; a stage's wall = its assets' "
            "step compute + their share of each run's Dagster overhead; CPU and peak RSS are "
            "the process's, below)"
            if full.get("mode") == "cli"
            else "(one process, one Dagster run per stage and partition)"
        ),
    ]
    lines += table(full["stages"])
    lines.append(
        f"whole path {t['wall_s']:.1f}s ({t['wall_s'] / 60:.1f} min; outside the stages' runs "
        "(process start, registration, planning, run creation, summary) "
        f"{t['startup_s']:.1f}s), peak RSS {t['peak_rss_mb']:,} MB; {t['runs']} Dagster runs, "
        f"overhead (run wall - step compute) {t['overhead_s']:.1f}s = "
        f"{t['overhead_per_run_s']:.2f}s per run = {t['overhead_s'] / t['wall_s']:.0%} of the path"
    )
    if base:
        lines += [
            "",
            "side by side (ratio = polars wall / poolsieve wall; > 1: poolsieve faster)",
            "| work | poolsieve wall s | polars wall s | ratio | poolsieve CPU s | "
            "polars CPU s | CPU ratio | poolsieve peak RSS MB | polars peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        ours, theirs = full["stages"], {s["stage"]: s for s in base["stages"]}
        cli = full.get("mode") == "cli"
        for label, (a, b) in PAIRS.items():
            if not all(x in ours for x in a) or not all(x in theirs for x in b):
                continue
            w1, w2 = sum(ours[x]["wall_s"] for x in a), sum(theirs[x]["wall_s"] for x in b)
            c2 = sum(theirs[x]["cpu_s"] for x in b)
            c1 = None if cli else sum(ours[x]["cpu_s"] for x in a)
            r1 = None if cli else max(ours[x]["peak_rss_mb"] for x in a)
            r2 = max(theirs[x]["peak_rss_mb"] for x in b)
            ratio = fmt(c2 / max(c1, 1e-9), ".2f") if c1 is not None else "-"
            lines.append(
                f"| {label} | {w1:.1f} | {w2:.1f} | {w2 / w1:.2f} | {fmt(c1)} | {c2:.1f} | "
                f"{ratio} | {fmt_rss(r1)} | {r2:,} |"
            )
        bw, bc, pc = base["outer"]["wall_s"], base["outer"]["cpu_s"], full["process"]["cpu_s"]
        lines.append(
            f"| whole path (processes) | {t['wall_s']:.1f} | {bw:.1f} | {bw / t['wall_s']:.2f} | "
            f"{pc:.1f} | {bc:.1f} | {bc / max(pc, 1e-9):.2f} | "
            f"{t['peak_rss_mb']:,} | {base['peak_rss_mb']:,} |"
        )
    if refresh:
        r = path_totals(refresh)
        lines += ["", f"refresh: one new shard {refresh['shard']} ({refresh['rows']:,} rows)"]
        lines += table(refresh["stages"])
        lines.append(
            f"refresh {r['wall_s']:.1f}s (outside the stages' runs {r['startup_s']:.1f}s) = "
            f"{r['wall_s'] / t['wall_s']:.1%} of the whole path; {r['runs']} runs, overhead "
            f"{r['overhead_s']:.1f}s; old shards' feature files changed: "
            f"{len(refresh['old_feature_files_changed'])} of {refresh['old_feature_files']}"
        )
    checks = result["checks"]["checks"]
    lines += ["", "checks"] + [f"  {'ok  ' if v else 'FAIL'} {k}" for k, v in checks.items()]
    if result.get("code", {}).get("changed"):
        lines.append(f"  changed during the run: {', '.join(result['code']['changed'])}")
    lines += ["", "targets"] + [
        f"  {'met   ' if v['met'] else 'MISSED'} {k}: {v['value']}"
        for k, v in result["targets"].items()
    ]
    return "\n".join(lines)


def targets(result: dict) -> dict:
    full = result["poolsieve"]
    t = path_totals(full)
    complete = list(full["stages"]) == STAGES and not any(
        s["failed"] for s in full["stages"].values()
    )
    out = {
        "whole path <= 15 min": {
            "value": f"{t['wall_s'] / 60:.1f} min"
            + ("" if complete else " (INCOMPLETE: a stage failed)"),
            "met": complete and t["wall_s"] <= TARGET_WALL_S,
        },
        "peak RSS <= 4 GB": {
            "value": f"{t['peak_rss_mb']:,} MB",
            "met": t["peak_rss_mb"] <= TARGET_RSS_MB,
        },
    }
    if result.get("refresh"):
        r = path_totals(result["refresh"])
        out["refresh <= 5% of the whole path"] = {
            "value": f"{r['wall_s'] / t['wall_s']:.1%}",
            "met": r["wall_s"] / t["wall_s"] <= TARGET_REFRESH,
        }
    if result.get("baseline") and "ingest" in full["stages"]:
        polars = next(
            s["wall_s"] for s in result["baseline"]["stages"] if s["stage"] == "ingest_dedup"
        )
        ours = full["stages"]["ingest"]["wall_s"]
        out["ingest + dedup at least as fast as polars"] = {
            "value": f"{ours:.1f}s vs {polars:.1f}s",
            "met": ours <= polars,
        }
    return out


def resource_default(field: str):
    """The curation resource's default for ``field`` (the polars script uses the same value)."""
    from poolsieve.pipelines.resources import CurationResource

    return CurationResource.model_fields[field].default


CODE_DIRS = ["poolsieve", "assets", "pipelines", "dbt_like_sql", "bench/pool"]


def code_fingerprint() -> dict:
    """sha256 over the code the benchmark runs, whole and per file (the tree may be edited while
    it runs: the start and end fingerprints say whether, and which files), and the commit."""
    root = HERE.parent.parent
    digest, files = hashlib.sha256(), {}
    for folder in CODE_DIRS:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in (".py", ".sql", ".yml") and "__pycache__" not in path.parts:
                name, content = str(path.relative_to(root)), path.read_bytes()
                digest.update(name.encode() + content)
                files[name] = hashlib.sha256(content).hexdigest()[:12]
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {"sha256": digest.hexdigest()[:12], "head": head, "files": files}


def changed_files(start: dict, end: dict) -> list[str]:
    a, b = start.get("files", {}), end.get("files", {})
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=12_800_000)
    parser.add_argument("--files", type=int, default=128)
    parser.add_argument(
        "--npz-files", type=int, default=0, help="files with a generated .npz (default files/8)"
    )
    parser.add_argument(
        "--npz-link", action="store_true", help="every file gets an .npz (hard links)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--refresh-rows", type=int, default=100_000)
    parser.add_argument("--profile", default="datacomp")
    parser.add_argument("--k", type=int, default=0, help="default: curation.image_clusters")
    parser.add_argument(
        "--centroid-sample", type=int, default=0, help="default: curation.centroid_sample"
    )
    parser.add_argument("--duckdb-memory", default="")
    parser.add_argument("--skip", default="", help="comma-separated: baseline, refresh")
    parser.add_argument(
        "--per-stage",
        action="store_true",
        help="one Dagster run per stage and shard, each stage measured alone (CPU and peak RSS "
        "per stage); default: poolsieve run's own path (run_main_job), stages from its steps",
    )
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)
    args.npz_files = args.npz_files or max(1, args.files // 8)
    args.k = args.k or resource_default("image_clusters")
    args.centroid_sample = args.centroid_sample or resource_default("centroid_sample")
    skip = set(filter(None, args.skip.split(",")))
    started = time.perf_counter()
    data, manifest = pool(args)
    work = args.out / f"work-{args.rows}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    code_at_start = code_fingerprint()
    result = {
        "rows": args.rows,
        "files": args.files,
        "args": {k: str(v) for k, v in vars(args).items()},
        "manifest": manifest,
        "data": str(data),
    }
    result["baseline"] = None if "baseline" in skip else run_baseline(args, data, work)
    full, ctx, lake = run_poolsieve(args, data, work, manifest)
    result["poolsieve"] = full
    result["checks"] = lake_checks(lake, manifest, result["baseline"])
    complete = list(full["stages"]) == STAGES and not any(
        s["failed"] for s in full["stages"].values()
    )
    result["refresh"] = None
    if complete and "refresh" not in skip:
        result["refresh"] = run_refresh(args, data, work, ctx, lake, manifest)
        result["checks"]["checks"]["refresh: old shards' feature files byte-identical"] = (
            not result["refresh"]["old_feature_files_changed"]
            and result["refresh"]["new_feature_file"]
        )
        generate.reset_appended(data)
    result["code"] = {"start": code_at_start, "end": code_fingerprint()}
    result["code"]["changed"] = changed_files(code_at_start, result["code"]["end"])
    result["checks"]["checks"]["code unchanged during the run"] = not result["code"]["changed"]
    result["targets"] = targets(result)
    result["bench_wall_s"] = round(time.perf_counter() - started, 1)
    text = report(result)
    print(text)
    out = args.out / f"results-{args.rows}.json"
    out.write_text(json.dumps(result, indent=1, default=str))
    (args.out / f"results-{args.rows}.md").write_text(text + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
