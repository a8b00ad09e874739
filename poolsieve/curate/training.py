"""clip_model's logic: train one strategy's CLIP.

Every strategy trains with the same recipe, samples-seen budget and seed (DataComp's rule: only
the data changes). ``<lake>/clip_model/<strategy>/`` holds open_clip_train's run (out.log,
params.txt, checkpoints/) and ``model.json``, a ``ModelRecord``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

from poolsieve.clip.models import weights_sha256
from poolsieve.clip.train import TrainProgress, scale_config, train_clip
from poolsieve.lake import Lake, write_json

EMPTY = "the subset kept no downloaded sample: nothing to train on"
MODEL_FILE = "model.json"


@dataclass(frozen=True)
class ModelRecord:
    """One strategy's CLIP as ``model.json`` records it, or why there is none (``skipped``).

    A subset that kept nothing is a result, not an error: it gets a record with no checkpoint
    (``checkpoint``, ``sha256`` and ``log`` None) so evaluation and the leaderboard can say why.
    """

    arch: str
    checkpoint: str | None
    sha256: str | None
    scale: str
    seed: int
    samples_seen: int
    train_samples: int
    seconds: float
    losses: list[tuple[int, float]]  # (step, loss) per logged step
    log: str | None
    skipped: str | None = None  # written to model.json only when set

    def to_dict(self) -> dict:
        doc = asdict(self)
        if self.skipped is None:
            del doc["skipped"]
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> ModelRecord:
        return cls(**{**doc, "losses": [tuple(x) for x in doc["losses"]]})


def read_model_record(lake: Lake, strategy: str) -> ModelRecord:
    """``strategy``'s model.json; FileNotFoundError when clip_model has not run for it."""
    path = lake.partition_dir("clip_model", strategy) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no clip_model for {strategy!r}: materialize it first")
    try:
        return ModelRecord.from_dict(json.loads(path.read_text()))
    except TypeError as error:  # a missing or unknown field
        raise ValueError(f"{path} is not a model record: {error}") from error


def train_strategy(
    lake: Lake,
    strategy: str,
    scale: str,
    seed: int,
    samples_seen: int = 0,
    progress: Callable[[TrainProgress], None] | None = None,
) -> ModelRecord:
    """Train ``scale``'s recipe on ``strategy``'s train shards and write its model.json.

    ``samples_seen`` 0 keeps the scale's budget; an empty subset trains nothing (see
    ``ModelRecord``)."""
    shards = lake.partition_dir("train_shards", strategy)
    sizes_file = shards / "sizes.json"
    if not sizes_file.is_file():
        raise FileNotFoundError(f"no train_shards for {strategy!r} ({shards}): materialize them")
    sizes = json.loads(sizes_file.read_text())
    overrides = {"seed": seed, **({"samples_seen": samples_seen} if samples_seen else {})}
    config = scale_config(scale, **overrides)
    folder = lake.partition_dir("clip_model", strategy)
    if not sum(sizes.values()):
        record = ModelRecord(
            arch=config.model,
            checkpoint=None,
            sha256=None,
            scale=scale,
            seed=seed,
            samples_seen=0,
            train_samples=0,
            seconds=0.0,
            losses=[],
            log=None,
            skipped=EMPTY,
        )
        write_json(folder / MODEL_FILE, record.to_dict())
        return record
    run = train_clip(
        config,
        [shards / n for n in sizes],
        sum(sizes.values()),
        folder.parent,
        folder.name,
        progress,
    )
    record = ModelRecord(
        arch=config.model,
        checkpoint=str(run.checkpoint_path),
        sha256=weights_sha256(run.checkpoint_path),
        scale=scale,
        seed=seed,
        samples_seen=run.samples_seen,
        train_samples=sum(sizes.values()),
        seconds=round(run.seconds, 1),
        losses=run.losses,
        log=str(run.log_path),
    )
    write_json(folder / MODEL_FILE, record.to_dict())
    return record
