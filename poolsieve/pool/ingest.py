"""Ingest one source parquet file as one pool shard: validate, normalize, quarantine, register.

Every source row ends in exactly one place: ``rows.parquet`` (valid, normalized) or
``quarantine.parquet`` (with a reason code); ``read == normalized + quarantined`` is returned and
checked by the pool_shard asset check; both files are in file order (``row_idx``). A file that
cannot be ingested (unreadable, a column missing, repeated or of the wrong type, data that cannot
be decoded) raises SourceFileError naming the file and the column, and nothing of it is kept:
the shard's previous files, if any, stay as they were (docs/pool.md, "File or row?").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pyarrow.parquet as pq

from poolsieve.lake import Lake, commit, tmp_path_for
from poolsieve.pool import registry
from poolsieve.schema import (
    SourceFileError,
    SourceLayout,
    canonical_relation,
    read_layout,
    source_relation,
)
from poolsieve.sqlrunner import SqlProject

STAGING_MODELS = ["pool_shard_rows", "pool_shard_quarantine", "pool_shard_keys"]
#: reason codes, in the order staging tests them (the first that applies is recorded)
QUARANTINE_REASONS = [
    "url_missing",
    "url_scheme",
    "url_unparseable",
    "size_invalid",
    "score_invalid",
    "uid_malformed",
    "uid_repeated",
]


@dataclass(frozen=True)
class IngestParams:
    """Validation thresholds (bound as SQL parameters)."""

    max_url_length: int = 2048
    max_image_side: int = 100_000

    def as_sql(self) -> dict:
        return {"max_url_length": self.max_url_length, "max_image_side": self.max_image_side}


@dataclass
class IngestResult:
    shard: str
    source: str
    layout: SourceLayout
    rows_read: int
    rows_normalized: int
    rows_quarantined: int
    rows_registered: int
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    columns: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def conserved(self) -> bool:
        return self.rows_read == self.rows_normalized + self.rows_quarantined


def ingest_shard(
    conn: duckdb.DuckDBPyConnection,
    lake: Lake,
    shard: str,
    shard_seq: int,
    source_path: str,
    params: IngestParams = IngestParams(),
    project: SqlProject | None = None,
    filesystem=None,
) -> IngestResult:
    """Stage ``source_path`` as shard ``shard``: write its lake files and register its rows."""
    project = project or SqlProject()
    layout = read_layout(source_path, filesystem)
    try:
        files = _stage(conn, lake, shard, source_path, layout, params, project)
    except (duckdb.OutOfMemoryException, duckdb.InterruptException):
        raise  # the machine's limits, not the file's fault
    except duckdb.Error as err:
        raise _file_error(conn, source_path, layout, err) from err
    registered = registry.replace_shard(
        lake, conn, shard, shard_seq, "pool_shard_keys", None, project
    )
    reasons = _reason_counts(conn)
    reasons.pop(None, None)
    return IngestResult(
        shard=shard,
        source=source_path,
        layout=layout,
        rows_read=layout.num_rows,
        rows_normalized=pq.read_metadata(files["rows"]).num_rows,
        rows_quarantined=pq.read_metadata(files["quarantine"]).num_rows,
        rows_registered=registered,
        quarantine_reasons=dict(sorted(reasons.items())),
        columns=[(c, str(t)) for c, t in zip(*_columns(conn, "pool_shard_rows"), strict=True)],
        files=files,
    )


#: the files of a shard and the staging model each holds, in row order
SHARD_FILES = {"rows": "pool_shard_rows", "quarantine": "pool_shard_quarantine"}


def _stage(conn, lake: Lake, shard: str, path: str, layout: SourceLayout, params, project):
    """Run staging over the file and write both shard files, committing them only once both
    are written (a file that fails half-way leaves the shard's previous files as they were)."""
    # a temporary view: create_view would write one into the lake's catalog on every shard
    conn.register("raw_shard", canonical_relation(conn, path, layout))
    sql_params = {**params.as_sql(), "shard": shard, "uid_derived": layout.uid_derived}
    project.run(conn, STAGING_MODELS, {"raw_shard": "raw_shard"}, sql_params)
    out = lake.partition_dir("pool_shard", shard)
    written = {}
    try:
        for name, model in SHARD_FILES.items():
            final = out / f"{name}.parquet"
            written[name] = (
                _copy_to(conn, f'SELECT * FROM "{model}" ORDER BY row_idx', final),
                final,
            )
    except BaseException:
        for tmp, _ in written.values():
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in written.values():
        commit(tmp, final)
    return {name: str(final) for name, (_, final) in written.items()}


def _file_error(conn, path: str, layout: SourceLayout, err: Exception) -> SourceFileError:
    """A SourceFileError naming the file and, when one alone fails to read, the column."""
    try:  # the file as DuckDB sees it: its columns, not yet their data
        source_relation(conn, path, layout).limit(0).fetchall()
    except duckdb.Error as file_err:
        return SourceFileError(f"{path}: cannot be read ({file_err})")
    for canon, src in layout.mapping.items():
        try:  # hash: every value decoded (a count could be answered from the footer)
            source_relation(conn, path, layout).aggregate(
                f"min(hash(c{layout.position(canon)}))"
            ).fetchall()
        except duckdb.Error as column_err:
            return SourceFileError(f"{path}: column {src!r} cannot be read ({column_err})")
    return SourceFileError(f"{path}: cannot be ingested ({err})")


def _reason_counts(conn: duckdb.DuckDBPyConnection) -> dict[str | None, int]:
    """reason -> rows (None = valid) from the verdict table: every row read is counted once."""
    rows = conn.execute('SELECT reason, count(*) FROM "stg_pool_rows" GROUP BY reason').fetchall()
    return dict(rows)


def write_parquet(conn: duckdb.DuckDBPyConnection, query: str, final, params=None) -> str:
    """Write a query's result to ``final`` atomically, zstd level 1 (docs/decisions.md). The
    query is project text; values reach it as bound parameters."""
    commit(_copy_to(conn, query, final, params), final)
    return str(final)


def _copy_to(conn: duckdb.DuckDBPyConnection, query: str, final, params=None):
    """Write a query's result to a temporary sibling of ``final``; returns its path."""
    tmp = tmp_path_for(final)
    try:
        conn.execute(
            f"COPY ({query}) TO $path (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)",
            {**(params or {}), "path": str(tmp)},
        )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _columns(conn: duckdb.DuckDBPyConnection, relation: str):
    rel = conn.table(relation)
    return rel.columns, rel.types
