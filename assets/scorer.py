"""scorer: the CLIP whose image-text similarity is every pool sample's CLIP score."""

import dagster as dg
from poolsieve.assets.metadata import INPUT_ERRORS, failing_clearly, problem_check, throttled
from poolsieve.pipelines.resources import EmbeddingResource, LakeResource, ScorerResource

from poolsieve.clip.scorer import build_scorer, load_scorer, read_scorer

LOADS = "recorded_weights_load"


@dg.asset(
    group_name="images",
    code_version="scorer-v1",
    kinds={"pytorch", "openclip"},
    check_specs=[dg.AssetCheckSpec(LOADS, asset="scorer", blocking=True)],
)
def scorer(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    scorer: ScorerResource,
    embedding: EmbeddingResource,
):
    """A configured checkpoint / pretrained tag, or a tiny CLIP trained on the trusted set."""
    report = throttled(context.log.info)

    def progress(p) -> None:
        report(p.step, p.total_steps, f"scorer training (loss {p.loss:.3f}): step")

    with failing_clearly(*INPUT_ERRORS):
        info = build_scorer(lake.store, scorer.settings, progress)
    metadata = {
        "arch": info.arch,
        "origin": info.origin,
        "source": info.source,
        "weights": dg.MetadataValue.path(info.weights),
        "weights_sha256": info.weights_sha256,
    }
    if info.training:
        losses = info.training.losses
        metadata |= {
            "scale": info.training.scale,
            "trusted_samples": info.training.trusted_samples,
            "samples_seen": info.training.samples_seen,
            "train_seconds": dg.MetadataValue.float(info.training.seconds),
            "loss_first": dg.MetadataValue.float(losses[0][1]) if losses else None,
            "loss_last": dg.MetadataValue.float(losses[-1][1]) if losses else None,
            "train_log": dg.MetadataValue.path(info.training.log),
        }
    context.log.info(f"scorer {info.arch} ({info.origin}) sha256 {info.weights_sha256[:12]}")
    return dg.MaterializeResult(
        metadata={k: v for k, v in metadata.items() if v is not None},
        check_results=[_loads(lake, embedding)],
    )


def _loads(lake: LakeResource, embedding: EmbeddingResource) -> dg.AssetCheckResult:
    """What every embedding step will do: read scorer.json, load the weights, verify sha256."""
    try:
        load_scorer(read_scorer(lake.store), embedding.device)
        problem = ""
    except (OSError, ValueError, RuntimeError) as err:
        problem = str(err)
    return problem_check(LOADS, problem)
