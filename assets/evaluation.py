"""evaluation: zero-shot classification and image-text retrieval of one strategy's CLIP."""

import math

import dagster as dg
from poolsieve.assets.clip_model import clip_model
from poolsieve.assets.metadata import INPUT_ERRORS, failing_clearly, problem_check, throttled
from poolsieve.pipelines.partitions import STRATEGIES
from poolsieve.pipelines.resources import EmbeddingResource, EvalSetsResource, LakeResource

from poolsieve.curate.evaluation import evaluate_strategy

IN_RANGE = "metrics_finite_in_0_1"


@dg.asset(
    partitions_def=STRATEGIES,
    deps=[clip_model],
    code_version="eval-v1",
    group_name="curation",
    kinds={"pytorch"},
    check_specs=[dg.AssetCheckSpec(IN_RANGE, asset="evaluation", blocking=True)],
)
def evaluation(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    embedding: EmbeddingResource,
    eval_sets: EvalSetsResource,
):
    """Top-1 and mean per-class recall; recall@1/5/10 both ways; the average of main metrics."""
    name = context.partition_key
    report = throttled(context.log.info)
    with failing_clearly(*INPUT_ERRORS):
        doc, _ = evaluate_strategy(
            lake.store,
            name,
            eval_sets.eval_path,
            embedding.device,
            eval_sets.suite_dir,
            lambda done, total: report(done, total, f"{name}: suite tasks"),
        )
    metrics = {k: v for k, v in doc.metrics.items() if v is not None}
    if doc.skipped is not None:
        context.log.warning(f"{name}: not evaluated: {doc.skipped}")
        return dg.MaterializeResult(
            metadata={"evaluated": False, "skipped": doc.skipped},
            check_results=[problem_check(IN_RANGE, "", skipped=doc.skipped)],
        )
    context.log.info(f"{name}: average {metrics['average']:.3f}")
    suite_failed = doc.suite.failed if doc.suite else {}
    if suite_failed:
        context.log.warning(f"{name}: suite tasks that failed to load: {suite_failed}")
    return dg.MaterializeResult(
        metadata={k: dg.MetadataValue.float(float(v)) for k, v in metrics.items()}
        | {
            "samples_seen": doc.samples_seen,
            "seed": doc.seed,
            "suite_failed": list(suite_failed),
        },
        check_results=[problem_check(IN_RANGE, _out_of_range(metrics))],
    )


def _out_of_range(metrics: dict) -> str:
    """Accuracies and recalls are fractions: a NaN or a value outside [0, 1] is a bug upstream."""
    bad = {k: v for k, v in metrics.items() if not (math.isfinite(float(v)) and 0 <= v <= 1)}
    return f"metrics outside [0, 1]: {bad}" if bad else ""
