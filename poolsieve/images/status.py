"""``download_status``: one row per input uid saying whether its image arrived, and if not, why.

Three sources feed it: URLs refused before img2dataset ran, img2dataset's per-shard parquet (one
row per URL it tried: ``key``, ``status``, ``error_message``, sizes, plus the saved ``uid``), and
nothing at all for rows whose img2dataset shard crashed — those are ``failed``/``missing``, so no
row is ever lost.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.images.errors import MISSING, categorize
from poolsieve.images.optout import OPTED_OUT
from poolsieve.images.optout.response import parse_refusal

STATUS_FILE = "download_status.parquet"
SIZE_COLUMNS = ("width", "height", "original_width", "original_height")
STATUS_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("url", pa.string()),
        ("status", pa.string()),  # "success" | "failed"
        ("error_category", pa.string()),
        ("error_message", pa.string()),
        ("optout_signal", pa.string()),  # the signal of an ``opted_out`` row (optout_signals)
        *((name, pa.int32()) for name in SIZE_COLUMNS),
        ("key", pa.string()),  # the sample's webdataset key (``{key}.jpg`` in the tar)
    ]
)
_RESULT_COLUMNS = ["uid", "key", "status", "error_message", *SIZE_COLUMNS]


def read_results(folder: Path) -> dict[str, dict]:
    """uid -> img2dataset's result row, over every per-shard parquet in ``folder``."""
    results = {}
    for path in sorted(folder.glob("[0-9]*.parquet")):
        for row in pq.read_table(path, columns=_RESULT_COLUMNS).to_pylist():
            results[row["uid"]] = row
    return results


def status_row(uid: str, url: str, refusal: str | None, result: dict | None) -> dict:
    """The status of one uid from its pre-check refusal or its img2dataset result."""
    row = _status_row(uid, url, refusal, result)
    found = parse_refusal(row["error_message"]) if row["error_category"] == OPTED_OUT else None
    return row | {"optout_signal": found[0] if found else None}


def _status_row(uid: str, url: str, refusal: str | None, result: dict | None) -> dict:
    row = dict.fromkeys(STATUS_SCHEMA.names) | {"uid": uid, "url": url, "status": "failed"}
    if refusal is not None:
        return row | {"error_category": categorize(refusal), "error_message": refusal}
    if result is None:
        return row | {"error_category": MISSING, "error_message": "img2dataset reported nothing"}
    row |= {name: result[name] for name in (*SIZE_COLUMNS, "key")}
    if result["status"] == "success":
        return row | {"status": "success"}
    message = result["error_message"] or result["status"]
    return row | {"error_category": categorize(message), "error_message": message}


def build_status(rows: pa.Table, refused: dict[str, str], results: dict[str, dict]) -> pa.Table:
    """One row per input uid, in input order."""
    uids, urls = rows.column("uid").to_pylist(), rows.column("url").to_pylist()
    records = [
        status_row(uid, url, refused.get(uid), results.get(uid))
        for uid, url in zip(uids, urls, strict=True)
    ]
    return pa.Table.from_pylist(records, schema=STATUS_SCHEMA)


def error_counts(status: pa.Table) -> dict[str, int]:
    """Failed rows per error category, most frequent first."""
    return dict(Counter(c for c in status.column("error_category").to_pylist() if c).most_common())
