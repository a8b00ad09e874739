"""A takedown list through the Dagster graph, on a copy of the image world's lake: before it, a
subset keeps the rows and `affected` names it; after it, every listed row (by uid, URL, image
sha256 and pHash) is removed from the subset, `why` names the list entry, and the subset is
stale until rebuilt."""

from __future__ import annotations

import shutil

import dagster as dg
import pyarrow.parquet as pq
import pytest
from poolsieve.pipelines.definitions import build_defs
from poolsieve.pipelines.partitions import SHARDS

from poolsieve.audit.dagster_private import STALE, stale_status_resolver
from poolsieve.audit.why import explain_uid, format_explanation
from poolsieve.curate.takedown import affected
from poolsieve.lake import Lake, file_sha256
from tests.image_world import make_resources, run_job, run_world

STRATEGY = "no_filter"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with dg.instance_for_test() as instance:
        yield run_world(tmp_path_factory.mktemp("takedown") / "lake", instance, rows_per_shard=60)


def _subset(defs, instance) -> dict[str, dict]:
    job = defs.resolve_job_def("strategy_job")
    selection = [dg.AssetKey("filter_sql"), dg.AssetKey("subset")]
    result = job.execute_in_process(
        partition_key=STRATEGY, instance=instance, asset_selection=selection
    )
    assert result.success
    path = Lake(defs_lake(defs)).partition_dir("subset", STRATEGY) / "decisions.parquet"
    return {r["uid"]: r for r in pq.read_table(path).to_pylist()}


def defs_lake(defs) -> str:
    return defs.resources["lake"].lake_dir


def _targets(lake: Lake, kept: list[str]) -> dict[str, dict]:
    """Four kept rows with their URL, downloaded sha256 and pHash, one per entry kind."""
    rows = {}
    for path in lake.asset_files("pool_shard", "rows.parquet"):
        rows |= {r["uid"]: r for r in pq.read_table(path, columns=["uid", "url"]).to_pylist()}
    for path in lake.asset_files("image_hashes", "hashes.parquet"):
        for r in pq.read_table(path).to_pylist():
            rows[r["uid"]] |= {"sha256": r["sha256"], "phash": r["phash"]}
    chosen = [u for u in kept if rows[u].get("phash") is not None][:4]
    return {u: rows[u] for u in chosen}


def _write_list(path, targets: list[dict]) -> None:
    a, b, c, d = targets
    url = b["url"].replace("http://", "HTTP://", 1) + "?utm_source=takedown"  # same after normalize
    phash = f"{d['phash'] & (2**64 - 1):016x}"
    path.write_text(
        "uid,url,sha256,phash,reference\n"
        f"{a['uid']},,,,req-1\n,{url},,,req-2\n,,{c['sha256']},,req-3\n,,,{phash},req-4\n"
    )


def test_a_takedown_list_removes_its_rows_and_why_and_affected_say_so(world, tmp_path):
    lake_dir = tmp_path / "lake"
    shutil.copytree(world["lake"].root, lake_dir, ignore=shutil.ignore_patterns("locks"))
    lake = Lake(lake_dir)
    lists = tmp_path / "lists"
    lists.mkdir()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SHARDS.name, world["world"].truth["shards"])
        before_defs = build_defs(make_resources(lake_dir, curation={"takedown_lists": str(lists)}))
        assert run_job(before_defs, instance, "features_job").success  # an empty folder: none
        before = _subset(before_defs, instance)
        kept = sorted(u for u, r in before.items() if r["keep"])
        targets = _targets(lake, kept)
        assert len(targets) == 4
        doc = affected(lake, list(targets))
        assert doc["affected"][STRATEGY]["kept"] == 4

        _write_list(lists / "requests.csv", [{"uid": u, **r} for u, r in targets.items()])
        assert run_job(before_defs, instance, "features_job").success  # lists observed again
        graph = before_defs.resolve_asset_graph()
        status = stale_status_resolver(instance, graph).get_status(dg.AssetKey("subset"), STRATEGY)
        assert status == STALE  # the subset that held them must be rebuilt
        after = _subset(before_defs, instance)
    for uid in targets:
        assert after[uid]["keep"] is False and after[uid]["reason"] == "removed", uid
    removed = {u for u, r in after.items() if r["reason"] == "removed"}
    assert set(targets) <= removed and len(removed) <= 4 + 8  # a listed pHash takes its copies
    assert all(after[u]["keep"] == before[u]["keep"] for u in set(before) - removed)
    text = format_explanation(explain_uid(lake, next(iter(targets))))
    assert "REMOVED by takedown list 'requests' entry 1 (matched on uid, reference req-1)" in text
    matched = {
        r["matched_on"]
        for r in pq.read_table(lake.asset_files("removals", "removals.parquet")).to_pylist()
    }
    assert {"uid", "url", "sha256_image", "phash"} <= matched


OTHER = "clip_score_top30"  # keeps fewer rows: the targets are rows it drops


def _build(defs, instance, strategy: str, assets: tuple[str, ...]) -> dict[str, dict]:
    """``assets`` of one strategy materialized; its decisions per uid."""
    job = defs.resolve_job_def("strategy_job")
    selection = [dg.AssetKey(a) for a in assets]
    result = job.execute_in_process(
        partition_key=strategy, instance=instance, asset_selection=selection
    )
    assert result.success
    path = Lake(defs_lake(defs)).partition_dir("subset", strategy) / "decisions.parquet"
    return {r["uid"]: r for r in pq.read_table(path).to_pylist()}


def _kept_sha(lake: Lake, strategy: str) -> str:
    (npy,) = lake.partition_dir("subset", strategy).glob("*.npy")
    return file_sha256(npy)


def test_a_removal_restales_the_training_data_of_the_subsets_that_held_it_only(world, tmp_path):
    """Every subset re-runs its SQL after a removal (pool_features changed), but a subset whose
    kept set is unchanged keeps its data version, so its train shards (and the CLIP and
    evaluation after them) stay fresh; the subset that held a removed uid's are stale."""
    lake_dir = tmp_path / "lake"
    shutil.copytree(world["lake"].root, lake_dir, ignore=shutil.ignore_patterns("locks"))
    lake, lists = Lake(lake_dir), tmp_path / "lists"
    lists.mkdir()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SHARDS.name, world["world"].truth["shards"])
        defs = build_defs(make_resources(lake_dir, curation={"takedown_lists": str(lists)}))
        assert run_job(defs, instance, "features_job").success
        built = ("filter_sql", "subset", "train_shards")
        kept = {
            s: {u for u, r in _build(defs, instance, s, built).items() if r["keep"]}
            for s in (STRATEGY, OTHER)
        }
        shas = {s: _kept_sha(lake, s) for s in kept}
        targets = _targets(lake, sorted(kept[STRATEGY] - kept[OTHER]))
        _write_list(lists / "requests.csv", [{"uid": u, **r} for u, r in targets.items()])
        assert run_job(defs, instance, "features_job").success
        after = {s: _build(defs, instance, s, ("filter_sql", "subset")) for s in kept}
        status = stale_status_resolver(instance, defs.resolve_asset_graph()).get_status
        train = dg.AssetKey("train_shards")
        removed = {u for u, r in after[STRATEGY].items() if r["reason"] == "removed"}
        assert set(targets) <= removed and not removed & kept[OTHER]
        assert _kept_sha(lake, STRATEGY) != shas[STRATEGY] and status(train, STRATEGY) == STALE
        assert _kept_sha(lake, OTHER) == shas[OTHER] and status(train, OTHER) != STALE
        assert {u for u, r in after[OTHER].items() if r["keep"]} == kept[OTHER]
