"""clip_model's and evaluation's logic: train one strategy's CLIP, then evaluate it.

Every strategy trains with the same recipe, samples-seen budget and seed (DataComp's rule: only
the data changes). ``<lake>/clip_model/<strategy>/`` holds open_clip_train's run (out.log,
params.txt, checkpoints/) and ``model.json`` (arch, checkpoint, sha256, scale, seed, samples
seen, loss curve); ``<lake>/evaluation/<strategy>/metrics.json`` the metrics.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from poolsieve.clip.models import ScorerSpec, load_clip, weights_sha256
from poolsieve.clip.train import TrainProgress, scale_config, train_clip
from poolsieve.curate.evaluate import Evaluation, evaluate
from poolsieve.curate.suite import evaluate_suite
from poolsieve.lake import Lake, write_bytes_atomic

EMPTY = "the subset kept no downloaded sample: nothing to train on"


def _write_json(path: Path, doc: dict) -> None:
    write_bytes_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())


def train_strategy(
    lake: Lake,
    strategy: str,
    scale: str,
    seed: int,
    samples_seen: int = 0,
    progress: Callable[[TrainProgress], None] | None = None,
) -> dict:
    shards = lake.partition_dir("train_shards", strategy)
    sizes_file = shards / "sizes.json"
    if not sizes_file.is_file():
        raise FileNotFoundError(f"no train_shards for {strategy!r} ({shards}): materialize them")
    sizes = json.loads(sizes_file.read_text())
    overrides = {"seed": seed, **({"samples_seen": samples_seen} if samples_seen else {})}
    config = scale_config(scale, **overrides)
    folder = lake.partition_dir("clip_model", strategy)
    if not sum(sizes.values()):  # a filter that keeps nothing is a result: no model, no metrics
        record = {"arch": config.model, "checkpoint": None, "sha256": None, "scale": scale,
                  "seed": seed, "samples_seen": 0, "train_samples": 0, "seconds": 0.0,
                  "losses": [], "log": None, "skipped": EMPTY}  # fmt: skip
        _write_json(folder / "model.json", record)
        return record
    run = train_clip(config, [shards / n for n in sizes], sum(sizes.values()), folder.parent,
                     folder.name, progress)  # fmt: skip
    record = {
        "arch": config.model, "checkpoint": str(run.checkpoint_path),
        "sha256": weights_sha256(run.checkpoint_path), "scale": scale, "seed": seed,
        "samples_seen": run.samples_seen, "train_samples": sum(sizes.values()),
        "seconds": round(run.seconds, 1), "losses": run.losses, "log": str(run.log_path),
    }  # fmt: skip
    _write_json(folder / "model.json", record)
    return record


def evaluate_strategy(
    lake: Lake, strategy: str, eval_dir: str, device: str = "auto", suite_dir: str = "",
    progress=None,
) -> tuple[dict, Evaluation]:  # fmt: skip
    """The held-out eval sets (and DataComp's suite under ``suite_dir`` when given, calling
    ``progress(done, total)`` per suite task)."""
    model_file = lake.partition_dir("clip_model", strategy) / "model.json"
    if not model_file.is_file():
        raise FileNotFoundError(f"no clip_model for {strategy!r}: materialize it first")
    record = json.loads(model_file.read_text())
    out = lake.partition_dir("evaluation", strategy) / "metrics.json"
    if record["checkpoint"] is None:
        doc = {"strategy": strategy, "model_sha256": None, "seed": record["seed"],
               "samples_seen": 0, "metrics": {}, "skipped": record.get("skipped", EMPTY)}  # fmt: skip
        _write_json(out, doc)
        return doc, Evaluation({})
    clip = load_clip(ScorerSpec(record["arch"], record["checkpoint"]), device)
    result = evaluate(clip, eval_dir)
    doc = {"strategy": strategy, "model_sha256": record["sha256"], "seed": record["seed"],
           "samples_seen": record["samples_seen"], "metrics": result.flat()}  # fmt: skip
    if suite_dir:
        suite = evaluate_suite(clip, suite_dir, progress=progress)
        doc["suite"] = suite
        doc["metrics"]["suite/average"] = suite["average"]
    _write_json(out, doc)
    return doc, result
