"""Opt-out signals for one shard's download: the host files' answers before img2dataset runs
(a disallowed row is refused, never fetched), and every answer per uid afterwards.

Grain: one row of ``optout_signals.parquet`` per (uid, signal checked): the host signals for
every row the host check saw, the header signals for every row whose image response was judged
(a fetched image: allowed; an opted-out one: the header that refused it). A row refused before
the check (a private address...) or whose fetch failed has no header answer: nothing was seen.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from poolsieve.images.optout import ALLOWED, DISALLOWED, HEADER_SIGNALS, OPTED_OUT
from poolsieve.images.optout.hosts import Answer, HostCache, host_records, judge
from poolsieve.images.optout.response import parse_refusal, refusal_message

SIGNALS_FILE = "optout_signals.parquet"
SIGNALS_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("signal", pa.string()),
        ("answer", pa.string()),  # allowed | disallowed | unavailable
        ("detail", pa.string()),  # the rule, header or failure behind the answer
        ("seen_at", pa.timestamp("us", tz="UTC")),  # the host file's fetch / the image's fetch
    ]
)


def host_optouts(
    table: pa.Table, settings, cache: HostCache
) -> tuple[dict[str, str], dict[str, list[Answer]]]:
    """uid -> refusal message for the rows a host file opts out (the first disallowing signal,
    in HOST_SIGNALS order), and uid -> every host signal's answer."""
    if not settings.honour_optouts or not table.num_rows:
        return {}, {}
    uids, urls = table.column("uid").to_pylist(), table.column("url").to_pylist()
    records, parsed = host_records(urls, settings, cache), {}
    refused, answers = {}, {}
    for uid, url in zip(uids, urls, strict=True):
        answers[uid] = judge(url, records, settings, parsed)
        first = next((a for a in answers[uid] if a.answer == DISALLOWED), None)
        if first is not None:
            refused[uid] = refusal_message(first.signal, first.detail)
    return refused, answers


def signals_table(
    status: pa.Table, host_answers: dict[str, list[Answer]], seen_at: dt.datetime, honoured: bool
) -> pa.Table:
    """Every signal answer of the shard's rows (see the module docstring), in status order."""
    rows = []
    for uid, state, category, message in zip(
        *(
            status.column(c).to_pylist()
            for c in ("uid", "status", "error_category", "error_message")
        ),
        strict=True,
    ):
        rows += [
            {
                "uid": uid,
                "signal": a.signal,
                "answer": a.answer,
                "detail": a.detail,
                "seen_at": a.seen_at,
            }
            for a in host_answers.get(uid, ())
        ]
        rows += _header_answers(uid, state, category, message, seen_at, honoured)
    return pa.Table.from_pylist(rows, schema=SIGNALS_SCHEMA)


def _header_answers(uid, state, category, message, seen_at, honoured) -> list[dict]:
    found = parse_refusal(message) if category == OPTED_OUT else None
    if found is not None and found[0] in HEADER_SIGNALS:
        return [dict(uid=uid, signal=found[0], answer=DISALLOWED, detail=found[1], seen_at=seen_at)]
    if state == "success" and honoured:
        return [
            dict(uid=uid, signal=s, answer=ALLOWED, detail="", seen_at=seen_at)
            for s in HEADER_SIGNALS
        ]
    return []
