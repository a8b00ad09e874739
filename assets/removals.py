"""removals: every pool row a takedown or hash list matches, per shard, with the entry."""

import dagster as dg
from poolsieve.assets.image_hashes import image_hashes
from poolsieve.assets.metadata import (
    INPUT_ERRORS,
    ROWS_CONSERVED,
    conservation_check,
    failing_clearly,
)
from poolsieve.assets.takedown_lists import takedown_lists
from poolsieve.pipelines.resources import CurationResource, LakeResource

from poolsieve.curate.takedown import (
    LISTS_SCHEMA,
    load_lists,
    match_removals,
    shards_without_hashes,
    write_removals,
)
from poolsieve.pool.registry import registered_shards


@dg.asset(
    deps=[takedown_lists, "pool_shard", image_hashes],
    code_version="removals-v1",
    group_name="curation",
    kinds={"duckdb", "parquet"},
    check_specs=[dg.AssetCheckSpec(ROWS_CONSERVED, asset="removals", blocking=True)],
)
def removals(context: dg.AssetExecutionContext, lake: LakeResource, curation: CurationResource):
    """The rows each list entry matches (uid, URL, sha256, pHash): pool_features makes them
    ineligible for every strategy (reason ``removed``)."""
    shards = registered_shards(lake.store)
    with failing_clearly(*INPUT_ERRORS):
        folder = curation.takedown_lists
        lists = load_lists(folder) if folder else LISTS_SCHEMA.empty_table()
        with lake.connect_memory() as conn:
            matches = match_removals(
                conn, lake.store, lists, shards, curation.takedown_phash_distance
            )
        written = write_removals(lake.store, matches, shards)
    uids = set(matches.column("uid").to_pylist())
    matched = set(zip(matches["list"].to_pylist(), matches["entry"].to_pylist(), strict=True))
    unmatched = [
        f"{name}:{entry}"
        for name, entry in zip(lists["list"].to_pylist(), lists["entry"].to_pylist(), strict=True)
        if (name, entry) not in matched
    ]
    without = shards_without_hashes(lake.store, shards)
    if without and lists.num_rows:
        context.log.warning(f"removals: no image_hashes for {without}: only uid/url/metadata")
    context.log.info(f"removals: {len(uids)} uids removed by {lists.num_rows} entries")
    return dg.MaterializeResult(
        metadata={
            "entries": lists.num_rows,
            "lists": sorted(set(lists.column("list").to_pylist())),
            "removed_uids": len(uids),
            "matches": matches.num_rows,
            "shards_without_hashes": without,
            "entries_without_match": len(unmatched),
            "entries_without_match_examples": unmatched[:20],
        },
        check_results=[
            conservation_check(ROWS_CONSERVED, matches.num_rows, {"written": sum(written.values())})
        ],
    )
