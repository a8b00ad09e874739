"""Stages of the asset graph through Dagster, in one process as the CLI runs them (run.py
starts one process for the whole path and one for the refresh).

    DAGSTER_HOME=... python bench/pool/dagster_stage.py --stages a,b,c --config CONFIG.json

Stages and what each materializes, as the CLI does it (``execute_in_process`` against the
instance at ``$DAGSTER_HOME``, one run per partition, in pool order):

=====================  ================================================================
ingest                 registers the source's files as shard partitions, then ingest_job
                       (pool_shard + url_dedup) per shard
shard_features         shard_features per shard
metadata_embeddings    metadata_embeddings per shard (shards whose file has an .npz)
image_centroids        image_centroids (one run)
shard_clusters         shard_clusters per shard (shards whose file has an .npz)
pool_features          pool_features (one run)
subsets                subset per strategy partition (every filter; its .npy)
=====================  ================================================================

``config["shards"]`` limits the per-shard stages to those shards (the refresh). Writes a JSON
result to ``config["result"]`` (rewritten after each stage): per stage its wall, CPU and peak RSS
(bench/pool/measure.py: VmHWM reset at the stage's start, and the process tree sampled), and per
run its wall, the time its steps computed (STEP_START to STEP_SUCCESS in the run's event log) and
so Dagster's per-run overhead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import Stage, vm_hwm_mb  # noqa: E402

PER_SHARD = {
    "ingest": ["pool_shard", "url_dedup"],
    "shard_features": ["shard_features"],
    "metadata_embeddings": ["metadata_embeddings"],
    "shard_clusters": ["shard_clusters"],
}
ONCE = {"image_centroids": ["image_centroids"], "pool_features": ["pool_features"]}
PER_STRATEGY = {"subsets": ["subset"]}
STAGES = [
    "ingest",
    "shard_features",
    "metadata_embeddings",
    "image_centroids",
    "shard_clusters",
    "pool_features",
    "subsets",
]
#: stages that only shards with an .npz beside their parquet take part in
NPZ_STAGES = {"metadata_embeddings", "shard_clusters"}


def resources(cfg: dict):
    """The code location's resources for the benchmark: POOLSIEVE_* variables ignored, so only
    the defaults and what ``cfg`` sets apply (metadata mode, the datacomp profile, L/14)."""
    from poolsieve.pipelines.resources import CurationResource, resources_from_env

    curation = {
        "mode": "metadata",
        "param_profile": cfg.get("profile", "datacomp"),
        "cluster_embeddings": "l14_img",
        "exemplar_dir": cfg.get("exemplars", ""),
        "centroid_sample": cfg.get("centroid_sample"),
        "image_clusters": cfg.get("k"),
    }
    fields = CurationResource.model_fields
    unknown = [k for k in curation if k not in fields]
    if unknown:
        print(f"bench: CurationResource has no fields {unknown}; not set", file=sys.stderr)
    curation = {k: v for k, v in curation.items() if k in fields and v not in (None, "")}
    lake = {"lake_dir": cfg["lake"], "source": cfg["source"]}
    if cfg.get("duckdb_memory"):
        lake["duckdb_memory_limit"] = cfg["duckdb_memory"]
    return resources_from_env(
        {}, lake=lake, curation=curation, training={"seed": cfg.get("seed", 0)}
    )


def definitions(res):
    """The code location plus one bench job per stage (selections by asset key)."""
    import dagster as dg
    from poolsieve.pipelines.definitions import build_defs

    jobs = [
        dg.define_asset_job(f"bench_{stage}", selection=dg.AssetSelection.assets(*keys))
        for stage, keys in {**PER_SHARD, **ONCE, **PER_STRATEGY}.items()
    ]
    return dg.Definitions.merge(build_defs(res), dg.Definitions(jobs=jobs))


def step_seconds(instance, run_id: str) -> float:
    """Seconds the run's steps computed: STEP_START to STEP_SUCCESS/STEP_FAILURE per step."""
    return sum(step_durations(instance, run_id).values())


def step_durations(instance, run_id: str) -> dict[str, float]:
    """step key (the asset) -> seconds from its STEP_START to its STEP_SUCCESS/STEP_FAILURE."""
    import dagster as dg

    started, total = {}, {}
    ends = {dg.DagsterEventType.STEP_SUCCESS.value, dg.DagsterEventType.STEP_FAILURE.value}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == dg.DagsterEventType.STEP_START.value:
            started[event.step_key] = entry.timestamp
        elif event.event_type_value in ends and event.step_key in started:
            total[event.step_key] = entry.timestamp - started.pop(event.step_key)
    return total


def run_once(job, instance, key: str | None) -> dict:
    from poolsieve.pipelines.instance import run_tags
    from poolsieve.pipelines.runner import console_run_config

    start = time.perf_counter()
    result = job.execute_in_process(
        partition_key=key,
        instance=instance,
        raise_on_error=False,
        run_config=console_run_config(),
        tags=run_tags(),
    )
    wall = time.perf_counter() - start
    steps = step_seconds(instance, result.run_id)
    errors = [
        e.event_specific_data.error.message.strip()[:2000]
        for e in result.all_events
        if e.is_step_failure
    ]
    return {
        "key": key,
        "ok": result.success,
        "wall_s": round(wall, 3),
        "steps_s": round(steps, 3),
        "overhead_s": round(wall - steps, 3),
        "errors": errors,
    }


def shard_keys(cfg: dict, lake, instance, stage: str) -> list[str]:
    from poolsieve.pipelines.partitions import SHARDS

    if cfg.get("shards"):
        keys = list(cfg["shards"])
    else:
        order = instance.get_dynamic_partitions(SHARDS.name)
        keys = [k for k in order if lake.store.partition_dir("pool_shard", k).is_dir()]
    if stage in NPZ_STAGES:
        source = Path(cfg["source"])
        keys = [k for k in keys if (source / k).with_suffix(".npz").is_file()]
    return keys


def register(lake, instance) -> list[str]:
    """The source's files as shard partitions, in pool order (as the CLI registers them)."""
    from poolsieve.pipelines.partitions import register_shards

    from poolsieve.pool.sources import scan_source

    keys = [f.key for f in scan_source(lake.source_url).files]
    seqs = register_shards(instance, lake, keys)
    return sorted(seqs, key=seqs.__getitem__)


class Session:
    """The resources, definitions and instance, made once for every stage of the process."""

    def __init__(self, cfg: dict):
        from poolsieve.pipelines.instance import get_instance

        self.cfg = cfg
        self.res = resources(cfg)
        self.defs, self.instance = definitions(self.res), get_instance()

    def keys(self, stage: str) -> list[str | None]:
        from poolsieve.pipelines.partitions import STRATEGIES

        cfg, lake, instance = self.cfg, self.res.lake, self.instance
        if stage == "ingest":
            registered = register(lake, instance)
            return (
                [k for k in registered if k in cfg["shards"]] if cfg.get("shards") else registered
            )
        if stage in PER_SHARD:
            return shard_keys(cfg, lake, instance, stage)
        if stage in PER_STRATEGY:
            return list(STRATEGIES.get_partition_keys())
        return [None]

    def job(self, stage: str):
        return self.defs.resolve_job_def("ingest_job" if stage == "ingest" else f"bench_{stage}")


def run_stage(session: Session, stage: str, rows: int) -> dict:
    with Stage(stage, rows) as measured:
        job, keys, runs = session.job(stage), session.keys(stage), []
        for i, key in enumerate(keys, 1):
            runs.append(run_once(job, session.instance, key))
            r = runs[-1]
            status = "ok" if r["ok"] else "FAILED"
            print(
                f"  [{stage} {i}/{len(keys)}] {key or stage:<28} {status:>6} "
                f"{r['wall_s']:7.2f}s (steps {r['steps_s']:.2f}s)",
                flush=True,
            )
            if not r["ok"]:
                print("    " + "\n    ".join(r["errors"]), file=sys.stderr, flush=True)
                break
    return {
        **measured.result,
        "runs": runs,
        "failed": [r["key"] or stage for r in runs if not r["ok"]],
    }


def run_stages(stages: list[str], cfg: dict) -> dict:
    started = time.perf_counter()
    session = Session(cfg)
    out = {"setup_s": round(time.perf_counter() - started, 3), "stages": {}}
    for stage in stages:
        out["stages"][stage] = run_stage(session, stage, cfg.get("rows", {}).get(stage, 0))
        out["vm_hwm_mb"] = round(vm_hwm_mb())
        Path(cfg["result"]).write_text(json.dumps(out, indent=1))
        if out["stages"][stage]["failed"]:
            break
    return out


def run_cli(cfg: dict) -> dict:
    """The whole path as ``poolsieve run`` runs it (pipelines.runner.run_main_job: one run per
    shard of the shard job, then the pool-wide steps; what is up to date skipped), measured as
    one stage; per asset, the seconds its steps computed and its share of each run's overhead
    (run wall - step compute, split evenly over the run's steps)."""
    from poolsieve.pipelines.runner import run_main_job

    started = time.perf_counter()
    session = Session(cfg)
    known = {r.run_id for r in session.instance.get_runs()}
    out = {"setup_s": round(time.perf_counter() - started, 3)}
    with Stage("cli", cfg.get("rows", {}).get("ingest", 0)) as measured:
        status, _ = run_main_job(session.res, "all")
    runs = [r for r in session.instance.get_runs() if r.run_id not in known]
    out.update(status=status, process=measured.result, runs=len(runs), vm_hwm_mb=round(vm_hwm_mb()))
    out["assets"] = _per_asset(session.instance, runs)
    Path(cfg["result"]).write_text(json.dumps(out, indent=1))
    return out


def _per_asset(instance, runs) -> dict:
    assets = {}
    for run in runs:
        steps = step_durations(instance, run.run_id)
        stats = instance.get_run_stats(run.run_id)
        wall = (stats.end_time or 0) - (stats.start_time or 0)
        overhead = max(wall - sum(steps.values()), 0.0) / max(len(steps), 1)
        for key, seconds in steps.items():
            a = assets.setdefault(key, {"steps_s": 0.0, "overhead_s": 0.0, "runs": 0})
            a["steps_s"] += seconds
            a["overhead_s"] += overhead
            a["runs"] += 1
    return {k: {n: round(v, 3) for n, v in a.items()} for k, a in sorted(assets.items())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stages", default="", help=f"comma-separated, of {STAGES}")
    parser.add_argument("--cli", action="store_true", help="the whole path as poolsieve run")
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.cli:
        sys.exit(run_cli(json.loads(args.config.read_text()))["status"])
    stages = args.stages.split(",")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f"unknown stages {unknown}; known: {STAGES}")
    cfg = json.loads(args.config.read_text())
    result = run_stages(stages, cfg)
    failed = any(s["failed"] for s in result["stages"].values())
    sys.exit(1 if failed or len(result["stages"]) < len(stages) else 0)


if __name__ == "__main__":
    main()
