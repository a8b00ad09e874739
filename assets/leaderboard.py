"""leaderboard: every strategy's subset size and metrics, with plots, in the Dagster UI."""

import dagster as dg
from poolsieve.assets.evaluation import evaluation
from poolsieve.assets.metadata import png_markdown, problem_check
from poolsieve.pipelines.partitions import STRATEGIES
from poolsieve.pipelines.resources import LakeResource

from poolsieve.curate.leaderboard import build_leaderboard


def _lineage_links(instance, rows) -> str:
    """Per strategy: the evaluation run behind its row and the command that traces it."""
    from poolsieve.audit.events import latest_materialization

    lines = ["| strategy | evaluation run | lineage |", "|---|---|---|"]
    for r in rows:
        run = latest_materialization(instance, "evaluation", r["strategy"]) or {}
        lines.append(
            f"| {r['strategy']} | {str(run.get('run_id', '—'))[:8]} | "
            f"`poolsieve lineage {r['strategy']}` |"
        )
    return "\n".join(lines)


ACCOUNTED = "every_strategy_ranked_or_listed_missing"


@dg.asset(
    deps=[evaluation],
    code_version="leaderboard-v1",
    group_name="curation",
    kinds={"parquet", "matplotlib"},
    check_specs=[dg.AssetCheckSpec(ACCOUNTED, asset="leaderboard")],
)
def leaderboard(context: dg.AssetExecutionContext, lake: LakeResource):
    """Strategy -> subset size, each metric, average; accuracy-vs-size and drops-per-reason plots."""
    board = build_leaderboard(lake.store, STRATEGIES.get_partition_keys())
    if board.missing:
        context.log.warning(f"strategies without an evaluation yet: {board.missing}")
    if not board.rows:
        raise dg.Failure("no strategy has been evaluated yet: materialize evaluation first")
    metadata = {
        "leaderboard": dg.MetadataValue.md(board.markdown()),
        "lineage": dg.MetadataValue.md(_lineage_links(context.instance, board.rows)),
        "strategies": len(board.rows),
        "not_evaluated": board.missing,
        "best": board.rows[0]["strategy"],
        "table": dg.MetadataValue.path(str(board.files["table"])),
    }
    for key in ("accuracy_plot", "drops_plot"):
        metadata[key] = png_markdown(board.files[key])
        metadata[f"{key}_path"] = dg.MetadataValue.path(str(board.files[key]))
    ranked = [r["strategy"] for r in board.rows]
    lost = set(STRATEGIES.get_partition_keys()) - set(ranked) - set(board.missing)
    problem = f"strategies neither ranked nor listed as missing: {sorted(lost)}" if lost else ""
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            problem_check(ACCOUNTED, problem, ranked=len(ranked), not_evaluated=len(board.missing))
        ],
    )
