"""The demo's DataComp comparison over several training seeds: is filtering better than not?

    .venv/bin/python bench/datacomp_demo/run.py [--seeds 0,1,2] [--train-samples 0]
        [--out bench/datacomp_demo/out] [--lake LAKE_OF_A_FINISHED_DEMO]

1. Runs the README's main job once (``poolsieve demo`` into ``OUT/lake``, its own DAGSTER_HOME):
   world, scorer, shards, pool_features, every strategy's subset / train shards / CLIP (seed 0)
   / evaluation, leaderboard.
2. For every other seed, retrains every strategy's CLIP with that seed (same subsets, same
   samples-seen budget, same recipe) and evaluates it, with the same functions the assets call.
3. Reports per strategy the mean ± standard deviation (and min-max) over seeds of zero-shot
   top-1, retrieval mean recall@1 and their average, and each strategy's paired difference from
   no_filter (same seed). JSON in OUT/results.json, markdown on stdout.

One seed's eight trainings take ~10 min on 2 CPU cores (tiny-cpu: 12,800 samples seen each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))


from poolsieve.curate.evaluation import evaluate_strategy  # noqa: E402
from poolsieve.curate.strategies import strategy_names  # noqa: E402
from poolsieve.curate.training import train_strategy  # noqa: E402
from poolsieve.lake import Lake  # noqa: E402
from poolsieve_demo.resources import world_dir  # noqa: E402

METRICS = ["classification/top1", "retrieval/mean_recall@1", "average"]


def main_job(lake_dir: Path, train_samples: int) -> float:
    env = {**os.environ, "DAGSTER_HOME": str(lake_dir.parent / "dagster_home")}
    command = [
        str(Path(sys.executable).parent / "poolsieve"),
        "demo",
        "--lake",
        str(lake_dir),
        "--train-samples",
        str(train_samples),
    ]
    start = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    (lake_dir.parent / "main_job.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(
            f"main job failed (rc {proc.returncode}); see {lake_dir.parent}/main_job.log"
        )
    return time.monotonic() - start


def seed_metrics(lake: Lake, seed: int, train_samples: int) -> dict[str, dict]:
    """metrics per strategy for one training seed (seed 0 comes from the main job's run)."""
    eval_dir = str(world_dir(lake.root) / "eval")
    out = {}
    for name in strategy_names():
        if seed != 0:
            train_strategy(lake, name, "tiny-cpu", seed, train_samples)
            evaluate_strategy(lake, name, eval_dir, "auto")
        doc = json.loads((lake.partition_dir("evaluation", name) / "metrics.json").read_text())
        assert doc["seed"] == seed, (name, doc["seed"], seed)
        out[name] = {k: doc["metrics"][k] for k in METRICS} | {"samples_seen": doc["samples_seen"]}
        print(f"seed {seed} {name}: {out[name]}", flush=True)
    return out


def _stats(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f} ({min(values):.3f}–{max(values):.3f})"


def report(per_seed: dict[int, dict], sizes: dict[str, int]) -> str:
    head = "| strategy | subset size | " + " | ".join(METRICS) + " | average − no_filter (paired) |"
    lines = [head, "|" + "---|" * (3 + len(METRICS))]
    names = sorted(
        sizes, key=lambda n: -statistics.mean(s[n]["average"] for s in per_seed.values())
    )
    for name in names:
        cells = [_stats([s[name][m] for s in per_seed.values()]) for m in METRICS]
        diff = _stats([s[name]["average"] - s["no_filter"]["average"] for s in per_seed.values()])
        lines.append(f"| {name} | {sizes[name]} | " + " | ".join(cells) + f" | {diff} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train-samples", type=int, default=0, help="0: tiny-cpu's 12,800")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument(
        "--lake",
        type=Path,
        default=None,
        help="reuse a lake where `poolsieve demo` already ran the whole graph (seed 0) "
        "instead of running it again; its clip_model/evaluation folders get overwritten",
    )
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    lake_dir = args.lake or args.out / "lake"
    main_seconds = 0.0 if args.lake else main_job(lake_dir, args.train_samples)
    lake = Lake(lake_dir)
    per_seed = {}
    for seed in seeds:
        start = time.monotonic()
        per_seed[seed] = seed_metrics(lake, seed, args.train_samples)
        print(f"seed {seed}: {time.monotonic() - start:.0f} s", flush=True)
    sizes = {
        n: json.loads((lake.partition_dir("subset", n) / "summary.json").read_text())["kept"]
        for n in strategy_names()
    }
    table = report(per_seed, sizes)
    result = {
        "seeds": seeds,
        "main_job_seconds": round(main_seconds, 1),
        "subset_sizes": sizes,
        "per_seed": per_seed,
        "table": table,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=1))
    if main_seconds:
        print(f"main job (poolsieve demo, whole graph): {main_seconds:.0f} s")
    print(table)


if __name__ == "__main__":
    main()
