"""download_selection: metadata mode's uids to download, chosen by the subsets (or every row)."""

import dagster as dg
from poolsieve.assets.metadata import INPUT_ERRORS, failing_clearly, problem_check, yaml_check
from poolsieve.assets.subset import subset
from poolsieve.assets.url_dedup import url_dedup
from poolsieve.pipelines.partitions import STRATEGIES
from poolsieve.pipelines.resources import CurationResource, LakeResource

from poolsieve.images.selection import SELECTION_MODELS, build_selection
from poolsieve.sqlrunner import SqlProject, column_test_failures

PROJECT = SqlProject()
EVERY_SUBSET_UID = "every_selected_subset_uid_is_a_kept_row"
YAML_TESTS = "yaml_column_tests"


@dg.asset(
    deps=[subset, url_dedup],
    code_version=PROJECT.code_version(SELECTION_MODELS),
    group_name="images",
    kinds={"duckdb", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(EVERY_SUBSET_UID, asset="download_selection", blocking=True),
        dg.AssetCheckSpec(YAML_TESTS, asset="download_selection", blocking=True),
    ],
)
def download_selection(
    context: dg.AssetExecutionContext, lake: LakeResource, curation: CurationResource
):
    """selection.parquet (shard, row_idx, uid, strategies): what selected_images downloads, per
    curation.download_selection (selected: the chosen strategies' union; all: every kept row)."""
    with failing_clearly(*INPUT_ERRORS):
        selection, strategies = curation.selection(STRATEGIES.get_partition_keys())
        if selection == "none":
            raise ValueError(
                "curation.download_selection is none: nothing to download (set it to selected "
                "or all)"
            )
        with lake.connect_memory() as conn:
            result = build_selection(conn, lake.store, selection, strategies, PROJECT)
            failures = column_test_failures(
                conn, PROJECT.model("download_selection"), "download_selection"
            )
    context.log.info(
        f"download selection ({selection}, {', '.join(strategies)}): {result.selected} uids; "
        f"per strategy {result.per_strategy}"
    )
    return dg.MaterializeResult(
        # the data version is the (shard, uid) list: the same uids re-selected stale no download
        data_version=dg.DataVersion(result.digest[:16]),
        metadata={
            "selection": selection,
            "strategies": strategies,
            "selected": result.selected,
            **{f"kept_by/{n}": dg.MetadataValue.int(k) for n, k in result.per_strategy.items()},
            "per_shard": dg.MetadataValue.json(result.per_shard),
            "path": dg.MetadataValue.path(str(result.path)),
        },
        check_results=[
            problem_check(
                EVERY_SUBSET_UID,
                f"{len(result.unmatched)} subset uids are no url_dedup-kept row (re-run the "
                "subsets after dedup)"
                if result.unmatched
                else "",
                unmatched=result.unmatched[:20],
            ),
            yaml_check(YAML_TESTS, failures),
        ],
    )
