"""clip_model's logic: train one strategy's CLIP.

Every strategy trains with the same recipe, samples-seen budget and seed (DataComp's rule: only
the data changes). ``<lake>/clip_model/<strategy>/`` holds open_clip_train's run (out.log,
params.txt, checkpoints/) and ``model.json`` (arch, checkpoint, sha256, scale, seed, samples
seen, loss curve); ``<lake>/evaluation/<strategy>/metrics.json`` the metrics.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from poolsieve.clip.models import weights_sha256
from poolsieve.clip.train import TrainProgress, scale_config, train_clip
from poolsieve.lake import Lake, write_json

EMPTY = "the subset kept no downloaded sample: nothing to train on"


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
        record = {
            "arch": config.model,
            "checkpoint": None,
            "sha256": None,
            "scale": scale,
            "seed": seed,
            "samples_seen": 0,
            "train_samples": 0,
            "seconds": 0.0,
            "losses": [],
            "log": None,
            "skipped": EMPTY,
        }
        write_json(folder / "model.json", record)
        return record
    run = train_clip(
        config,
        [shards / n for n in sizes],
        sum(sizes.values()),
        folder.parent,
        folder.name,
        progress,
    )
    record = {
        "arch": config.model,
        "checkpoint": str(run.checkpoint_path),
        "sha256": weights_sha256(run.checkpoint_path),
        "scale": scale,
        "seed": seed,
        "samples_seen": run.samples_seen,
        "train_samples": sum(sizes.values()),
        "seconds": round(run.seconds, 1),
        "losses": run.losses,
        "log": str(run.log_path),
    }
    write_json(folder / "model.json", record)
    return record
