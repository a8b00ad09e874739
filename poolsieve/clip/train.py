"""Train a CLIP with open_clip_train: a typed config, its exact CLI arguments, and a runner.

Compute is fixed by samples seen, as in DataComp: the trainer samples shards with replacement
(`--dataset-resampled`) and an "epoch" is just a checkpoint interval of samples_seen / epochs
samples. So every filtering strategy trains on the same budget whatever its dataset size, and
the hyperparameters stay those of the scale, never tuned per filter.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from poolsieve.clip.offline import OFFLINE_ENV
from poolsieve.clip.train_log import StepLog, parse_step, read_steps
from poolsieve.lake import replace_dir

# open_clip_train's webdataset reader renames these keys to image/text; no CLI flag changes them.
WDS_IMAGE_KEYS = ("jpg", "png", "jpeg", "webp")
WDS_TEXT_KEYS = ("txt",)
#: the trainer subprocess's environment names the process that waits for it (run_trainer.py)
PARENT_PID_ENV = "POOLSIEVE_TRAINER_PARENT"


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe. `batch_size` is per process (this runner starts a single one).

    `samples_seen` is the compute budget; None trains `epochs` passes of the data's size instead.
    `precision` "auto" is fp32 on CPU (bf16 is much slower there) and amp_bf16 on CUDA.
    """

    model: str = "poolsieve-tiny"
    batch_size: int = 64
    lr: float = 1e-3
    wd: float = 0.2
    warmup: int = 10
    epochs: int = 1
    samples_seen: int | None = None
    beta2: float | None = None
    precision: str = "auto"
    workers: int = 1
    seed: int = 0
    log_every: int = 1
    image_key: str = "jpg"
    text_key: str = "txt"


def _datacomp(model: str, batch: int, lr: float, warmup: int, samples: int, **kw) -> TrainConfig:
    """DataComp's recipe: 5 checkpoints over the budget, AdamW wd 0.2, cosine, log every 100."""
    return TrainConfig(
        model=model,
        batch_size=batch,
        lr=lr,
        warmup=warmup,
        samples_seen=samples,
        epochs=5,
        workers=4,
        log_every=100,
        **kw,
    )


DATACOMP_SCALES: dict[str, TrainConfig] = {
    "small": _datacomp("ViT-B-32", 4096, 5e-4, 500, 12_800_000),
    "medium": _datacomp("ViT-B-32", 4096, 5e-4, 500, 128_000_000),
    "large": _datacomp("ViT-B-16", 8192, 5e-4, 500, 1_280_000_000),
    "xlarge": _datacomp("ViT-L-14", 90112, 1e-3, 10_000, 12_800_000_000, beta2=0.95),
}

# The CPU scale: 200 steps of 64, fp32 on the CPU; workers=1 moves JPEG decoding off the
# training process (its timings: docs/decisions.md).
SCALES: dict[str, TrainConfig] = {
    **DATACOMP_SCALES,
    "tiny-cpu": TrainConfig(samples_seen=12_800, warmup=20, workers=1),
}


def scale_config(scale: str, **overrides) -> TrainConfig:
    """The recipe for a named scale, with optional field overrides (e.g. workers, seed)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; known: {sorted(SCALES)}")
    return replace(SCALES[scale], **overrides)


def resolve_precision(precision: str, cuda: bool | None = None) -> str:
    """ "auto" -> amp_bf16 with CUDA, fp32 without; explicit values pass through."""
    if precision != "auto":
        return precision
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    return "amp_bf16" if cuda else "fp32"


def samples_per_epoch(config: TrainConfig, num_samples: int) -> int:
    """Samples between checkpoints: the budget split over `epochs`, or one pass of the data."""
    if num_samples <= 0:
        raise ValueError("training data is empty (num_samples must be > 0)")
    if config.samples_seen is None:
        return num_samples
    return config.samples_seen // config.epochs


def planned_samples(config: TrainConfig, num_samples: int) -> int:
    """Samples the trainer will actually see: it rounds each epoch up to whole batches per worker."""
    batches = math.ceil(samples_per_epoch(config, num_samples) / config.batch_size)
    workers = max(1, config.workers)
    batches = math.ceil(batches / workers) * workers
    return batches * config.batch_size * config.epochs


def _check_keys(config: TrainConfig) -> None:
    if config.image_key not in WDS_IMAGE_KEYS or config.text_key not in WDS_TEXT_KEYS:
        raise ValueError(
            f"open_clip_train reads webdataset images from {WDS_IMAGE_KEYS} and text from "
            f"{WDS_TEXT_KEYS}; got {config.image_key!r}/{config.text_key!r}"
        )


def _shards(train_data: str | Path | Sequence[str | Path]) -> str:
    """One shard spec (a path, a brace pattern, or a list joined with open_clip's "::")."""
    if isinstance(train_data, str | Path):
        return str(train_data)
    return "::".join(str(shard) for shard in train_data)


def trainer_args(
    config: TrainConfig,
    train_data: str | Path | Sequence[str | Path],
    num_samples: int,
    out_dir: str | Path,
    name: str,
) -> list[str]:
    """open_clip_train's argv for `config` on webdataset shards holding `num_samples` samples.

    Writes `out_dir/name/{out.log,params.txt,checkpoints/epoch_N.pt}`; reports nowhere (no
    wandb, no tensorboard) and downloads nothing (no pretrained weights, no zero-shot eval).
    """
    _check_keys(config)
    options = {
        "--train-data": _shards(train_data),
        "--train-num-samples": samples_per_epoch(config, num_samples),
        "--dataset-type": "webdataset",
        "--batch-size": config.batch_size,
        "--epochs": config.epochs,
        "--lr": config.lr,
        "--wd": config.wd,
        "--warmup": config.warmup,
        "--lr-scheduler": "cosine",
        "--model": config.model,
        "--precision": resolve_precision(config.precision),
        "--workers": config.workers,
        "--seed": config.seed,
        "--logs": out_dir,
        "--name": name,
        "--save-frequency": 1,
        "--log-every-n-steps": config.log_every,
        "--report-to": "",
    }
    if config.beta2 is not None:
        options["--beta2"] = config.beta2
    return [str(x) for pair in options.items() for x in pair] + ["--dataset-resampled"]


@dataclass(frozen=True)
class TrainProgress:
    """A live progress report, one per logged step."""

    step: int
    total_steps: int
    samples_seen: int
    samples_per_s: float
    loss: float
    eta_s: float


@dataclass(frozen=True)
class TrainResult:
    """What a finished run left: its final checkpoint, its log and the loss per step."""

    checkpoint_path: Path
    log_path: Path
    losses: list[tuple[int, float]]
    samples_seen: int
    seconds: float


class TrainingFailed(RuntimeError):
    """open_clip_train exited non-zero; the message carries the tail of its output."""


def _progress(step: StepLog, config: TrainConfig, total: int) -> TrainProgress:
    seen = step.samples_seen
    rate = step.samples_per_s
    return TrainProgress(
        step=seen // config.batch_size,
        total_steps=total // config.batch_size,
        samples_seen=seen,
        samples_per_s=rate,
        loss=step.loss,
        eta_s=(total - seen) / rate if rate > 0 else math.inf,
    )


def _run_trainer(argv: list[str], on_line: Callable[[str], None]) -> None:
    """Run the patched, offline trainer in a subprocess, streaming each output line.

    The trainer is told this process's pid (``PARENT_PID_ENV``) and dies with it
    (poolsieve.parent_death): killed by SIGKILL, this process could not stop it, and it would
    go on writing into the run's folder while a re-run starts over there."""
    command = [sys.executable, "-m", "poolsieve.clip.run_trainer", *argv]
    env = {**os.environ, **OFFLINE_ENV, PARENT_PID_ENV: str(os.getpid())}
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        try:
            for line in proc.stdout:
                tail.append(line)
                on_line(line)
        except BaseException:  # a cancelled run (or a failing callback) must not leave it training
            proc.kill()
            raise
    if proc.returncode != 0:
        raise TrainingFailed(f"open_clip_train exited {proc.returncode}:\n{''.join(tail)}")


def _checkpoint(run_dir: Path, config: TrainConfig) -> Path:
    """The last epoch's checkpoint; its presence is what marks a run complete."""
    return run_dir / "checkpoints" / f"epoch_{config.epochs}.pt"


def _finished(run_dir: Path, config: TrainConfig, seconds: float) -> TrainResult:
    log_path = run_dir / "out.log"
    steps = read_steps(log_path)
    losses = [(s.samples_seen // config.batch_size, s.loss) for s in steps]
    seen = steps[-1].samples_seen if steps else 0
    return TrainResult(_checkpoint(run_dir, config), log_path, losses, seen, seconds)


def train_clip(
    config: TrainConfig,
    train_data: str | Path | Sequence[str | Path],
    num_samples: int,
    out_dir: str | Path,
    name: str,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Train `config` on webdataset shards; the run appears as `out_dir/name` only when complete.

    The trainer writes under `out_dir/.partial/name` and the folder is moved into place at the
    end, so a crashed run never looks finished and a re-run starts clean (replacing any earlier
    `out_dir/name`; paths inside its out.log and params.txt still name the staging folder).
    `progress` gets one `TrainProgress` per logged step.
    """
    out_dir = Path(out_dir)
    staging, final = out_dir / ".partial", out_dir / name
    shutil.rmtree(staging / name, ignore_errors=True)
    argv = trainer_args(config, train_data, num_samples, staging, name)
    total = planned_samples(config, num_samples)

    def on_line(line: str) -> None:
        step = parse_step(line)
        if step is not None and progress is not None:
            progress(_progress(step, config, total))

    started = time.monotonic()
    _run_trainer(argv, on_line)
    seconds = time.monotonic() - started
    if not _checkpoint(staging / name, config).is_file():
        raise TrainingFailed(
            f"trainer exited cleanly but wrote no {_checkpoint(staging / name, config)}"
        )
    replace_dir(staging / name, final)
    return _finished(final, config, seconds)
