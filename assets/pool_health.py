"""pool_health: a sample of each shard's downloaded URLs re-fetched (link rot, hash drift);
subset_health: each strategy's share still downloadable. Re-run by pool_health_schedule."""

import dagster as dg
from poolsieve.assets.image_hashes import image_hashes
from poolsieve.assets.metadata import (
    ROWS_CONSERVED,
    YAML_TESTS,
    conservation_check,
    failing_clearly,
    png_markdown,
    reason_counts,
    yaml_check,
)
from poolsieve.assets.selected_images import selected_images
from poolsieve.assets.shard_images import shard_images
from poolsieve.assets.subset import subset
from poolsieve.pipelines.partitions import SHARDS
from poolsieve.pipelines.resources import DownloaderResource, LakeResource

from poolsieve.images.health import OUTCOMES, check_shard, plot_pool
from poolsieve.images.health import subset_health as compute_subset_health
from poolsieve.sqlrunner import SqlProject

PROJECT = SqlProject()
RATES = ("link_rot_rate", "hash_drift_rate", "image_change_rate")
HISTORY_ROWS = 12  # the latest checks shown as a table in the UI


@dg.asset(
    partitions_def=SHARDS,
    deps=[shard_images, image_hashes, selected_images],
    code_version="health-v1",
    group_name="health",
    kinds={"parquet", "matplotlib"},
    check_specs=[dg.AssetCheckSpec(ROWS_CONSERVED, asset="pool_health", blocking=True)],
)
def pool_health(
    context: dg.AssetExecutionContext, lake: LakeResource, downloader: DownloaderResource
):
    """A sample of the shard's downloaded URLs fetched again: alive, dead, opted out, re-encoded
    (other bytes, same pHash) or replaced. Its rates over time: ``history_plot`` and ``history``."""
    shard = context.partition_key
    with failing_clearly(FileNotFoundError):
        result = check_shard(lake.store, shard, downloader.settings, downloader.health)
    s = result.summary
    context.log.info(
        f"{shard}: checked {s['checked']} of {s['downloaded']} downloaded: link rot "
        f"{s['link_rot_rate']:.1%}, hash drift {s['hash_drift_rate']:.1%}"
    )
    return dg.MaterializeResult(
        metadata={
            "downloaded": s["downloaded"],
            "checked": s["checked"],
            **reason_counts("outcome", {o: s[o] for o in OUTCOMES}, list(OUTCOMES)),
            **{rate: dg.MetadataValue.float(round(s[rate], 4)) for rate in RATES},
            **_plot_metadata("history_plot", result.plot_path),
            "history": dg.MetadataValue.md(history_table(result.history)),
            "checks_path": dg.MetadataValue.path(str(result.checks_path)),
        },
        check_results=[
            conservation_check(ROWS_CONSERVED, result.sampled, {o: s[o] for o in OUTCOMES})
        ],
    )


def history_table(history: list[dict]) -> str:
    """The shard's latest checks as a markdown table (the newest last)."""
    rows = history[-HISTORY_ROWS:]
    lines = ["| checked at | checked | dead | re-encoded | replaced | link rot | hash drift |"]
    lines.append("|---|---|---|---|---|---|---|")
    lines += [
        f"| {r['checked_at']:%Y-%m-%d %H:%M} | {r['checked']} | {r['dead']} | {r['reencoded']} "
        f"| {r['replaced']} | {r['link_rot_rate']:.1%} | {r['hash_drift_rate']:.1%} |"
        for r in rows
    ]
    return "\n".join(lines)


@dg.asset(
    deps=[pool_health, subset],
    code_version=PROJECT.code_version(["subset_health"]),
    group_name="health",
    kinds={"duckdb", "parquet", "matplotlib"},
    check_specs=[dg.AssetCheckSpec(YAML_TESTS, asset="subset_health", blocking=True)],
)
def subset_health(context: dg.AssetExecutionContext, lake: LakeResource):
    """Each strategy's share of its kept rows still downloadable, on the rows the latest
    pool_health checks re-fetched."""
    path, table, failures = compute_subset_health(lake.store, PROJECT)
    plot = plot_pool(lake.store)
    rows = table.to_pylist()
    for r in rows:
        context.log.info(
            f"{r['strategy']}: {r['downloadable_share']:.1%} of {r['checked']} checked rows "
            "still downloadable"
        )
    return dg.MaterializeResult(
        metadata={
            **{
                f"downloadable_share/{r['strategy']}": dg.MetadataValue.float(
                    round(r["downloadable_share"], 4)
                )
                for r in rows
            },
            "strategies": len(rows),
            "path": dg.MetadataValue.path(str(path)),
            **(_plot_metadata("health_per_shard", plot) if plot else {}),
        },
        check_results=[yaml_check(YAML_TESTS, failures)],
    )


def _plot_metadata(key: str, path) -> dict:
    return {key: png_markdown(path), f"{key}_path": dg.MetadataValue.path(str(path))}
