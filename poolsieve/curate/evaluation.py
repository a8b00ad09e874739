"""evaluation's logic: one strategy's CLIP on the held-out eval sets (and DataComp's suite).

Writes ``<lake>/evaluation/<strategy>/metrics.json`` (an ``EvaluationDoc``); a strategy whose
subset kept nothing has no model, and its metrics say why.
"""

from __future__ import annotations

from dataclasses import dataclass

from poolsieve.clip.models import ScorerSpec, load_clip
from poolsieve.curate.metrics import Evaluation, evaluate
from poolsieve.curate.suite import SuiteResult, evaluate_suite
from poolsieve.curate.training import EMPTY, read_model_record
from poolsieve.lake import Lake, write_json


@dataclass(frozen=True)
class EvaluationDoc:
    """One strategy's metrics as metrics.json records them, with the model they came from."""

    strategy: str
    model_sha256: str | None  # None: no model (see skipped)
    seed: int
    samples_seen: int
    metrics: dict[str, float | None]  # "task/metric" -> value, "average", "suite/average"
    suite: SuiteResult | None = None  # written only when the suite ran
    skipped: str | None = None  # why nothing was evaluated; written only when set

    def to_dict(self) -> dict:
        doc = {
            "strategy": self.strategy,
            "model_sha256": self.model_sha256,
            "seed": self.seed,
            "samples_seen": self.samples_seen,
            "metrics": self.metrics,
        }
        if self.skipped is not None:
            doc["skipped"] = self.skipped
        if self.suite is not None:
            doc["suite"] = self.suite.to_dict()
        return doc


def evaluate_strategy(
    lake: Lake,
    strategy: str,
    eval_dir: str,
    device: str = "auto",
    suite_dir: str = "",
    progress=None,
) -> tuple[EvaluationDoc, Evaluation]:
    """The held-out eval sets (and DataComp's suite under ``suite_dir`` when given, calling
    ``progress(done, total)`` per suite task)."""
    record = read_model_record(lake, strategy)
    out = lake.partition_dir("evaluation", strategy) / "metrics.json"
    if record.checkpoint is None:
        skipped = EMPTY if record.skipped is None else record.skipped
        doc = EvaluationDoc(strategy, None, record.seed, 0, {}, skipped=skipped)
        write_json(out, doc.to_dict())
        return doc, Evaluation({})
    clip = load_clip(ScorerSpec(record.arch, record.checkpoint), device)
    result = evaluate(clip, eval_dir)
    metrics, suite = result.flat(), None
    if suite_dir:
        suite = evaluate_suite(clip, suite_dir, progress=progress)
        metrics["suite/average"] = suite.average
    doc = EvaluationDoc(strategy, record.sha256, record.seed, record.samples_seen, metrics, suite)
    write_json(out, doc.to_dict())
    return doc, result
