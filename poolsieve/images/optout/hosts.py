"""The host opt-out files (robots.txt, tdmrep.json, ai.txt): fetched once per host per refresh
through the download guard, cached in the lake with their fetch time, and judged per image URL.

Grain: one record per (origin, signal) — ``scheme://host[:port]`` and the file that lives there.
A shard's download first looks its origins up in ``host_signals/*.parquet`` (every shard's
records, fresh when fetched less than ``optout_max_age_h`` ago), fetches what is missing or old
(threads, each fetch under the guard's deadline, byte cap and redirect checks, but neither the
image sniffing nor the header opt-out check that are meant for images), and writes the records
it used — reused ones with their first fetch time — as ``host_signals/<shard>.parquet``. So a
shard's file is the evidence behind its rows' answers, and a host is fetched again only when its
records are older than the refresh period. Two shards downloading at the same time may both
fetch a new host; each keeps its own record.

What a record answers (``judge``): a 2xx robots.txt is parsed (RFC 9309) and the image URL
checked for every configured agent; a 4xx robots.txt means no rules; a 5xx or a network error
means complete disallow (RFC 9309 2.3.1.4; ``robots_unreachable="allow"`` relaxes it), but a
fetch the guard refused (a host resolving to a private address...) is ``unavailable``: the
image's own fetch meets the same refusal and reports it as what it is. A 2xx
tdmrep.json or ai.txt is parsed; anything else means the signal is ``unavailable`` (allowed).

Scale: the lookup reads the origin and fetch-time columns of every shard's records with one
DuckDB scan; at tens of thousands of shards that scan grows with the pool, and the place to go
next is a lake table partitioned by origin bucket, as the URL registry is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pyarrow as pa

from poolsieve.images.errors import GUARD_CATEGORIES, categorize
from poolsieve.images.opener import build_opener, fetch_once
from poolsieve.images.optout import (
    ALLOWED,
    DISALLOWED,
    HOST_FILES,
    HOST_SIGNALS,
    UNAVAILABLE,
)
from poolsieve.images.optout.rules import RobotsRules, TdmRep

FOLDER = "host_signals"
MAX_BODY = 500 * 1024  # RFC 9309: parse at least 500 KiB
READ_CHUNK = 1 << 16
SCHEMA = pa.schema(
    [
        ("origin", pa.string()),
        ("signal", pa.string()),
        ("url", pa.string()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
        ("http_status", pa.int32()),  # NULL: no response (network error, refusal)
        ("error", pa.string()),
        ("body", pa.string()),  # the first MAX_BODY bytes of a 2xx body, as UTF-8
    ]
)


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, lower-cased; None when it has no host."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or parts.scheme.lower() not in ("http", "https"):
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port else "")


def fetch(opener, origin: str, signal: str, timeout: float) -> dict:
    """One host file, fetched now: its record (never raises for what a server does)."""
    url = origin + HOST_FILES[signal]
    record = dict.fromkeys(SCHEMA.names) | {"origin": origin, "signal": signal, "url": url}
    record["fetched_at"] = dt.datetime.now(dt.UTC)
    status, body, error = fetch_once(opener, url, timeout, _read_capped)
    body = body.decode("utf-8", "replace") if body is not None else None
    return record | {"http_status": status, "body": body, "error": error}


def _read_capped(response) -> bytes:
    chunks, total = [], 0
    while total < MAX_BODY and (chunk := response.read(min(READ_CHUNK, MAX_BODY - total))):
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class HostCache:
    """The lake's host_signals folder, as one shard sees it."""

    folder: Path | None  # None: records are used, not kept
    shard: str
    files: tuple[Path, ...] = ()  # every shard's records (brought into the working copy)

    @property
    def own_file(self) -> Path:
        return self.folder / f"{quote(self.shard, safe='')}.parquet"

    def fresh(self, origins: set[str], since: dt.datetime) -> dict[tuple[str, str], dict]:
        """The newest record per (origin, signal) fetched at or after ``since``."""
        if not origins or not self.files:
            return {}
        from poolsieve.duck import DuckSettings, connect
        from poolsieve.lake import literal_path

        files = [literal_path(p) for p in self.files]
        sql = (
            "SELECT * FROM read_parquet($files, union_by_name=true) "
            "WHERE origin IN (SELECT unnest($origins)) AND fetched_at >= $since "
            "QUALIFY row_number() OVER (PARTITION BY origin, signal ORDER BY fetched_at DESC) = 1"
        )
        with connect(":memory:", DuckSettings(memory_limit="1GB")) as conn:
            params = {"files": files, "origins": sorted(origins), "since": since}
            rows = conn.sql(sql, params=params).to_arrow_table().to_pylist()
        return {(r["origin"], r["signal"]): {k: r[k] for k in SCHEMA.names} for r in rows}

    def save(self, records: Iterable[dict]) -> None:
        from poolsieve.lake import write_parquet_if_changed

        if self.folder is None:
            return
        ordered = sorted(records, key=lambda r: (r["origin"], r["signal"]))
        write_parquet_if_changed(self.own_file, pa.Table.from_pylist(ordered, schema=SCHEMA))


def host_records(urls: Iterable[str], settings, cache: HostCache) -> dict[tuple[str, str], dict]:
    """(origin, signal) -> record for every origin of ``urls``: cached when fresh, else fetched
    now (``settings``: DownloadSettings); saved as this shard's evidence."""
    origins = {o for o in map(origin_of, urls) if o is not None}
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=settings.optout_max_age_h)
    records = cache.fresh(origins, since)
    todo = [(o, s) for o in sorted(origins) for s in HOST_SIGNALS if (o, s) not in records]
    if todo:
        policy = dataclasses.replace(settings.policy(), honour_optouts=False)
        opener = build_opener(policy)
        with ThreadPoolExecutor(max(1, min(settings.thread_count, len(todo)))) as pool:
            fetched = pool.map(lambda key: fetch(opener, *key, settings.timeout), todo)
            records |= {(r["origin"], r["signal"]): r for r in fetched}
    cache.save(records.values())
    return records


@dataclass(frozen=True)
class Answer:
    """One signal's answer for one image URL."""

    signal: str
    answer: str  # allowed | disallowed | unavailable
    detail: str
    seen_at: dt.datetime


def judge(url: str, records: dict[tuple[str, str], dict], settings, parsed: dict) -> list[Answer]:
    """Every host signal's answer for ``url`` (``parsed``: a per-call cache of parsed files)."""
    origin = origin_of(url)
    answers = []
    for signal in HOST_SIGNALS:
        record = records.get((origin, signal))
        if record is None:
            continue
        key = (origin, signal)
        if key not in parsed:
            parsed[key] = _parse(record, settings)
        answer, detail = _answer(parsed[key], url, settings)
        answers.append(Answer(signal, answer, detail, record["fetched_at"]))
    return answers


def _parse(record: dict, settings):
    """A record's rules (RobotsRules/TdmRep), or (answer, detail) when it has none to apply."""
    status, signal = record["http_status"], record["signal"]
    name = HOST_FILES[signal].rsplit("/", 1)[-1]
    if status is not None and 200 <= status < 300:
        if signal == "tdmrep_json":
            try:
                return TdmRep.parse(record["body"] or "")
            except ValueError as err:
                return UNAVAILABLE, f"{name} unusable: {err}"
        return RobotsRules.parse(record["body"] or "", name)
    why = record["error"] or f"HTTP {status}"
    if categorize(record["error"]) in GUARD_CATEGORIES:  # the image's own fetch is refused too
        return UNAVAILABLE, f"{name} not fetched: {why}"
    unreachable = status is None or status >= 500
    if signal == "robots_txt" and unreachable and settings.robots_unreachable == "disallow":
        return DISALLOWED, f"{name} unreachable ({why}): complete disallow (RFC 9309 2.3.1.4)"
    if signal == "robots_txt" and not unreachable:
        return ALLOWED, f"{name} {why}: no rules"
    return UNAVAILABLE, f"{name} {why}"


def _answer(rules, url: str, settings) -> tuple[str, str]:
    if isinstance(rules, tuple):
        return rules
    if isinstance(rules, TdmRep):
        found = rules.reserving(url)
    else:
        found = rules.disallowing_any(url, settings.optout_agents)
    return (DISALLOWED, found) if found else (ALLOWED, "")
