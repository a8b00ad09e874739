"""Reading the Dagster event log: an asset partition's latest materialization as plain values."""

from __future__ import annotations


def latest_record(instance, asset: str, partition: str | None, before: int | None = None) -> dict:
    """An asset partition's latest materialization (before a storage id, if given): run id, time,
    storage id, code and data version, and its metadata as plain values; {} when there is none."""
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(asset),
            asset_partitions=[partition] if partition else None,
            before_storage_id=before,
        ),
        limit=1,
    ).records
    if not records:
        return {}
    record = records[0]
    mat = record.asset_materialization
    tags = mat.tags or {}
    return {
        "run_id": record.run_id,
        "timestamp": record.timestamp,
        "storage_id": record.storage_id,
        "code_version": tags.get("dagster/code_version"),
        "data_version": tags.get("dagster/data_version"),
        "metadata": {k: getattr(v, "value", v) for k, v in (mat.metadata or {}).items()},
    }


def latest_materialization(instance, asset: str, partition: str | None) -> dict | None:
    """run id, time, storage id, code and data version of the latest materialization, or None."""
    record = latest_record(instance, asset, partition)
    return {k: v for k, v in record.items() if k != "metadata"} or None
