"""Provenance names what a decision read: a shard re-run after the subsets is not what decided.

The shard's ingest and URL dedup are the real assets; the steps between them and the subset
(downloads, embeddings, features, the filter) are stand-ins with the real graph's asset keys and
dependencies, since provenance is read from the event log alone. The stand-in subset writes a
real decisions file, so ``explain_uid`` finds the uid's verdict in the lake.
"""

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from poolsieve.assets.pool_shard import pool_shard
from poolsieve.assets.url_dedup import url_dedup
from poolsieve.pipelines.partitions import SHARDS, STRATEGIES, register_shards
from poolsieve.pipelines.resources import LakeResource

from poolsieve.audit.lineage import dataset_lineage, format_lineage
from poolsieve.audit.why import explain_uid, format_explanation
from tests.conftest import row, uid, write_datacomp

SHARD, STRATEGY = "a.parquet", "no_filter"


@dg.asset(partitions_def=SHARDS, deps=[url_dedup])
def shard_images() -> None:
    """Stand-in: downloads."""


@dg.asset
def scorer() -> None:
    """Stand-in: the scoring CLIP."""


@dg.asset(partitions_def=SHARDS, deps=[shard_images, scorer])
def clip_embeddings() -> None:
    """Stand-in: embeddings."""


@dg.asset(partitions_def=SHARDS, deps=[shard_images])
def eval_decontamination() -> None:
    """Stand-in: decontamination."""


@dg.asset(deps=[clip_embeddings, eval_decontamination, scorer])
def pool_features(context: dg.AssetExecutionContext) -> None:
    """Stand-in; with the run tag ``rerun_shard_meanwhile``, the shard is re-materialized while
    this step runs (another run finishing): pool_features did not read that one."""
    if context.run.tags.get("rerun_shard_meanwhile"):
        context.instance.report_runless_asset_event(
            dg.AssetMaterialization("pool_shard", partition=SHARD)
        )


@dg.asset(partitions_def=STRATEGIES, deps=[pool_features])
def subset(context: dg.AssetExecutionContext, lake: LakeResource) -> None:
    """Stand-in: keeps every uid of the shard (a real decisions file, for explain_uid)."""
    out = lake.store.partition_dir("subset", context.partition_key)
    out.mkdir(parents=True, exist_ok=True)
    uids = [uid(1), uid(2)]
    pq.write_table(
        pa.table({"uid": uids, "keep": [True, True], "reason": ["kept", "kept"]}),
        out / "decisions.parquet",
    )


SHARD_STEPS = [pool_shard, url_dedup, shard_images, clip_embeddings, eval_decontamination]


@pytest.fixture
def world(instance, resources, source_dir):
    write_datacomp(source_dir / SHARD, [row(1), row(2)])
    register_shards(instance, resources.lake, [SHARD])
    run = {"resources": resources.as_dict(), "instance": instance}
    assert dg.materialize([scorer], **run).success

    def shard_run(**tags) -> str:
        result = dg.materialize(SHARD_STEPS, partition_key=SHARD, tags=tags, **run)
        assert result.success
        return result.run_id

    def curate(**tags) -> None:
        assert dg.materialize([pool_features], tags=tags, **run).success
        assert dg.materialize([subset], partition_key=STRATEGY, **run).success

    return {"shard_run": shard_run, "curate": curate, "lake": resources.lake.store}


def test_why_names_the_shard_run_the_subset_read_and_the_newer_one(world, instance):
    first = world["shard_run"]()
    world["curate"]()
    second = world["shard_run"]()  # the shard re-runs after the subset was built
    doc = explain_uid(world["lake"], uid(1), instance)
    read = doc["decided_by"][STRATEGY]["read"]
    for asset in ("pool_shard", "url_dedup", "clip_embeddings"):
        assert read[f"{asset}[{SHARD}]"]["read"]["run_id"] == first, asset
        assert read[f"{asset}[{SHARD}]"]["newer"]["run_id"] == second, asset
    assert read["pool_features"]["newer"] is None and read["scorer"]["newer"] is None
    assert doc["versions"][f"pool_shard[{SHARD}]"]["run_id"] == second  # the lake's rows now
    text = format_explanation(doc)
    assert f"decided by subset[{STRATEGY}]: run " in text
    assert "      which read pool_features: run " in text
    assert f"        which read pool_shard[{SHARD}]: run {first[:8]}" in text
    assert (
        f"a newer pool_shard[{SHARD}] exists, not read by this decision: run {second[:8]}" in text
    )
    lineage = dataset_lineage(instance, STRATEGY, [SHARD])
    assert lineage.shards[f"pool_shard[{SHARD}]"].run_id == first
    assert lineage.newer[f"pool_shard[{SHARD}]"].run_id == second
    assert f"a newer one exists, not read: run {second[:8]}" in format_lineage(lineage)


def test_a_shard_materialized_while_features_ran_was_not_read(world, instance):
    first = world["shard_run"]()
    world["curate"](rerun_shard_meanwhile="yes")
    read = explain_uid(world["lake"], uid(1), instance)["decided_by"][STRATEGY]["read"]
    assert read[f"pool_shard[{SHARD}]"]["read"]["run_id"] == first
    assert read[f"pool_shard[{SHARD}]"]["newer"] is not None  # the one reported meanwhile
    assert read[f"url_dedup[{SHARD}]"]["newer"] is None


def test_a_subset_never_built_decided_nothing(world, instance):
    world["shard_run"]()
    doc = explain_uid(world["lake"], uid(1), instance)
    assert doc["strategies"] == [] and doc["decided_by"] == {}
    assert "decided by pool_shard[" in format_explanation(doc)
