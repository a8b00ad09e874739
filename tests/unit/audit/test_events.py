"""Reading the event log back: a materialization's record holds plain values JSON can print."""

from __future__ import annotations

import json

import dagster as dg

from poolsieve.audit.events import latest_materialization, latest_record


@dg.asset(code_version="v7")
def table() -> dg.MaterializeResult:
    schema = dg.TableSchema(columns=[dg.TableColumn("uid", "string")])
    return dg.MaterializeResult(
        metadata={"dagster/column_schema": schema, "rows": 3, "share": 0.25}
    )


def test_latest_record_is_plain_and_prints_as_json():
    instance = dg.DagsterInstance.ephemeral()
    assert latest_record(instance, "table", None) is None
    assert dg.materialize([table], instance=instance).success
    record = latest_record(instance, "table", None)
    assert record.code_version == "v7" and record.metadata["rows"] == 3
    assert isinstance(record.metadata["dagster/column_schema"], str)  # a Dagster record, as text
    doc = json.loads(json.dumps(record.to_dict()))
    assert doc["metadata"]["share"] == 0.25 and doc["run_id"] == record.run_id
    assert latest_materialization(instance, "table", None) == record.to_dict(metadata=False)
