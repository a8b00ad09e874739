"""pool_features' logic: the union of every shard's features with the pool-wide decisions.

Nothing per row is computed here: caption counts, languages and precomputed scores come from each
shard's ``shard_features`` file (poolsieve.curate.shard_features), image clusters from its
``shard_clusters`` file, so a new shard costs a union, never a recomputation of the others.

Inputs per shard (each must be materialized; a missing one fails naming the shard and asset):
pool_shard rows (url, caption), url_dedup decisions and shard_features; in download mode also
shard_images' download status, clip_embeddings' CLIP score and eval_decontamination. shard_clusters
is read where it is materialized: a shard without it has a NULL ``image_cluster`` and
``exemplar_cluster`` false. In metadata mode (DataComp's filtering track) the download inputs are
not read: their columns are NULL and a row is ineligible only when dedup dropped it. The SQL
model ``features/pool_features.sql`` joins them, one shard at a time (a uid's download status,
score, decontamination and cluster are in its own shard's files).

Writes one part per shard, ``<lake>/pool_features/<quoted shard>.parquet`` (rows in ``row_idx``
order), beside ``<quoted shard>.json``: the fingerprint of the inputs it was made from (path,
size and mtime of each file, the mode, the SQL's code version), its row counts per reason,
language and cluster, and its YAML test failures. A part whose fingerprint still matches is not
rewritten; the parts of shards no longer in the pool are deleted. Readers take the folder as one
table (:func:`part_files`; the parts in file-name order are the rows in (shard, row_idx) order);
the catalog's ``pool_features`` is a view over it (for ad-hoc SQL and audits).

Pool-wide, only what cannot be per shard is computed: uid uniqueness across parts (the rewritten
parts' uids against the others') and the summary, summed from the parts' records.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.curate.near_duplicates import ASSET as NEAR_DUP_ASSET
from poolsieve.curate.near_duplicates import RESULT_FILE as NEAR_DUP_FILE
from poolsieve.curate.near_duplicates import SCHEMA as NEAR_DUP_SCHEMA
from poolsieve.curate.shard_features import FEATURES_FILE, FeatureSettings, recorded_detectors
from poolsieve.curate.takedown import ASSET as REMOVALS_ASSET
from poolsieve.curate.takedown import REMOVALS_FILE, REMOVALS_SCHEMA
from poolsieve.images.decontamination import RESULT_FILE as DECONTAM_FILE
from poolsieve.images.decontamination import RESULT_SCHEMA as DECONTAM_SCHEMA
from poolsieve.images.status import STATUS_FILE, STATUS_SCHEMA
from poolsieve.lake import Lake, literal_path, remove, upstream_file, write_bytes_atomic
from poolsieve.pool.ingest import write_parquet
from poolsieve.sqlrunner import SqlProject, column_test_failures

__all__ = [
    "FEATURE_MODELS",
    "FeatureSettings",
    "FeaturesResult",
    "build_pool_features",
    "features_rows",
    "part_files",
]

FEATURE_MODELS = ["pool_features"]
FOLDER = "pool_features"
#: bump when what a part holds changes without its SQL changing
PART_FORMAT = 1
#: source name -> (asset, file) per shard: needed in every mode
INPUTS = {
    "rows": ("pool_shard", "rows.parquet"),
    "decisions": ("url_dedup", "decisions.parquet"),
    "features": ("shard_features", FEATURES_FILE),
}
#: needed in download mode only
DOWNLOAD_INPUTS = {
    "download_status": ("shard_images", STATUS_FILE),
    "embeddings": ("clip_embeddings", "embeddings.parquet"),
    "decontamination": ("eval_decontamination", DECONTAM_FILE),
}
#: read for the shards that have them
OPTIONAL = {
    "clusters": ("shard_clusters", "clusters.parquet"),
    "near_duplicates": (NEAR_DUP_ASSET, NEAR_DUP_FILE),
    "removals": (REMOVALS_ASSET, REMOVALS_FILE),
}
#: the columns a source gives the model when no shard has its file (metadata mode, no clusters)
EMPTY = {
    "download_status": STATUS_SCHEMA,
    "embeddings": pa.schema([("uid", pa.string()), ("clip_score", pa.float32())]),
    "decontamination": DECONTAM_SCHEMA,
    "clusters": pa.schema(
        [("uid", pa.string()), ("image_cluster", pa.int32()), ("exemplar_cluster", pa.bool_())]
    ),
    "near_duplicates": NEAR_DUP_SCHEMA,
    "removals": REMOVALS_SCHEMA,
}


@dataclass
class FeaturesResult:
    path: Path
    rows: int
    eligible: int
    ineligible: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    k: int = 0  # distinct image clusters among the rows
    exemplar_clusters: int = 0  # of which hold an exemplar
    unclustered_shards: list[str] = field(default_factory=list)
    #: (language detector, LAION rule's detector) the shards' features were made with
    detectors: list[tuple[str, str]] = field(default_factory=list)
    #: the YAML tests' failures over the whole pool ([]: all pass)
    failures: list[str] = field(default_factory=list)
    #: shards whose part was (re)written this time, and those whose part was kept
    rebuilt: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def folder(lake: Lake) -> Path:
    return lake.path(FOLDER)


def part_path(lake: Lake, shard: str) -> Path:
    return folder(lake) / f"{quote(shard, safe='')}.parquet"


def part_paths(path: str | Path) -> list[Path]:
    """The parts of pool_features under ``path`` (its folder; a single ``.parquet`` file is taken
    as is) in file-name order; [] when there are none."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return [p for p in sorted(path.glob("*.parquet")) if not p.name.startswith(".")]


def part_files(path: str | Path) -> list[str]:
    """:func:`part_paths` as literal DuckDB paths (read them as one table)."""
    return [literal_path(p) for p in part_paths(path)]


def features_rows(path: str | Path) -> int:
    """Rows of pool_features (from the parts' parquet footers)."""
    return sum(pq.read_metadata(p).num_rows for p in part_paths(path))


def shard_inputs(lake: Lake, shard: str, mode: str = "download") -> dict[str, str]:
    """One shard's file of every input the mode needs, plus its clusters file where there is
    one; FileNotFoundError names the first input not materialized."""
    needed = {**INPUTS, **(DOWNLOAD_INPUTS if mode == "download" else {})}
    files = {name: str(upstream_file(lake, a, shard, f)) for name, (a, f) in needed.items()}
    for name, (asset, file) in OPTIONAL.items():
        path = lake.partition_file(asset, shard, file)
        if path.is_file():
            files[name] = str(path)
    return files


def input_files(lake: Lake, shards: list[str], mode: str = "download") -> dict[str, dict[str, str]]:
    """Per shard, its input files (:func:`shard_inputs`); FileNotFoundError lists every shard
    asset not materialized."""
    if not shards:
        raise FileNotFoundError("pool_features: no shards registered")
    needed = {**INPUTS, **(DOWNLOAD_INPUTS if mode == "download" else {})}
    missing = [
        f"{asset}[{shard}]"
        for asset, file in needed.values()
        for shard in shards
        if not lake.partition_file(asset, shard, file).exists()
    ]
    if missing:
        raise FileNotFoundError(
            f"pool_features needs every shard's upstream assets; not materialized: {missing}"
        )
    return {shard: shard_inputs(lake, shard, mode) for shard in shards}


def fingerprint(files: dict[str, str], mode: str, code_version: str) -> dict:
    """What a part was made from: each input file's path, size and mtime, the mode, the SQL."""
    stats = {}
    for name, path in sorted(files.items()):
        st = os.stat(path)
        stats[name] = [path, st.st_size, st.st_mtime_ns]
    return {"format": PART_FORMAT, "mode": mode, "sql": code_version, "inputs": stats}


def _record(part: Path) -> dict | None:
    sidecar = part.with_suffix(".json")
    if not (part.is_file() and sidecar.is_file()):
        return None
    try:
        return json.loads(sidecar.read_text())
    except ValueError:
        return None  # a torn or foreign record: rebuild the part


def _views(conn: duckdb.DuckDBPyConnection, files: dict[str, str]) -> None:
    """One view per source: the shard's file, or an empty relation of its columns."""
    for name in [*INPUTS, *DOWNLOAD_INPUTS, *OPTIONAL]:
        if name in files:
            conn.read_parquet(literal_path(files[name])).create_view(name, replace=True)
        else:
            conn.register(name, EMPTY[name].empty_table())


def build_part(
    conn: duckdb.DuckDBPyConnection,
    lake: Lake,
    shard: str,
    files: dict[str, str],
    mode: str,
    project: SqlProject,
) -> dict:
    """Write one shard's part and its record; returns the record."""
    record = fingerprint(files, mode, project.code_version(FEATURE_MODELS))
    _views(conn, files)
    sources = {name: name for name in [*INPUTS, *DOWNLOAD_INPUTS, *OPTIONAL]}
    project.run(conn, FEATURE_MODELS, sources, {"mode": mode})
    part = part_path(lake, shard)
    write_parquet(conn, "SELECT * FROM temp.pool_features ORDER BY row_idx", part)
    model = project.model("pool_features")
    record["failures"] = column_test_failures(conn, model, "pool_features")
    record["detectors"] = list(recorded_detectors(files["features"]))
    record["clustered"] = "clusters" in files
    record.update(_part_summary(conn))
    write_bytes_atomic(part.with_suffix(".json"), (json.dumps(record, indent=1) + "\n").encode())
    return record


def _part_summary(conn: duckdb.DuckDBPyConnection) -> dict:
    def counts(sql: str) -> dict:
        return dict(conn.execute(sql).fetchall())

    table = "FROM temp.pool_features"
    return {
        "rows": conn.execute(f"SELECT count(*) {table}").fetchall()[0][0],
        "reasons": counts(
            f"SELECT coalesce(ineligible_reason, 'eligible'), count(*) {table} GROUP BY 1"
        ),
        "languages": counts(f"SELECT coalesce(language, ''), count(*) {table} GROUP BY 1"),
        "clusters": sorted(
            c
            for (c,) in conn.execute(
                f"SELECT DISTINCT image_cluster {table} WHERE image_cluster IS NOT NULL"
            ).fetchall()
        ),
        "exemplar_clusters": sorted(
            c
            for (c,) in conn.execute(
                f"SELECT DISTINCT image_cluster {table} WHERE exemplar_cluster AND image_cluster IS NOT NULL"
            ).fetchall()
        ),
    }


def _drop_removed(lake: Lake, shards: list[str]) -> None:
    """Delete the parts (and records) of shards no longer in the pool."""
    wanted = {part_path(lake, s).name for s in shards}
    for part in part_paths(folder(lake)):
        if part.name not in wanted:
            remove(part.with_suffix(".json"))
            remove(part)


def build_pool_features(
    conn: duckdb.DuckDBPyConnection,
    lake: Lake,
    shards: list[str],
    settings: FeatureSettings,
    project: SqlProject | None = None,
) -> FeaturesResult:
    """Bring every shard's part up to date (only those whose inputs changed are rewritten), drop
    the parts of removed shards, check uid uniqueness across parts; the pool's summary."""
    project = project or SqlProject()
    files = input_files(lake, shards, settings.mode)
    version = project.code_version(FEATURE_MODELS)
    folder(lake).mkdir(parents=True, exist_ok=True)
    _drop_removed(lake, shards)
    records, rebuilt = {}, []
    for shard in shards:
        old = _record(part_path(lake, shard))
        wanted = fingerprint(files[shard], settings.mode, version)
        if old is not None and all(old.get(k) == v for k, v in wanted.items()):
            records[shard] = old
        else:
            rebuilt.append(shard)
    records.update(_build_parts(conn, lake, {s: files[s] for s in rebuilt}, settings.mode, project))
    records = {s: records[s] for s in shards}
    _pool_views(conn, lake)
    messages = [m for r in records.values() for m in r.get("failures", [])]
    messages += _duplicates_across_parts(conn, lake, shards, rebuilt)
    return _summary(lake, shards, records, rebuilt, _merge_failures(messages))


def _build_parts(conn, lake: Lake, todo: dict[str, dict[str, str]], mode: str, project):
    """Build the parts of ``todo`` (shard -> input files): one at a time in ``conn`` when there
    are few, else on as many single-threaded in-memory connections as ``conn`` has threads (a
    shard's files make one row group each, which one thread reads)."""
    threads, memory = conn.execute(
        "SELECT current_setting('threads'), current_setting('memory_limit')"
    ).fetchall()[0]
    workers = min(int(threads), len(todo))
    if workers <= 1:
        return {s: build_part(conn, lake, s, f, mode, project) for s, f in todo.items()}
    limit = f"{max(_bytes(memory) // workers // 2**20, 64)}MB"

    def one(item):
        shard, files = item
        with duckdb.connect(config={"threads": 1, "memory_limit": limit}) as own:
            return shard, build_part(own, lake, shard, files, mode, project)

    with ThreadPoolExecutor(workers) as pool:
        return dict(pool.map(one, todo.items()))


def _bytes(setting: str) -> int:
    """DuckDB's memory_limit setting ('1.8 GiB', '512.0 MiB') in bytes."""
    number, unit = setting.split()
    scale = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "KB": 10**3, "MB": 10**6}
    return int(float(number) * scale.get(unit, 10**9 if unit == "GB" else 1))


def _pool_views(conn: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """``pool_features`` over every part: a temp view in this connection and a view in the
    catalog (replacing the table older versions wrote there)."""
    parts = part_files(folder(lake))
    source = f"SELECT * FROM read_parquet({_list_literal(parts)})"
    _drop(conn, "temp")
    _drop(conn, "main")
    conn.execute(f"CREATE TEMP VIEW pool_features AS {source}")
    conn.execute(f"CREATE VIEW main.pool_features AS {source}")


def _drop(conn: duckdb.DuckDBPyConnection, where: str) -> None:
    """Drop ``pool_features`` in ``where`` ("temp", or "main": the catalog), table or view."""
    database = (
        "temp" if where == "temp" else conn.execute("SELECT current_database()").fetchall()[0][0]
    )
    kinds = conn.execute(
        "SELECT 'TABLE' FROM duckdb_tables() WHERE database_name = $d AND schema_name = 'main' "
        "AND table_name = 'pool_features' UNION ALL SELECT 'VIEW' FROM duckdb_views() "
        "WHERE database_name = $d AND schema_name = 'main' AND view_name = 'pool_features'",
        {"d": database},
    ).fetchall()
    for (kind,) in kinds:
        conn.execute(f"DROP {kind} {where}.pool_features")


def _list_literal(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _merge_failures(messages: list[str]) -> list[str]:
    """Test failures of the parts (and across them), one message per test, rows summed."""
    bad: Counter = Counter()
    for message in messages:
        head, _, rest = message.rpartition(" for ")
        bad[head] += int(rest.split()[0])
    return [f"{head} for {n} rows" for head, n in bad.items()]


def _duplicates_across_parts(conn, lake: Lake, shards: list[str], rebuilt: list[str]) -> list[str]:
    """uid uniqueness between parts (each part checked its own): the rewritten parts' uids
    against every other part's (all of them when every part was rewritten)."""
    if not rebuilt:
        return []
    new = [literal_path(part_path(lake, s)) for s in rebuilt]
    old = [literal_path(part_path(lake, s)) for s in shards if s not in set(rebuilt)]
    dup = conn.execute(
        "SELECT count(*) FROM (SELECT uid FROM read_parquet($new) GROUP BY uid HAVING count(*) > 1)",
        {"new": new},
    ).fetchall()[0][0]
    if old:
        dup += conn.execute(
            "SELECT count(*) FROM read_parquet($old) WHERE uid IN (SELECT uid FROM read_parquet($new))",
            {"old": old, "new": new},
        ).fetchall()[0][0]
    return [f"pool_features.uid: unique failed for {dup} rows"] if dup else []


def _summary(lake: Lake, shards, records: dict[str, dict], rebuilt, failures) -> FeaturesResult:
    reasons: Counter = Counter()
    languages: Counter = Counter()
    clusters, exemplars = set(), set()
    for record in records.values():
        reasons.update(record["reasons"])
        languages.update(record["languages"])
        clusters.update(record["clusters"])
        exemplars.update(record["exemplar_clusters"])
    eligible = reasons.pop("eligible", 0)
    top = sorted(languages.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return FeaturesResult(
        path=folder(lake),
        rows=eligible + sum(reasons.values()),
        eligible=eligible,
        ineligible=dict(reasons),
        languages=dict(top),
        k=len(clusters),
        exemplar_clusters=len(exemplars),
        unclustered_shards=[s for s in shards if not records[s]["clustered"]],
        detectors=sorted({tuple(r["detectors"]) for r in records.values()}),
        failures=failures,
        rebuilt=rebuilt,
        reused=[s for s in shards if s not in set(rebuilt)],
    )
