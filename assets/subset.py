"""subset: one filter's decision per uid and the DataComp subset file (one partition per filter)."""

import dagster as dg
from poolsieve.assets.filter_sql import filter_sql
from poolsieve.assets.metadata import (
    INPUT_ERRORS,
    ROWS_CONSERVED,
    YAML_TESTS,
    conservation_check,
    failing_clearly,
    problem_check,
    reason_counts,
    yaml_check,
)
from poolsieve.assets.pool_features import INELIGIBLE, pool_features
from poolsieve.pipelines.partitions import STRATEGIES
from poolsieve.pipelines.resources import CurationResource, LakeResource

from poolsieve.curate.features import features_rows
from poolsieve.curate.strategies import (
    DECISIONS_MODEL,
    build_subset,
    read_subset_npy,
)
from poolsieve.lake import file_sha256
from poolsieve.sqlrunner import SqlProject

SUBSET_FILE_OK = "subset_file_sorted_and_typed"


@dg.asset(
    partitions_def=STRATEGIES,
    deps=[pool_features, filter_sql],
    # the shared decisions model; each filter's own SQL + params is filter_sql's data version
    code_version=SqlProject().code_version([DECISIONS_MODEL]),
    group_name="curation",
    kinds={"duckdb", "numpy"},
    check_specs=[
        dg.AssetCheckSpec(SUBSET_FILE_OK, asset="subset", blocking=True),
        dg.AssetCheckSpec(ROWS_CONSERVED, asset="subset", blocking=True),
        dg.AssetCheckSpec(YAML_TESTS, asset="subset", blocking=True),
    ],
)
def subset(context: dg.AssetExecutionContext, lake: LakeResource, curation: CurationResource):
    """Sorted u8,u8 .npy of kept uids + decisions.parquet (uid, keep, reason) for one filter."""
    name = context.partition_key
    features = lake.store.path("pool_features")  # a folder of per-shard parts
    project = SqlProject()  # the filters as they are now (filter_sql observed the same files)
    with failing_clearly(*INPUT_ERRORS), lake.connect_memory() as conn:
        result = build_subset(conn, lake.store, features, name, curation.param_profile, project)
    context.log.info(f"{name}: kept {result.kept}/{result.rows}; dropped {result.reasons}")
    filter_reasons = sorted(set(result.reasons) - set(INELIGIBLE))
    kept_sha = file_sha256(result.files["npy"])
    return dg.MaterializeResult(
        # the data version is the kept set: an edit that keeps the same samples stales nothing below
        data_version=dg.DataVersion(kept_sha[:16]),
        metadata={
            "rows": result.rows,
            "kept": result.kept,
            "kept_fraction": dg.MetadataValue.float(result.kept / max(result.rows, 1)),
            **reason_counts("dropped", result.reasons, INELIGIBLE + filter_reasons),
            "params": result.params,
            "sql_hash": result.sql_hash,
            "subset_npy": dg.MetadataValue.path(str(result.files["npy"])),
            "subset_npy_sha256": kept_sha,
            "decisions_path": dg.MetadataValue.path(str(result.files["decisions"])),
        },
        check_results=[
            _file_check(result),
            conservation_check(
                ROWS_CONSERVED,
                features_rows(features),
                {"kept": result.kept, **result.reasons},
            ),
            yaml_check(YAML_TESTS, result.failures),
        ],
    )


def _file_check(result) -> dg.AssetCheckResult:
    """The .npy reads back as sorted u8,u8 pairs of exactly the kept uids (DataComp's format)."""
    try:
        count = len(read_subset_npy(result.files["npy"]))
        problem = "" if count == result.kept else f"{count} pairs for {result.kept} kept uids"
    except ValueError as err:
        problem = str(err)
    return problem_check(SUBSET_FILE_OK, problem)
