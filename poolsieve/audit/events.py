"""Reading the Dagster event log: an asset partition's materializations as plain values, and
which materialization of an input another materialization read.

What a step read is what existed when it began: for a declared input, the input event pointer
Dagster records on the materialization (``dagster/input_event_pointer/<asset>``: the input's
latest event when the step began); for a file the step reads without declaring it (pool_features
reads every shard asset's files), the latest materialization before the step's STEP_START event
(by time: a run's own events are numbered apart from the asset index in Dagster's default SQLite
storage, so storage ids of the two cannot be compared).
"""

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
    step_key: str | None = None  # the step that materialized it (None: reported without a run)
    #: declared input asset -> storage id of the event Dagster saw as its latest (None: none)
    inputs: dict[str, int | None] = field(default_factory=dict)

    def to_dict(self, metadata: bool = True) -> dict[str, Any]:
        """The JSON document."""
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        if not metadata:
            del doc["metadata"]
        return doc


def latest_record(
    instance,
    asset: str,
    partition: str | None,
    before: int | None = None,
    before_time: float | None = None,
) -> Materialization | None:
    """An asset partition's latest materialization (before a storage id and before a time, if
    given); None when there is none."""
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(asset),
            asset_partitions=[partition] if partition else None,
            before_storage_id=before,
            before_timestamp=before_time,
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
        step_key=record.event_log_entry.step_key,
        inputs={
            key[len(INPUT_POINTER) :]: None if value == "NULL" else int(value)
            for key, value in tags.items()
            if key.startswith(INPUT_POINTER)
        },
    )


INPUT_POINTER = "dagster/input_event_pointer/"


def step_began(instance, reader: Materialization) -> float | None:
    """When the step that made ``reader`` began (its last STEP_START before ``reader``); None
    when it has no step (reported without a run)."""
    import dagster as dg

    if not reader.step_key:
        return None
    starts = instance.get_records_for_run(
        reader.run_id, of_type=dg.DagsterEventType.STEP_START
    ).records
    times = [
        r.timestamp
        for r in starts
        if r.event_log_entry.step_key == reader.step_key and r.timestamp <= reader.timestamp
    ]
    return max(times, default=None)


def read_by(
    instance, reader: Materialization, asset: str, partition: str | None = None
) -> Materialization | None:
    """The materialization of ``asset`` (``partition``) that ``reader``'s step read: the latest
    one when that step began (see the module doc); None when there was none."""
    if asset in reader.inputs:
        pointer = reader.inputs[asset]
        return None if pointer is None else latest_record(instance, asset, partition, pointer + 1)
    began = step_began(instance, reader)
    return latest_record(instance, asset, partition, reader.storage_id, began)


def newer_than(
    instance, read: Materialization | None, asset: str, partition: str | None = None
) -> Materialization | None:
    """The latest materialization of ``asset`` (``partition``) when it is not ``read`` (a newer
    one exists, or one exists where nothing was read); None when ``read`` is the latest."""
    latest = latest_record(instance, asset, partition)
    if latest is None or (read is not None and latest.storage_id == read.storage_id):
        return None
    return latest


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
