"""pool_shard: one source parquet file, validated and normalized (one partition per file)."""

import dagster as dg
from poolsieve.assets.metadata import (
    ROWS_CONSERVED,
    YAML_TESTS,
    conservation_check,
    reason_counts,
    table_schema,
    yaml_check,
)
from poolsieve.pipelines.partitions import (
    REPLACE_CHANGED_TAG,
    SHARDS,
    shard_seq,
    step_registry_lake,
)
from poolsieve.pipelines.resources import LakeResource

from poolsieve.lake import file_sha256
from poolsieve.pool import registry
from poolsieve.pool.ingest import QUARANTINE_REASONS, STAGING_MODELS, ingest_shard
from poolsieve.pool.sources import open_source
from poolsieve.schema import SourceFileError
from poolsieve.sqlrunner import SqlProject, file_test_failures

PROJECT = SqlProject()
#: what the step's files come from: staging, and the registry's entries (its bucket files)
SHARD_MODELS = [*STAGING_MODELS, registry.ENTRIES_MODEL]


@dg.asset(
    partitions_def=SHARDS,
    code_version=PROJECT.code_version(SHARD_MODELS),
    group_name="pool",
    kinds={"duckdb", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(ROWS_CONSERVED, asset="pool_shard", blocking=True),
        dg.AssetCheckSpec(YAML_TESTS, asset="pool_shard", blocking=True),
    ],
)
def pool_shard(context: dg.AssetExecutionContext, lake: LakeResource):
    """One pool file as normalized DataComp rows; invalid rows quarantined with a reason code."""
    shard = context.partition_key
    fs, root = open_source(lake.source_url)
    path = f"{root}/{shard}"
    if not fs.exists(path):
        raise dg.Failure(f"source file {path} for shard {shard!r} is gone from {lake.source_url}")
    info, sha256 = fs.info(path), file_sha256(path, fs)
    replace = context.run.tags.get(REPLACE_CHANGED_TAG) == "true"
    store = step_registry_lake(lake)
    seq = shard_seq(lake, shard)
    with lake.connect_memory() as conn:  # the registry is lake files: no catalog needed
        if "file" not in fs.protocol:
            conn.register_filesystem(fs)
            path = lake.source_url.rstrip("/") + "/" + shard
        try:
            previous = registry.check_content(store, shard, sha256, replace)
            result = ingest_shard(conn, store, shard, seq, path, lake.ingest_params, PROJECT, fs)
            registry.record_source(store, shard, sha256)
        except (SourceFileError, registry.ShardIdentityError) as err:
            raise dg.Failure(description=str(err), allow_retries=False) from None
        written = {
            "pool_shard_rows": result.files["rows"],
            "pool_shard_quarantine": result.files["quarantine"],
        }
        failures = file_test_failures(conn, PROJECT, written)  # the files as written
    if previous not in (None, sha256):
        context.log.warning(f"{shard}: replaced the rows of its earlier content ({previous})")
    context.log.info(
        f"{shard}: read {result.rows_read}, normalized {result.rows_normalized}, "
        f"quarantined {result.rows_quarantined} {result.quarantine_reasons}"
    )
    return dg.MaterializeResult(
        metadata={
            "rows_read": result.rows_read,
            "rows_normalized": result.rows_normalized,
            "rows_quarantined": result.rows_quarantined,
            **reason_counts("quarantined", result.quarantine_reasons, QUARANTINE_REASONS),
            "source_path": dg.MetadataValue.path(path),
            "source_size": int(info.get("size", 0)),
            "source_mtime": str(info.get("mtime", "")),
            "source_sha256": sha256,
            "replaced_source_sha256": previous if previous not in (None, sha256) else "",
            "shard_seq": seq,
            "source_schema": result.layout.style,
            "source_extra_columns": result.layout.extra_columns,
            "uid_derived": result.layout.uid_derived,
            "dagster/column_schema": table_schema(result.columns),
            "sql_hash": PROJECT.code_version(SHARD_MODELS),
            "rows_path": dg.MetadataValue.path(result.files["rows"]),
            "quarantine_path": dg.MetadataValue.path(result.files["quarantine"]),
        },
        check_results=[
            conservation_check(
                ROWS_CONSERVED,
                result.rows_read,
                {"normalized": result.rows_normalized, "quarantined": result.rows_quarantined},
            ),
            yaml_check(YAML_TESTS, failures),
        ],
    )
