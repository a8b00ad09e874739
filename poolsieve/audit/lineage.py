"""Dataset lineage: what produced a strategy's model, read from the Dagster event log.

``dataset_lineage(instance, strategy, shards)`` gives each step's materialization (run, code and
data version, key metadata) from the evaluation back to the scorer, each the one the step below
it read (``poolsieve.audit.events.read_by``), the shard materializations pool_features read, and
where a newer materialization of a step exists than the one read, that one.
``poolsieve lineage`` prints it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from poolsieve.audit.events import Materialization, latest_record, newer_than, read_by
from poolsieve.lake import SHARD_ASSETS

#: the per-strategy steps behind a model, newest first
STRATEGY_STEPS = ["evaluation", "clip_model", "train_shards", "subset"]
#: the metadata `format_lineage` shows per step (every key where a step is not listed)
SHOWN_KEYS = {
    "clip_model": [
        "arch",
        "scale",
        "seed",
        "samples_seen",
        "train_samples",
        "weights_sha256",
        "checkpoint",
        "loss_first",
        "loss_last",
    ],
    "train_shards": ["samples", "subset_uids", "missing_images"],
    "subset": ["kept", "rows", "sql_hash", "params", "subset_npy"],
    "pool_features": ["dagster/row_count", "eligible", "language_detector", "shards"],
    "scorer": ["arch", "origin", "source", "weights_sha256"],
}


@dataclass(frozen=True)
class Lineage:
    """What produced one strategy's model: each step's materialization (None: never
    materialized), the shard materializations pool_features read, and per step or shard the
    newer materialization that exists when it is not the one read."""

    strategy: str
    steps: dict[str, Materialization | None]
    shards: dict[str, Materialization | None]
    newer: dict[str, Materialization] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON document (``{}`` for a step never materialized)."""

        def plain(steps: dict[str, Materialization | None]) -> dict:
            return {key: step.to_dict() if step else {} for key, step in steps.items()}

        return {
            "strategy": self.strategy,
            "steps": plain(self.steps),
            "shards": plain(self.shards),
            "newer": plain(self.newer),
        }


def dataset_lineage(instance, strategy: str, shards: list[str]) -> Lineage:
    """What produced ``strategy``'s model, read from the event log: the latest evaluation, then
    each step's materialization that the step above it read (run, code and data version, key
    metadata), down to the scorer and the shard materializations pool_features read."""
    chain = [(a, strategy) for a in STRATEGY_STEPS] + [("pool_features", None), ("scorer", None)]
    steps, newer, reader = {}, {}, None
    for asset, partition in chain:
        if reader is None:  # the top, or the step above was never materialized: the latest
            step = latest_record(instance, asset, partition)
        else:
            step = read_by(instance, reader, asset, partition)
            newer[asset] = newer_than(instance, step, asset, partition)
        steps[asset] = reader = step
    features, pool = steps["pool_features"], {}
    for shard, asset in ((s, a) for s in shards for a in SHARD_ASSETS):
        key = f"{asset}[{shard}]"
        pool[key] = features and read_by(instance, features, asset, shard)
        newer[key] = features and newer_than(instance, pool[key], asset, shard)
    return Lineage(strategy, steps, pool, {k: v for k, v in newer.items() if v})


def _newer(lineage: Lineage, key: str) -> str:
    later = lineage.newer.get(key)
    return f"\n      a newer one exists, not read: run {later.run_id[:8]}" if later else ""


def format_lineage(lineage: Lineage) -> str:
    lines = [f"lineage of strategy {lineage.strategy} (from the Dagster event log)"]
    for asset, step in lineage.steps.items():
        if not step:
            lines.append(f"  {asset}: never materialized")
            continue
        keys = SHOWN_KEYS.get(asset) or list(step.metadata)
        shown = ", ".join(f"{k}={rounded(step.metadata[k])}" for k in keys if k in step.metadata)
        lines.append(
            f"  {asset}: run {step.run_id[:8]}, code {step.code_version}, "
            f"data {str(step.data_version)[:12]}\n      {shown}{_newer(lineage, asset)}"
        )
    lines.append("  pool shards read by pool_features:")
    for key, step in lineage.shards.items():
        if step:
            meta = step.metadata
            detail = (
                meta.get("source_sha256") or meta.get("sql_hash") or meta.get("scorer_sha256") or ""
            )
            lines.append(
                f"    {key}: run {step.run_id[:8]}, code {step.code_version} {detail}"
                + _newer(lineage, key)
            )
        else:
            lines.append(f"    {key}: not materialized before pool_features")
    return "\n".join(lines)


def rounded(value):
    """``value`` for the console: floats to 4 significant digits (whole numbers from 10,000 up),
    inside dicts and lists too, so a loss reads 4.159, not 4.158934593200684; --json keeps all."""
    if isinstance(value, float) and math.isfinite(value):
        return round(value) if abs(value) >= 1e4 else float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value
