"""url_dedup: exact dedup of one shard's rows on the normalized URL, across every shard ever ingested."""

import dagster as dg
from poolsieve.assets.metadata import (
    ROWS_CONSERVED,
    YAML_TESTS,
    conservation_check,
    reason_counts,
    yaml_check,
)
from poolsieve.assets.pool_shard import pool_shard
from poolsieve.pipelines.partitions import SHARDS, step_registry_lake
from poolsieve.pipelines.resources import LakeResource

from poolsieve.pool import registry
from poolsieve.pool.dedup import DEDUP_MODELS, dedup_shards
from poolsieve.sqlrunner import SqlProject, file_test_failures

PROJECT = SqlProject()
DECISIONS = "url_dedup_decisions"
DEDUP_REASONS = ["duplicate_uid", "duplicate_url"]
COMPLETE = "compared_with_all_earlier_shards"


@dg.asset(
    partitions_def=SHARDS,
    deps=[pool_shard],
    code_version=PROJECT.code_version(DEDUP_MODELS),
    group_name="pool",
    kinds={"duckdb", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(ROWS_CONSERVED, asset="url_dedup", blocking=True),
        dg.AssetCheckSpec(COMPLETE, asset="url_dedup"),
        dg.AssetCheckSpec(YAML_TESTS, asset="url_dedup", blocking=True),
    ],
)
def url_dedup(context: dg.AssetExecutionContext, lake: LakeResource):
    """Keep/drop per row of one shard; dropped rows name the uid they duplicate (duplicate_of)."""
    shard = context.partition_key
    store = step_registry_lake(lake)
    with lake.connect_memory() as conn:  # the registry is lake files: no catalog needed
        result = dedup_shards(conn, store, [shard], PROJECT)[shard]
        order = registry.pool_order(store)
        failures = file_test_failures(conn, PROJECT, {DECISIONS: result.files["decisions"]})
    known = result.registered_shards
    seq = order.index(shard)
    earlier = order[:seq]
    not_ingested = [k for k in earlier if k not in known]
    if not_ingested:
        context.log.warning(
            f"{shard}: earlier shards {not_ingested} are not ingested yet; their rows could not "
            "be compared - re-materialize this shard after ingesting them"
        )
    return dg.MaterializeResult(
        metadata={
            "rows_in": result.rows_in,
            "rows_kept": result.rows_kept,
            "rows_dropped": result.rows_in - result.rows_kept,
            **reason_counts("dropped", result.reasons, DEDUP_REASONS),
            "shard_seq": seq,
            "compared_shards": len([k for k in earlier if k in known]),
            "earlier_shards_not_ingested": not_ingested,
            "sql_hash": PROJECT.code_version(DEDUP_MODELS),
            "decisions_path": dg.MetadataValue.path(result.files["decisions"]),
        },
        check_results=[
            conservation_check(
                ROWS_CONSERVED, result.rows_in, {"kept": result.rows_kept, **result.reasons}
            ),
            dg.AssetCheckResult(
                check_name=COMPLETE,
                passed=not not_ingested,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"earlier_shards_not_ingested": not_ingested},
            ),
            yaml_check(YAML_TESTS, failures),
        ],
    )
