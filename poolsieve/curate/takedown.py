"""Takedown and hash lists: which pool rows must go, and which subsets and models hold them.

A list is one CSV or parquet file (its name: the file's stem) in a folder of lists. Each row is
one entry naming exactly one of:

* ``uid``: a DataComp uid (32 hex digits);
* ``url``: a URL, compared after ``normalize_url`` (dbt_like_sql/macros/normalize_url.sql: URL
  equality in poolsieve), so ``HTTP://Host/a.jpg/?utm_source=x`` takes down ``http://host/a.jpg``;
* ``sha256``: 64 hex digits, the sha256 of the image: compared with the pool's metadata sha256
  (pool_shard rows) and with the sha256 of the bytes downloaded (image_hashes);
* ``phash``: 16 hex digits, as ``str(imagehash.phash(image))`` prints them: an image whose
  pHash (image_hashes) is within ``phash_max_distance`` bits is a match (a re-encoded, resized or
  slightly re-exposed copy of the picture; unrelated pictures differ in about 32 bits);

plus optional ``reason`` and ``reference`` (a takedown request id, say). An empty cell is not
set; other columns are refused, so a misspelled column never silently matches nothing.

* :func:`load_lists` reads and validates a folder of lists (or one list) into one table;
* :func:`match_removals` finds every pool row an entry matches (SQL: dbt_like_sql/takedown/);
* :func:`write_removals` writes ``removals/<shard>/removals.parquet`` per shard;
* :func:`affected` says which subsets keep a removed uid, and what was built on them.

``poolsieve affected LISTS`` prints the last two for a lake.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from poolsieve.duck import DuckSettings, connect
from poolsieve.images.hashes import ASSET as HASHES_ASSET
from poolsieve.images.hashes import HASHES_FILE, PHASH_BITS, phash_block_params
from poolsieve.lake import Lake, literal_path, upstream_file, write_parquet_if_changed
from poolsieve.pool.urlnorm import normalize_urls
from poolsieve.sqlrunner import SqlProject

#: what an entry names, exactly one per row
KINDS = ("uid", "url", "sha256", "phash")
#: the other columns a list may have
EXTRA_COLUMNS = ("reason", "reference")
LIST_SUFFIXES = (".csv", ".parquet")
_HEX = {"uid": 32, "sha256": 64, "phash": 16}
_ONE_OF = f"{', '.join(KINDS[:-1])} or {KINDS[-1]}"

LISTS_SCHEMA = pa.schema(
    [
        ("list", pa.string()),
        ("entry", pa.int64()),
        ("kind", pa.string()),
        ("value", pa.string()),
        ("reason", pa.string()),
        ("reference", pa.string()),
    ]
)
REMOVALS_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("shard", pa.string()),
        ("row_idx", pa.int64()),
        ("list", pa.string()),
        ("entry", pa.int64()),
        ("kind", pa.string()),
        ("matched_on", pa.string()),
        ("distance", pa.int32()),
        ("reason", pa.string()),
        ("reference", pa.string()),
    ]
)
ASSET = "removals"
REMOVALS_FILE = "removals.parquet"
ENTRIES_MODEL = "takedown_entries"
MATCHES_MODEL = "takedown_matches"
AFFECTED_MODEL = "takedown_affected"
#: the matching model's sources, as registered (temporary) in the caller's connection
SOURCES = {"lists": "takedown_lists", "rows": "takedown_rows", "hashes": "takedown_hashes"}
#: what is built on a strategy's subset: a strategy partition of each holds the removed images
BUILT_ON = ("train_shards", "clip_model", "evaluation")
EXAMPLES = 10


class ListError(ValueError):
    """A list file that cannot be used; the message names the file, row and field."""


# ---------------------------------------------------------------- reading lists


def load_lists(path: str | Path) -> pa.Table:
    """Every entry of the lists in folder ``path`` (or of the one list file ``path``) as a table
    (LISTS_SCHEMA: list, entry, kind, value, reason, reference; ``entry`` is the entry's 1-based
    row in its file, the header not counted). A folder without lists gives an empty table; a
    file that is not a list, or a bad entry, raises ListError naming file, row and field."""
    rows = []
    for file in list_files(path):
        rows += _file_entries(file)
    _check_urls(rows)
    return pa.Table.from_pylist(rows, schema=LISTS_SCHEMA)


PARSED_FOLDER = "takedown_lists"


def parsed_lists(lake: Lake, path: str | Path) -> pa.Table:
    """:func:`load_lists`, parsed and checked once per content of the lists: the table is kept
    as ``<lake>/takedown_lists/parsed-<digest>.parquet`` (the digest of every list file's name
    and bytes), so each shard's download reads it back instead of parsing a multi-million-entry
    hash list again; older versions are removed."""
    digest = hashlib.sha256()
    for file in list_files(path):
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    cached = lake.path(PARSED_FOLDER, f"parsed-{digest.hexdigest()[:32]}.parquet")
    with contextlib.suppress(FileNotFoundError):  # absent, or replaced by newer lists meanwhile
        return pq.read_table(cached, schema=LISTS_SCHEMA)
    table = load_lists(path)
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_parquet_if_changed(cached, table)
    for old in cached.parent.glob("parsed-*.parquet"):
        if old != cached:
            old.unlink(missing_ok=True)
    return table


def list_files(path: str | Path) -> list[Path]:
    """The list files of folder ``path`` (hidden names left out), or ``[path]`` for one file.
    Anything else in the folder is refused: a list in another format would be ignored."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such takedown list file or folder (set by POOLSIEVE_TAKEDOWN_LISTS, "
            "the curation resource's takedown_lists; empty for no lists)"
        )
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.name[0] != ".")
    for file in files:
        if not file.is_file() or file.suffix.lower() not in LIST_SUFFIXES:
            raise ListError(f"{file}: not a list (a list is one .csv or .parquet file)")
    stems = [f.stem for f in files]
    for file in files:
        if stems.count(file.stem) > 1:
            raise ListError(f"{file}: another file is also list {file.stem!r}")
    return files


def _file_entries(file: Path) -> list[dict]:
    """The entries of one list file, validated."""
    header, records = _read_csv(file) if file.suffix.lower() == ".csv" else _read_parquet(file)
    _check_header(file, header)
    entries = []
    for number, record in records:
        if any(v is not None for v in record.values()):
            entries.append(_entry(file, number, record))
    return entries


def _read_csv(file: Path) -> tuple[list[str], Iterable[tuple[int, dict]]]:
    """(header, (row number, {column: text or None})...); blank lines are rows without
    fields, so row numbers stay those of the file's data rows."""
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            lines = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error) as err:
        raise ListError(f"{file}: not a readable UTF-8 CSV file ({err})") from err
    if not lines:
        return [], []
    header = [name.strip().lower() for name in lines[0]]
    records = []
    for number, fields in enumerate(lines[1:], start=1):
        if fields and len(fields) != len(header):
            raise ListError(
                f"{file}: row {number}: {len(fields)} fields, the header has {len(header)}"
            )
        records.append((number, dict(zip(header, map(_cell, fields), strict=False))))
    return header, records


def _read_parquet(file: Path) -> tuple[list[str], Iterable[tuple[int, dict]]]:
    """(header, (row number, {column: text or None})...); every column must hold text."""
    try:
        table = pq.read_table(file)
    except (pa.ArrowInvalid, OSError) as err:
        raise ListError(f"{file}: not a readable parquet file ({err})") from err
    for field in table.schema:
        if not _is_text(field.type):
            raise ListError(
                f"{file}: column {field.name!r} is {field.type}; a list's columns hold text "
                "(a phash as its 16 hex digits)"
            )
    header = [name.strip().lower() for name in table.column_names]
    rows = zip(*(column.to_pylist() for column in table.columns), strict=True)
    records = [
        (n, dict(zip(header, map(_cell, values), strict=True)))
        for n, values in enumerate(rows, start=1)
    ]
    return header, records


def _is_text(kind: pa.DataType) -> bool:
    """Whether a parquet column holds text (or only nulls)."""
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)


def _cell(value) -> str | None:
    """A cell's text, stripped; an empty cell is not set."""
    value = value.strip() if value is not None else None
    return value or None


def _check_header(file: Path, header: list[str]) -> None:
    known = (*KINDS, *EXTRA_COLUMNS)
    for name in header:
        if name not in known:
            raise ListError(
                f"{file}: column {name!r}: unknown column (a list has {', '.join(known)})"
            )
        if header.count(name) > 1:
            raise ListError(f"{file}: column {name!r}: appears twice")
    if header and not set(header) & set(KINDS):
        raise ListError(f"{file}: no {_ONE_OF} column: its entries name nothing")


def _entry(file: Path, number: int, record: dict) -> dict:
    """One validated entry: exactly one kind set, hex in lower case."""
    where = f"{file}: row {number}"
    kinds = [k for k in KINDS if record.get(k) is not None]
    if not kinds:
        raise ListError(f"{where}: no {_ONE_OF} set: an entry names exactly one")
    if len(kinds) > 1:
        raise ListError(f"{where}: {' and '.join(kinds)} both set: an entry names exactly one")
    kind = kinds[0]
    value = record[kind]
    if kind in _HEX:
        value = value.lower()
        if not re.fullmatch(f"[0-9a-f]{{{_HEX[kind]}}}", value):
            raise ListError(f"{where}: {kind}: {record[kind]!r} is not {_HEX[kind]} hex digits")
    return {
        "list": file.stem,
        "entry": number,
        "kind": kind,
        "value": value,
        "reason": record.get("reason"),
        "reference": record.get("reference"),
        "_file": file,
    }


def _check_urls(rows: list[dict]) -> None:
    """Every url entry must normalize (one query for all); drops the rows' file names."""
    urls = [r for r in rows if r["kind"] == "url"]
    for row, norm in zip(urls, normalize_urls(r["value"] for r in urls), strict=True):
        if norm is None:
            raise ListError(
                f"{row['_file']}: row {row['entry']}: url: {row['value']!r} is not a URL "
                "normalize_url can read (scheme://host/...)"
            )
    for row in rows:
        del row["_file"]


# ---------------------------------------------------------------- matching


def match_removals(
    conn: duckdb.DuckDBPyConnection,
    lake: Lake,
    lists_table: pa.Table,
    shards: Iterable[str],
    phash_max_distance: int = 4,
    project: SqlProject | None = None,
) -> pa.Table:
    """Every pool row of ``shards`` that an entry of ``lists_table`` (:func:`load_lists`)
    matches, one row per (pool row, entry, matched_on), as REMOVALS_SCHEMA, ordered by shard,
    row_idx, list, entry. A shard without image_hashes is matched on uid, url and metadata
    sha256 only (:func:`shards_without_hashes` names them)."""
    if not 0 <= phash_max_distance <= PHASH_BITS // 2:
        raise ValueError(
            f"phash_max_distance {phash_max_distance} is not in [0, {PHASH_BITS // 2}]: "
            "unrelated images differ in about half of a pHash's 64 bits"
        )
    project = project or SqlProject()
    conn.execute(f"CREATE OR REPLACE TEMP TABLE all_takedown_matches ({_columns()})")
    params = phash_block_params(phash_max_distance)
    conn.register(SOURCES["lists"], lists_table.cast(LISTS_SCHEMA))
    try:
        for shard in sorted(set(shards)):
            _register_shard(conn, lake, shard)
            project.run(conn, [MATCHES_MODEL], SOURCES, {**params, "shard": shard})
            conn.execute(f'INSERT INTO all_takedown_matches SELECT * FROM "{MATCHES_MODEL}"')
    finally:  # registrations are temporary views, never views in the lake's catalog
        for name in SOURCES.values():
            conn.unregister(name)
    return (
        conn.table("all_takedown_matches")
        .order("shard, row_idx, list, entry, matched_on")
        .to_arrow_table()
        .cast(REMOVALS_SCHEMA)
    )


def _columns() -> str:
    types = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.int32(): "INTEGER"}
    return ", ".join(f'"{f.name}" {types[f.type]}' for f in REMOVALS_SCHEMA)


def _register_shard(conn, lake: Lake, shard: str) -> None:
    """The shard's rows and image hashes (no rows when it has none) as the models' sources."""
    rows = upstream_file(lake, "pool_shard", shard, "rows.parquet")
    conn.register(SOURCES["rows"], conn.read_parquet(literal_path(rows)))
    hashes = lake.partition_file(HASHES_ASSET, shard, HASHES_FILE)
    if hashes.exists():
        relation = conn.read_parquet(literal_path(hashes))
    else:
        relation = conn.sql(
            "SELECT NULL::VARCHAR AS uid, NULL::VARCHAR AS sha256, NULL::BIGINT AS phash "
            "WHERE false"
        )
    conn.register(SOURCES["hashes"], relation)


def shards_without_hashes(lake: Lake, shards: Iterable[str]) -> list[str]:
    """The shards with no image_hashes: their images' sha256 and pHash were not compared."""
    return sorted(
        s for s in set(shards) if not lake.partition_file(HASHES_ASSET, s, HASHES_FILE).exists()
    )


# ---------------------------------------------------------------- writing


def write_removals(lake: Lake, table: pa.Table, shards: Iterable[str]) -> dict[str, int]:
    """``removals/<shard>/removals.parquet`` for each of ``shards`` (REMOVALS_SCHEMA; an empty
    file for a shard with no match), each written atomically and only when its rows changed
    (pool_features keeps the parts of the other shards); returns shard -> rows. A match in
    a shard not among ``shards`` is refused: it would be silently left out."""
    shards = sorted(set(shards))
    table = table.cast(REMOVALS_SCHEMA)
    stray = set(table.column("shard").to_pylist()) - set(shards)
    if stray:
        raise ValueError(f"removals of shards {sorted(stray)} not among the shards written")
    written = {}
    for shard in shards:
        part = table.filter(pc.equal(table.column("shard"), shard))
        write_parquet_if_changed(lake.partition_dir(ASSET, shard) / REMOVALS_FILE, part)
        written[shard] = part.num_rows
    return written


# ---------------------------------------------------------------- what they touch


def affected(lake: Lake, removed_uids: Iterable[str], project: SqlProject | None = None) -> dict:
    """What the removed uids touch, from every subset's decisions in the lake::

        {"removed_uids": n, "subsets_checked": [strategy...],
         "affected": {strategy: {"kept": n, "dropped": n, "examples": [uid...],
                                 "built_on": {"train_shards": bool, "clip_model": bool,
                                              "evaluation": bool}}},
         "unaffected_held": {strategy: {"dropped": n}},
         "trained_on": {strategy: n}}

    ``affected``: the subsets that KEEP at least one removed uid (examples: up to 10, the
    smallest), with which strategy partitions built on the subset exist (they hold the images
    or were trained or evaluated on them); ``unaffected_held``: the subsets whose decisions hold
    removed uids but drop every one of them; ``trained_on``: :func:`trained_on`."""
    project = project or SqlProject()
    uids = sorted(set(removed_uids))
    files = lake.asset_files("subset", "decisions.parquet")
    rows = _affected_rows(files, uids, project) if files and uids else []
    doc = {
        "removed_uids": len(uids),
        "subsets_checked": sorted(unquote(Path(f).parent.name) for f in files),
        "affected": {},
        "unaffected_held": {},
    }
    for strategy, kept, dropped, examples in sorted(rows):
        if kept:
            built = {asset: lake.has_partition(asset, strategy) for asset in BUILT_ON}
            doc["affected"][strategy] = {
                "kept": kept,
                "dropped": dropped,
                "examples": list(examples),
                "built_on": built,
            }
        else:
            doc["unaffected_held"][strategy] = {"dropped": dropped}
    doc["trained_on"] = trained_on(lake, uids)
    return doc


def trained_on(lake: Lake, uids: Iterable[str]) -> dict[str, int]:
    """Per strategy, how many of ``uids`` its train shards hold (read from the tars' .json
    members): a model trained before the subset dropped them was still trained on them, until
    train_shards and clip_model are materialized again."""
    wanted, held = set(uids), {}
    for sizes in lake.glob("train_shards/*/sizes.json") if wanted else []:
        strategy = unquote(sizes.parent.name)
        found = {u for tar in sorted(sizes.parent.glob("*.tar")) for u in _tar_uids(tar)}
        if found & wanted:
            held[strategy] = len(found & wanted)
    return held


def _tar_uids(tar: Path) -> set[str]:
    """The uids of a webdataset tar's samples (their .json members)."""
    import json
    import tarfile

    with tarfile.open(tar, "r:") as handle:
        return {
            json.load(handle.extractfile(m)).get("uid")
            for m in handle.getmembers()
            if m.isfile() and m.name.endswith(".json")
        }


def _affected_rows(files: list[str], uids: list[str], project: SqlProject) -> list[tuple]:
    with duckdb.connect() as conn:
        conn.register("takedown_decisions", conn.read_parquet(files, filename=True))
        conn.register("takedown_removed", pa.table({"uid": pa.array(uids, pa.string())}))
        sources = {"decisions": "takedown_decisions", "removed": "takedown_removed"}
        project.run(conn, [AFFECTED_MODEL], sources, {"examples": EXAMPLES})
        return conn.execute(
            f'SELECT strategy, kept, dropped, examples FROM "{AFFECTED_MODEL}"'
        ).fetchall()


# ---------------------------------------------------------------- the report


def report(
    lists_table: pa.Table,
    matches: pa.Table,
    affected_doc: dict,
    shards: Iterable[str],
    without_hashes: list[str],
) -> dict:
    """The ``poolsieve affected`` document: the lists read, each removed uid's matches (shard,
    row_idx, list, entry, kind, matched_on, distance, reason, reference) and
    :func:`affected`'s answer."""
    kinds = pc.value_counts(lists_table.column("kind")).to_pylist()
    removed: dict[str, list[dict]] = {}
    for match in matches.to_pylist():
        removed.setdefault(match.pop("uid"), []).append(match)
    return {
        "lists": sorted(set(lists_table.column("list").to_pylist())),
        "entries": lists_table.num_rows,
        "entries_by_kind": {k["values"]: k["counts"] for k in kinds},
        "shards": len(set(shards)),
        "without_image_hashes": without_hashes,
        "matches": matches.num_rows,
        "removed": removed,
        **affected_doc,
    }


def format_report(doc: dict) -> str:
    """``poolsieve affected``'s text: the lists, each removed uid's matches, then what they
    touch (subsets that keep them, what was built on those; subsets that drop them)."""
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(doc["entries_by_kind"].items()))
    lines = [
        f"lists: {len(doc['lists'])} ({doc['entries']} entries{': ' + kinds if kinds else ''}),"
        f" matched against {doc['shards']} shard(s)"
    ]
    if doc["without_image_hashes"]:
        lines.append(
            "  no image_hashes (image sha256 and pHash not compared) for: "
            + ", ".join(doc["without_image_hashes"])
        )
    if not doc["removed"]:
        return "\n".join([*lines, "no pool row matches the lists"])
    lines.append(f"removed uids: {len(doc['removed'])} ({doc['matches']} matches)")
    for uid, matches in sorted(doc["removed"].items()):
        lines += [f"  {uid}", *(f"    {_match_text(m)}" for m in matches)]
    return "\n".join(lines + _subset_lines(doc))


def _match_text(m: dict) -> str:
    bits = "bit" if m["distance"] == 1 else "bits"
    how = m["matched_on"] + (
        f" ({m['distance']} {bits} apart)" if m["matched_on"] == "phash" else ""
    )
    why = ", ".join(v for v in (m["reason"], m["reference"]) if v)
    return (
        f"shard {m['shard']} row {m['row_idx']}: list {m['list']} entry {m['entry']} by {how}"
        + (f" [{why}]" if why else "")
    )


def _subset_lines(doc: dict) -> list[str]:
    checked = ", ".join(doc["subsets_checked"]) or "none (no subset materialized)"
    lines = [f"subsets checked: {checked}"]
    if doc["affected"]:
        lines.append("affected (the subset keeps removed uids):")
    for strategy, a in doc["affected"].items():
        more = ", ..." if a["kept"] > len(a["examples"]) else ""
        lines.append(
            f"  {strategy}: keeps {a['kept']} (e.g. {', '.join(a['examples'])}{more}), "
            f"drops {a['dropped']}"
        )
        built = [f"{asset}[{strategy}]" for asset, there in a["built_on"].items() if there]
        lines.append("    built on it: " + (", ".join(built) or "nothing yet"))
    if doc["unaffected_held"]:
        lines.append("unaffected (the subset drops every removed uid it holds):")
    for strategy, u in doc["unaffected_held"].items():
        lines.append(f"  {strategy}: drops {u['dropped']}")
    if not doc["affected"]:
        lines.append("no subset keeps a removed uid")
    for strategy, n in doc.get("trained_on", {}).items():
        lines.append(
            f"train_shards[{strategy}] still hold {n} removed uid(s): clip_model[{strategy}] and "
            f"evaluation[{strategy}] were built on them until train_shards is materialized again"
        )
    return lines


@dataclass(frozen=True)
class DownloadBlocks:
    """What the takedown lists keep a shard's download from fetching or keeping: rows matched
    by uid, URL or the pool's sha256 (refused before any request, with the entry named), and
    the listed sha256 values (the guard refuses a served body with one of them)."""

    rows: dict[str, str]  # uid -> "removed: takedown list 'x' entry 3 (matched on uid)"
    sha256: frozenset[str]


NO_BLOCKS = DownloadBlocks({}, frozenset())


def download_blocks(lake: Lake, shard: str, lists: str, phash_max_distance: int) -> DownloadBlocks:
    """The lists in ``lists`` (a folder or file; "" for none) applied to ``shard``'s rows before
    its download; a pHash entry can only match images already downloaded (``removals`` applies
    it after the download)."""
    if not lists:
        return NO_BLOCKS
    table = parsed_lists(lake, lists)
    with connect(":memory:", DuckSettings(memory_limit="1GB")) as conn:
        matches = match_removals(conn, lake, table, [shard], phash_max_distance).to_pylist()
    rows: dict[str, str] = {}
    for m in matches:  # ordered by list, entry: the first entry that matched names the row
        rows.setdefault(
            m["uid"],
            f"removed: takedown list {m['list']!r} entry {m['entry']} (matched on "
            f"{m['matched_on']})",
        )
    kinds, values = table.column("kind").to_pylist(), table.column("value").to_pylist()
    sha256 = frozenset(v.lower() for k, v in zip(kinds, values, strict=True) if k == "sha256")
    return DownloadBlocks(rows, sha256)
