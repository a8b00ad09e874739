"""The URL registry: every valid row ever ingested, keyed for dedup, as a dataset in the lake.

Layout (``lake/url_registry/``, docs/pool.md and docs/decisions.md say why)::

    layout.json                                     partitions: the number of bucket groups
    shard_order.json                                pool order: shard -> shard_seq, source
    shards/<shard>.json                             a shard's record, its completion marker
    intents/<shard>.json                            files a re-ingest is writing (then removed)
    by_url/bucket=<g>/<shard>.<version>.parquet     its rows whose URL falls in group g
    by_uid/bucket=<h>/<shard>.<version>.parquet     its rows' uids that fall in group h

A row's URL group is its 10-bit ``bucket`` (top 10 bits of url_key) divided into ``partitions``
groups, so every occurrence of a URL lives in one group; its uid group is the low bits of
uid_key. Keys are stored as 64-bit halves (parquet has no 128-bit integer). Deduplicating a shard
is then one join per group it has rows in, each readable by any worker with DuckDB alone.

A shard's files carry a ``version`` (a hash of their bytes) in their names, and its record,
written last, names that version: readers read only the files its record names, so re-ingesting
a shard switches from the old files to the new ones at once (the record's atomic rename) and a
crash half-way leaves the old version readable. Before its first file lands, a re-ingest names
its files in ``intents/<shard>.json``; after the record, the files of every other version that
the previous record or an intent names are removed (by name, without listing the registry), then
the intents.

Pool order and shard identity live here too, not with a Dagster instance: two instances on one
lake share one pool order, a second source with the same file names is refused, and a file whose
content changed under a known name is replaced only when the run says so (ShardIdentityError).
A lake whose registry was kept in the DuckDB catalog (tables url_registry, shard_registry,
shard_order) is migrated to these files once, on first use.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import duckdb

from poolsieve.lake import Lake, commit, literal_path, remove, tmp_path_for, write_json
from poolsieve.sqlrunner import SqlProject

REGISTRY = "url_registry"
DEFAULT_PARTITIONS = 16
#: bits of ``bucket``, the unit the URL groups are made of
BUCKET_BITS = 10
#: the two partitionings: by the URL's bucket (the url rule) and by the uid (the uid rule)
SIDES = ("by_url", "by_uid")
#: the model that turns a shard's keys into its registry entries (dbt_like_sql/dedup/)
ENTRIES_MODEL = "registry_entries"
#: the columns of each side's files, and what their groups are read from
FILE_COLUMNS = {
    "by_url": "shard, shard_seq, row_idx, url_hi, url_lo, uid_hi, uid_lo, uid_group",
    "by_uid": "uid_hi, uid_lo, shard_seq",
}
GROUP_COLUMN = {"by_url": "url_group", "by_uid": "uid_group"}
#: the catalog tables of the registry before it became lake files
LEGACY_TABLES = ("url_registry", "shard_registry", "shard_order")


class ShardIdentityError(ValueError):
    """A file is not the one the lake knows under its shard name; the message says which."""


class RegistryLayoutError(ValueError):
    """The registry's partitioning is not the one asked for, or not a valid one."""


# ---------------------------------------------------------------- layout, listing, locks


def dataset(lake: Lake) -> Path:
    """The registry's folder (in the working copy: write here, read through :func:`_read`)."""
    return lake.root / REGISTRY


def _read(lake: Lake, *parts: str) -> Path:
    """A registry file, brought up to date first when the lake is remote."""
    return lake.path(REGISTRY, *parts)


def registry_listing(lake: Lake, *parts: str) -> list[str]:
    """The names in one folder of the registry (``lake/url_registry/<parts>``), sorted, hidden
    and temporary names (a dot first) left out; [] when the folder is not there. Every listing
    of registry files goes through here. On a remote lake the names come from the store (a
    listing: nothing is downloaded)."""
    rel = "/".join((REGISTRY, *parts))
    if lake.remote is not None:
        names = [PurePosixPath(p).name for p in lake.mirror.glob(f"{rel}/*")]
    else:
        folder = lake.root / rel
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    return sorted(n for n in names if not n.startswith("."))


@contextlib.contextmanager
def _locked(lake: Lake, name: str) -> Iterator[None]:
    """An exclusive lock (``lake/locks/<name>.lock``) around a read-modify-write of the lake's
    registry files by the processes of this machine."""
    path = lake.root / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def check_layout(lake: Lake, partitions: int | None = None) -> int:
    """The number of bucket groups of the lake's registry. A registry still in the catalog is
    migrated first; a new one gets ``partitions`` (default 16). A setting other than the one
    the registry was written with raises RegistryLayoutError: its files would be misread."""
    path = _read(lake, "layout.json")
    if partitions is not None:
        _valid_partitions(partitions)
    if not path.exists():
        with _locked(lake, REGISTRY):
            if not _read(lake, "layout.json").exists():  # another process made it meanwhile
                wanted = partitions or DEFAULT_PARTITIONS
                _migrate_catalog(lake, wanted)
                write_json(path, _layout_doc(wanted))
    recorded = json.loads(path.read_text())["partitions"]
    if partitions is not None and partitions != recorded:
        raise RegistryLayoutError(
            f"{path}: the URL registry of this lake is partitioned into {recorded} bucket "
            f"groups, the setting asks for {partitions}; set the registry partitions "
            f"(POOLSIEVE_REGISTRY_PARTITIONS) to {recorded}, or use a new lake"
        )
    return recorded


def _valid_partitions(partitions: int) -> None:
    if (
        not isinstance(partitions, int)
        or partitions < 1
        or partitions > 1 << BUCKET_BITS
        or partitions & (partitions - 1)
    ):
        raise RegistryLayoutError(
            f"registry partitions {partitions!r}: must be a power of two from 1 to "
            f"{1 << BUCKET_BITS} (groups of the {BUCKET_BITS}-bit URL bucket)"
        )


def _layout_doc(partitions: int) -> dict:
    return {
        "partitions": partitions,
        "by_url": f"bucket // {(1 << BUCKET_BITS) // partitions}, bucket = url_key >> 118",
        "by_uid": f"uid_key % {partitions}",
        "keys": "128-bit keys as (hi, lo) UBIGINT halves",
    }


# ---------------------------------------------------------------- pool order


def _order_path(lake: Lake) -> Path:
    return dataset(lake) / "shard_order.json"


def _read_order(lake: Lake) -> dict[str, tuple[int, str | None]]:
    """shard -> (shard_seq, source), in pool order."""
    path = _read(lake, "shard_order.json")
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    return {e["shard"]: (e["shard_seq"], e["source"]) for e in doc["shards"]}


def _write_order(lake: Lake, order: dict[str, tuple[int, str | None]]) -> None:
    rows = sorted(order.items(), key=lambda item: item[1][0])
    shards = [{"shard": s, "shard_seq": seq, "source": src} for s, (seq, src) in rows]
    write_json(_order_path(lake), {"shards": shards})


def enroll(lake: Lake, source: str, shards: list[str]) -> dict[str, int]:
    """shard -> pool sequence number for ``shards`` of ``source``, giving names the lake has not
    seen the next numbers in the order given. A name already enrolled from another source raises
    ShardIdentityError naming both sources (nothing is enrolled then). Read-modify-write under
    the lake's pool-order lock: runs that enroll at the same time get distinct numbers."""
    check_layout(lake)
    wanted = list(dict.fromkeys(shards))
    order = _read_order(lake)
    if _needs_write(order, wanted, source):
        with _locked(lake, "pool_order"):
            order = _read_order(lake)
            _refuse_other_sources(order, wanted, source)
            _write_order(lake, _enrolled(order, wanted, source))
            order = _read_order(lake)
    _refuse_other_sources(order, wanted, source)
    return {s: order[s][0] for s in wanted}


def _needs_write(order: dict, wanted: list[str], source: str) -> bool:
    return any(s not in order or order[s][1] is None for s in wanted)


def _enrolled(order: dict, wanted: list[str], source: str) -> dict:
    """``order`` with the new names numbered after the last, and names of no known source
    (a migrated catalog's) given ``source``."""
    updated = dict(order)
    first = max((seq for seq, _ in order.values()), default=-1) + 1
    new = [s for s in wanted if s not in order]
    for i, shard in enumerate(new):
        updated[shard] = (first + i, source)
    for shard in wanted:
        if updated[shard][1] is None:
            updated[shard] = (updated[shard][0], source)
    return updated


def _refuse_other_sources(order: dict, wanted: list[str], source: str) -> None:
    clash = {s: order[s][1] for s in wanted if s in order and order[s][1] not in (None, source)}
    if clash:
        shown = ", ".join(f"{s!r} (from {src})" for s, src in sorted(clash.items())[:5])
        raise ShardIdentityError(
            f"source {source}: {len(clash)} file name(s) are shards of another source in this "
            f"lake: {shown}. Their rows would replace that source's rows; use another lake, or "
            "rename the files"
        )


def pool_order(lake: Lake) -> list[str]:
    """Every shard name the lake has enrolled, in pool order."""
    check_layout(lake)
    return list(_read_order(lake))


# ---------------------------------------------------------------- shard records


def _quoted(shard: str) -> str:
    """A shard name quoted as the lake quotes partition keys (no '/': one file name)."""
    return quote(shard, safe="")


def _record_path(lake: Lake, shard: str) -> Path:
    return dataset(lake) / "shards" / f"{_quoted(shard)}.json"


def read_record(lake: Lake, shard: str) -> dict | None:
    """A shard's record (shard, shard_seq, rows, source_sha256, version, its groups per side),
    None when it is not ingested."""
    path = _read(lake, "shards", _record_path(lake, shard).name)
    return _load_record(path) if path.exists() else None


def _load_record(path: Path) -> dict:
    """A record file's content; a clear error names a file that is not one."""
    try:
        record = json.loads(path.read_text())
    except ValueError as err:
        problem = f"not JSON: {err}"
    else:
        missing = [k for k in ("shard", "shard_seq", "rows", "version", *SIDES) if k not in record]
        if not missing:
            return record
        problem = f"no {', '.join(missing)}"
    raise ValueError(
        f"{path}: not a URL registry record ({problem}); re-ingest the shard to write it again"
    )


def shard_records(lake: Lake) -> dict[str, dict]:
    """shard -> record, for every ingested shard (those with a record)."""
    check_layout(lake)
    records = [
        _load_record(_read(lake, "shards", name))
        for name in registry_listing(lake, "shards")
        if name.endswith(".json")
    ]
    return {r["shard"]: r for r in records}


def registered_shards(lake: Lake) -> dict[str, int]:
    """shard -> shard_seq for every ingested shard."""
    return {s: r["shard_seq"] for s, r in shard_records(lake).items()}


def bucket_files(
    lake: Lake, records: dict[str, dict], side: str, group: int, shards=None
) -> list[str]:
    """The files of ``side``'s bucket group ``group`` that ``records`` name (of ``shards``
    only, when given), as literal paths for DuckDB; files no record names are never read."""
    chosen = records if shards is None else {s: records[s] for s in shards}
    return [
        literal_path(_read(lake, side, f"bucket={group}", _file_name(shard, rec["version"])))
        for shard, rec in sorted(chosen.items())
        if group in rec[side]
    ]


def _bucket_dir(lake: Lake, side: str, group: int) -> Path:
    return dataset(lake) / side / f"bucket={group}"


def _file_name(shard: str, version: str) -> str:
    return f"{_quoted(shard)}.{version}.parquet"


def _bucket_file(lake: Lake, side: str, group: int, shard: str, version: str) -> Path:
    return _bucket_dir(lake, side, group) / _file_name(shard, version)


def check_content(lake: Lake, shard: str, source_sha256: str, replace: bool) -> str | None:
    """The sha256 ``shard`` was last ingested from (None: never, or not recorded). A different
    file under the shard's name raises ShardIdentityError unless ``replace``."""
    check_layout(lake)
    record = read_record(lake, shard)
    previous = record.get("source_sha256") if record else None
    if previous not in (None, source_sha256) and not replace:
        raise ShardIdentityError(
            f"shard {shard!r}: the source file's content changed since it was ingested "
            f"(sha256 {previous[:12]}... then, {source_sha256[:12]}... now). Re-ingesting would "
            "replace its rows: run with --replace-changed (the refresh schedule and sensor do so "
            "for files they saw change), or give the new file a new name"
        )
    return previous


def record_source(lake: Lake, shard: str, source_sha256: str) -> None:
    """Record the sha256 of the file ``shard`` was ingested from (its content identity)."""
    with _locked(lake, REGISTRY):
        record = read_record(lake, shard)
        if record is None:
            raise LookupError(f"shard {shard!r} is not in the URL registry ({dataset(lake)})")
        write_json(_record_path(lake, shard), {**record, "source_sha256": source_sha256})


# ---------------------------------------------------------------- writing a shard


def replace_shard(
    lake: Lake,
    conn: duckdb.DuckDBPyConnection,
    shard: str,
    shard_seq: int,
    rows: str,
    source_sha256: str | None = None,
    project: SqlProject | None = None,
) -> int:
    """Replace ``shard``'s registry entries with those of relation ``rows`` (row_idx, url_key,
    uid_key; in ``conn``), ingested from a file with ``source_sha256``; returns rows registered."""
    partitions = check_layout(lake)
    entry = _stage_shard(conn, lake, shard, shard_seq, rows, partitions, project)
    with _locked(lake, REGISTRY):
        return _commit_shard(lake, shard, entry, source_sha256)


def _stage_shard(conn, lake: Lake, shard: str, shard_seq: int, rows: str, partitions, project):
    """The shard's entries in temporary files: (record without identity, {(side, group): tmp})."""
    project = project or SqlProject()
    params = {"shard": shard, "shard_seq": shard_seq, "partitions": partitions}
    project.run(conn, [ENTRIES_MODEL], {"shard_keys": rows}, params)
    written = _write_entries(conn, lake, shard)
    try:
        version = _version(written)
        count = conn.execute(f'SELECT count(*) FROM "{ENTRIES_MODEL}"').fetchall()[0][0]
    except BaseException:
        for tmp in written.values():
            tmp.unlink(missing_ok=True)
        raise
    record = {
        "shard": shard,
        "shard_seq": shard_seq,
        "rows": count,
        "version": version,
        **{side: sorted(g for s, g in written if s == side) for side in SIDES},
    }
    return record, written


def _commit_shard(lake: Lake, shard: str, entry, source_sha256: str | None) -> int:
    """Name the files about to land in the shard's intents, move them into place, write the
    record (the shard is complete), then remove the files of every other version the previous
    record or an intent names, and the intents. Under the registry lock."""
    record, written = entry
    previous = read_record(lake, shard)
    superseded = _read_intents(lake, shard) + ([_files_of(previous)] if previous else [])
    write_json(_intents_path(lake, shard), {"intents": [*superseded, _files_of(record)]})
    for (side, group), tmp in written.items():
        commit(tmp, _bucket_file(lake, side, group, shard, record["version"]))
    write_json(_record_path(lake, shard), {**record, "source_sha256": source_sha256})
    _remove_versions(lake, shard, [f for f in superseded if f["version"] != record["version"]])
    remove(_intents_path(lake, shard))
    return record["rows"]


def _write_entries(conn, lake: Lake, shard: str) -> dict[tuple[str, int], Path]:
    """One temporary parquet file per (side, group) the shard has rows in, rows in file order."""
    written: dict[tuple[str, int], Path] = {}
    try:
        for side in SIDES:
            column = GROUP_COLUMN[side]
            groups = conn.execute(f'SELECT DISTINCT {column} FROM "{ENTRIES_MODEL}"').fetchall()
            for (group,) in sorted(groups):
                query = (
                    f'SELECT {FILE_COLUMNS[side]} FROM "{ENTRIES_MODEL}" '
                    f"WHERE {column} = $group ORDER BY row_idx"
                )
                final = _bucket_dir(lake, side, group) / f"{_quoted(shard)}.parquet"
                written[(side, group)] = _copy_tmp(conn, query, final, {"group": group})
    except BaseException:
        for tmp in written.values():
            tmp.unlink(missing_ok=True)
        raise
    return written


def _copy_tmp(conn, query: str, final: Path, params: dict) -> Path:
    """A query's result in a temporary sibling of ``final`` (the lake's parquet settings: zstd
    level 1, docs/decisions.md); its version decides the final name."""
    tmp = tmp_path_for(final)
    try:
        conn.execute(
            f"COPY ({query}) TO $path (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)",
            {**params, "path": str(tmp)},
        )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _version(written: dict[tuple[str, int], Path]) -> str:
    """A hash of the files' bytes, in (side, group) order: the same entries, the same names."""
    digest = hashlib.sha256()
    for (side, group), tmp in sorted(written.items()):
        digest.update(f"{side}/{group}\0".encode() + tmp.read_bytes())
    return digest.hexdigest()[:16]


def _intents_path(lake: Lake, shard: str) -> Path:
    return dataset(lake) / "intents" / f"{_quoted(shard)}.json"


def _files_of(record: dict) -> dict:
    """Which files a record (or an intent) names: its version and its groups per side."""
    return {"version": record["version"], **{side: record[side] for side in SIDES}}


def _read_intents(lake: Lake, shard: str) -> list[dict]:
    """The files of the shard's re-ingests that crashed between their first file and the end
    of their clean-up (each named before its files were moved into place)."""
    path = _read(lake, "intents", _intents_path(lake, shard).name)
    return json.loads(path.read_text())["intents"] if path.exists() else []


def _remove_versions(lake: Lake, shard: str, superseded: list[dict]) -> None:
    """Remove the files each of ``superseded`` names (by name: nothing is listed, so the cost
    is the shard's own files however large the registry grows)."""
    for files in superseded:
        for side in SIDES:
            for group in files[side]:
                remove(_bucket_file(lake, side, group, shard, files["version"]))


# ---------------------------------------------------------------- migration from the catalog


def _migrate_catalog(lake: Lake, partitions: int) -> None:
    """Move a registry kept in the catalog's tables (before it was lake files) into the lake's
    files, then drop those tables. Called under the registry lock, before layout.json exists;
    a migration cut short is redone whole (the tables stay until the files are written)."""
    if not lake.catalog.exists():
        return
    from poolsieve.duck import DuckSettings, connect  # poolsieve.duck imports the SQL runner

    with connect(lake.catalog, DuckSettings(memory_limit="2GB", threads=2)) as conn:
        tables = _legacy_tables(conn)
        if not tables:
            return
        order = _legacy_order(conn, tables)
        _write_order(lake, order)
        for shard, sha in _legacy_shards(conn, tables).items():
            _migrate_shard(lake, conn, tables, shard, order[shard][0], sha, partitions)
        for table in tables:
            conn.execute(f'DROP TABLE "{table}"')


def _legacy_tables(conn) -> dict[str, set[str]]:
    """The legacy registry tables in the catalog, with their columns."""
    rows = conn.execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' "
        "AND list_contains($t, table_name)",
        {"t": list(LEGACY_TABLES)},
    ).fetchall()
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(table, set()).add(column)
    return tables


def _legacy_seqs(tables: dict) -> str:
    """Every (shard, shard_seq) the legacy tables know a shard by."""
    parts = [f"SELECT DISTINCT shard, shard_seq FROM {t}" for t in tables if t != "shard_order"]
    return (
        " UNION ".join(parts) or "SELECT NULL::VARCHAR AS shard, NULL::INTEGER AS shard_seq LIMIT 0"
    )


def _legacy_order(conn, tables: dict) -> dict[str, tuple[int, str | None]]:
    """The catalog's pool order. A catalog from before shard_order gets its shards in the order
    they were ingested, numbered 0.. (two Dagster instances may have given two shards one
    number); shards ingested but missing from shard_order come after its last."""
    order: dict[str, tuple[int, str | None]] = {}
    if "shard_order" in tables:
        rows = conn.execute("SELECT shard, shard_seq, source FROM shard_order ORDER BY 2")
        order = {shard: (seq, source) for shard, seq, source in rows.fetchall()}
    seen = conn.execute(
        f"SELECT shard, min(shard_seq) AS seq FROM ({_legacy_seqs(tables)}) "
        "GROUP BY shard ORDER BY seq, shard"
    ).fetchall()
    first = max((seq for seq, _ in order.values()), default=-1) + 1
    for shard, _ in seen:
        if shard not in order:
            order[shard] = (first, None)
            first += 1
    return order


def _legacy_shards(conn, tables: dict) -> dict[str, str | None]:
    """shard -> the sha256 it was ingested from (None: not recorded), for every ingested shard
    (catalogs from before shard_registry know theirs from their rows only)."""
    shas = {}
    if "source_sha256" in tables.get("shard_registry", set()):
        shas = dict(conn.execute("SELECT shard, source_sha256 FROM shard_registry").fetchall())
    names = [s for s, _ in conn.execute(f"SELECT * FROM ({_legacy_seqs(tables)})").fetchall()]
    return {s: shas.get(s) for s in sorted(set(names))}


def _migrate_shard(lake: Lake, conn, tables, shard: str, seq: int, sha, partitions: int):
    """One shard's legacy rows as its registry files and record (the lock is held)."""
    if "url_registry" in tables:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE legacy_keys AS "
            "SELECT row_idx, url_key, uid_key FROM url_registry WHERE shard = $s",
            {"s": shard},
        )
    else:  # a shard_registry without url_registry: shards with no row
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE legacy_keys "
            "(row_idx BIGINT, url_key UHUGEINT, uid_key UHUGEINT)"
        )
    entry = _stage_shard(conn, lake, shard, seq, "legacy_keys", partitions, None)
    _commit_shard(lake, shard, entry, sha)
