"""evaluation's logic: one strategy's CLIP on the held-out eval sets (and DataComp's suite).

Writes ``<lake>/evaluation/<strategy>/metrics.json``; a strategy whose subset kept nothing has
no model, and its metrics say why.
"""

from __future__ import annotations

import json

from poolsieve.clip.models import ScorerSpec, load_clip
from poolsieve.curate.metrics import Evaluation, evaluate
from poolsieve.curate.suite import evaluate_suite
from poolsieve.curate.training import EMPTY
from poolsieve.lake import Lake, write_json


def evaluate_strategy(
    lake: Lake,
    strategy: str,
    eval_dir: str,
    device: str = "auto",
    suite_dir: str = "",
    progress=None,
) -> tuple[dict, Evaluation]:
    """The held-out eval sets (and DataComp's suite under ``suite_dir`` when given, calling
    ``progress(done, total)`` per suite task)."""
    model_file = lake.partition_dir("clip_model", strategy) / "model.json"
    if not model_file.is_file():
        raise FileNotFoundError(f"no clip_model for {strategy!r}: materialize it first")
    record = json.loads(model_file.read_text())
    out = lake.partition_dir("evaluation", strategy) / "metrics.json"
    if record["checkpoint"] is None:
        doc = {
            "strategy": strategy,
            "model_sha256": None,
            "seed": record["seed"],
            "samples_seen": 0,
            "metrics": {},
            "skipped": record.get("skipped", EMPTY),
        }
        write_json(out, doc)
        return doc, Evaluation({})
    clip = load_clip(ScorerSpec(record["arch"], record["checkpoint"]), device)
    result = evaluate(clip, eval_dir)
    doc = {
        "strategy": strategy,
        "model_sha256": record["sha256"],
        "seed": record["seed"],
        "samples_seen": record["samples_seen"],
        "metrics": result.flat(),
    }
    if suite_dir:
        suite = evaluate_suite(clip, suite_dir, progress=progress)
        doc["suite"] = suite
        doc["metrics"]["suite/average"] = suite["average"]
    write_json(out, doc)
    return doc, result
