"""metadata_embeddings through dagster.materialize: a shard's .npz validated or the shard failed."""

from __future__ import annotations

import json

import dagster as dg
from poolsieve.assets.metadata_embeddings import metadata_embeddings
from poolsieve.pipelines.partitions import register_shards
from poolsieve.pipelines.resources import resources_from_env

from poolsieve.lake import file_sha256
from tests.conftest import materialize_pool, row
from tests.datacomp_pool import save_npz, write_shard

SHARD = "part-00000.parquet"


def _resources(lake, source_dir, mode: str):
    lake_fields = {"lake_dir": str(lake.root), "source": str(source_dir), "duckdb_threads": 2}
    return resources_from_env(env={}, lake=lake_fields, curation={"mode": mode})


def _run(instance, resources):
    return dg.materialize(
        [metadata_embeddings],
        partition_key=SHARD,
        instance=instance,
        resources=resources.as_dict(),
        raise_on_error=False,
    )


def _ingested(instance, lake, source_dir, mode="metadata"):
    arrays = write_shard(source_dir / SHARD, [row(i) for i in range(12)], seed=1)
    resources = _resources(lake, source_dir, mode)
    register_shards(instance, resources.lake, [SHARD])
    materialize_pool(instance, resources, SHARD)
    return resources, arrays


def test_a_valid_npz_is_recorded_with_its_sha(instance, lake, source_dir):
    resources, _ = _ingested(instance, lake, source_dir)
    result = _run(instance, resources)
    assert result.success
    npz = source_dir / "part-00000.npz"
    info = json.loads((lake.partition_dir("metadata_embeddings", SHARD) / "npz.json").read_text())
    assert (info["path"], info["sha256"], info["rows"]) == (str(npz), file_sha256(npz), 12)
    event = result.get_asset_materialization_events()[0].materialization
    assert event.metadata["npz_sha256"].value == info["sha256"]
    assert event.tags["dagster/data_version"] == info["sha256"][:16]
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True]


def test_a_misaligned_npz_fails_the_shard_naming_file_and_row(instance, lake, source_dir):
    resources, arrays = _ingested(instance, lake, source_dir)
    txt = arrays["l14_txt"].copy()
    txt[[3, 8]] = txt[[8, 3]]
    save_npz(source_dir / "part-00000.npz", {**arrays, "l14_txt": txt})
    result = _run(instance, resources)
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "part-00000.npz: not row-aligned" in failure.description
    assert "first bad row 3" in failure.description
    assert not (lake.partition_dir("metadata_embeddings", SHARD) / "npz.json").exists()


def test_a_missing_npz_fails_in_metadata_mode_only(instance, lake, source_dir):
    resources, _ = _ingested(instance, lake, source_dir)
    (source_dir / "part-00000.npz").unlink()
    result = _run(instance, resources)
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert f"no DataComp .npz at {source_dir}/part-00000.npz" in failure.description
    download = _resources(lake, source_dir, "download")  # clusters of the scorer: not needed
    assert _run(instance, download).success
