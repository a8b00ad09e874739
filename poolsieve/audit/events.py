"""Reading the Dagster event log: an asset partition's latest materialization as plain values."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Materialization:
    """One materialization of an asset partition: the run, when, its event-log storage id, the
    code and data version it recorded, and its metadata as plain values."""

    run_id: str
    timestamp: float
    storage_id: int
    code_version: str | None
    data_version: str | None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, metadata: bool = True) -> dict[str, Any]:
        """The JSON document."""
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        if not metadata:
            del doc["metadata"]
        return doc


def latest_record(
    instance, asset: str, partition: str | None, before: int | None = None
) -> Materialization | None:
    """An asset partition's latest materialization (before a storage id, if given); None when
    there is none."""
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
        return None
    record = records[0]
    mat = record.asset_materialization
    tags = mat.tags or {}
    return Materialization(
        run_id=record.run_id,
        timestamp=record.timestamp,
        storage_id=record.storage_id,
        code_version=tags.get("dagster/code_version"),
        data_version=tags.get("dagster/data_version"),
        metadata={k: _plain(getattr(v, "value", v)) for k, v in (mat.metadata or {}).items()},
    )


def _plain(value: Any) -> Any:
    """A metadata value as JSON can hold it: Dagster's own records (a table schema) as text."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


def latest_materialization(instance, asset: str, partition: str | None) -> dict | None:
    """run id, time, storage id, code and data version of the latest materialization (a JSON
    document), or None."""
    record = latest_record(instance, asset, partition)
    return record.to_dict(metadata=False) if record else None
