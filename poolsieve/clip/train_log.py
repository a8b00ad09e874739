"""Read open_clip_train's progress lines (its out.log, or the live console) into numbers.

One `StepLog` per logged training step. The trainer logs every `--log-every-n-steps` batches and
the last batch of each epoch, e.g.
`Train Epoch: 0 [ 640/4480 (14%)] Data (t): 0.01 Batch (t): 0.50, 128.0/s, ... Loss: 3.9 (4.1)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_STEP = re.compile(
    r"Train Epoch: (?P<epoch>\d+) \[\s*(?P<done>\d+)/(?P<size>\d+) .*?"
    r"Batch \(t\): [^,]+, (?P<rate>[^/]+)/s.*? Loss: (?P<loss>\S+) \("
)


@dataclass(frozen=True)
class StepLog:
    """One logged step: where in which epoch, the trainer's speed, and that batch's total loss."""

    epoch: int
    epoch_samples: int
    epoch_size: int
    samples_per_s: float
    loss: float

    @property
    def samples_seen(self) -> int:
        return self.epoch * self.epoch_size + self.epoch_samples


def parse_step(line: str) -> StepLog | None:
    """The step logged on `line`, or None for any other line."""
    match = _STEP.search(line)
    if match is None:
        return None
    return StepLog(
        epoch=int(match["epoch"]),
        epoch_samples=int(match["done"]),
        epoch_size=int(match["size"]),
        samples_per_s=float(match["rate"]),
        loss=float(match["loss"]),
    )


def read_steps(log_path: str | Path) -> list[StepLog]:
    """Every logged step in a trainer log file, in order."""
    lines = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()
    return [step for step in map(parse_step, lines) if step is not None]
