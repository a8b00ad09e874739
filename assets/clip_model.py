"""clip_model: open_clip's own trainer on one strategy's train shards, same budget for every one."""

import math

import dagster as dg
from poolsieve.assets.metadata import INPUT_ERRORS, failing_clearly, problem_check, throttled
from poolsieve.assets.train_shards import train_shards
from poolsieve.pipelines.partitions import STRATEGIES
from poolsieve.pipelines.resources import LakeResource, TrainingResource

from poolsieve.curate.training import ModelRecord, train_strategy
from poolsieve.lake import file_sha256

TRAINED_OK = "finite_loss_and_recorded_checkpoint"


@dg.asset(
    partitions_def=STRATEGIES,
    deps=[train_shards],
    code_version="train-v1",
    group_name="curation",
    kinds={"pytorch", "openclip"},
    check_specs=[dg.AssetCheckSpec(TRAINED_OK, asset="clip_model", blocking=True)],
)
def clip_model(context: dg.AssetExecutionContext, lake: LakeResource, training: TrainingResource):
    """A CLIP trained at the configured scale (training.scale), offline; log + checkpoint."""
    name = context.partition_key
    report = throttled(context.log.info)

    def progress(p) -> None:
        report(p.step, p.total_steps, f"{name} training (loss {p.loss:.3f}): step")

    with failing_clearly(*INPUT_ERRORS):
        record = train_strategy(
            lake.store,
            name,
            training.scale,
            training.seed,
            training.samples,
            progress,
        )
    losses = record.losses
    if record.checkpoint is None:
        context.log.warning(f"{name}: {record.skipped}")
        return dg.MaterializeResult(
            metadata={"trained": False, "skipped": record.skipped},
            check_results=[problem_check(TRAINED_OK, "", skipped=record.skipped)],
        )
    return dg.MaterializeResult(
        metadata={
            "trained": True,
            "arch": record.arch,
            "scale": record.scale,
            "seed": record.seed,
            "samples_seen": record.samples_seen,
            "train_samples": record.train_samples,
            "seconds": dg.MetadataValue.float(record.seconds),
            "loss_first": dg.MetadataValue.float(losses[0][1] if losses else float("nan")),
            "loss_last": dg.MetadataValue.float(losses[-1][1] if losses else float("nan")),
            "weights_sha256": record.sha256,
            "checkpoint": dg.MetadataValue.path(record.checkpoint),
            "log": dg.MetadataValue.path(record.log),
        },
        check_results=[problem_check(TRAINED_OK, _training_problem(record))],
    )


def _training_problem(record: ModelRecord) -> str:
    """A NaN/inf loss or a checkpoint that is not the one recorded makes its evaluation wrong."""
    bad = [step for step, loss in record.losses if not math.isfinite(loss)]
    if bad or not record.losses:
        return f"non-finite loss at steps {bad[:5]}" if bad else "no loss was logged"
    if file_sha256(record.checkpoint) != record.sha256:
        return f"checkpoint {record.checkpoint} differs from its recorded sha256"
    return ""
