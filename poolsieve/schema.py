"""Pool schemas: DataComp's metadata columns, LAION-style inputs, and how one maps to the other.

A source parquet is *DataComp-style* when it has a lower-case ``url`` column and *LAION-style* when
it has upper-case ``URL``/``TEXT`` (a file with both is DataComp-style; ``URL``/``TEXT`` are then
extra columns). Both are projected onto :data:`CANONICAL` (missing optional columns become typed
NULLs). When a file has no ``uid`` column, staging derives one from content:

    uid = md5(raw url || U+001F || coalesce(caption, ''))   -- 32 lower-case hex chars, 128 bits

so the same (url, caption) pair gets the same uid in every file and every run, and the uid has
DataComp's format (subset files, ``.npy`` uid pairs, all work unchanged).

What is a file's problem and what is a row's (docs/pool.md): a column's *type* holds for every row,
so a column of the wrong type (``face_bboxes`` as ``list<double>``, a string ``original_width``),
a used column that appears twice, or a file that cannot be read fails the file with a
SourceFileError naming the file and the column. A *value* is a row's problem: a width of NaN,
1e19 or 2^64-1, a score of 1e300 reach staging as the raw numbers (``raw_*`` columns), which
quarantines the row. Columns may be dictionary-encoded (pandas categoricals) or of arrow's null
type (all NULL: treated as a column of NULLs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.lake import literal_path

#: canonical column -> DuckDB type, in output order (DataComp's pool metadata schema).
CANONICAL: dict[str, str] = {
    "uid": "VARCHAR",
    "url": "VARCHAR",
    "text": "VARCHAR",
    "original_width": "BIGINT",
    "original_height": "BIGINT",
    "clip_b32_similarity_score": "FLOAT",
    "clip_l14_similarity_score": "FLOAT",
    "face_bboxes": "DOUBLE[][]",
    "sha256": "VARCHAR",
}

#: numeric canonical columns whose source value staging validates before it is cast: each gets
#: a ``raw_<column>`` DOUBLE beside it (the canonical column is a TRY_CAST, NULL when out of range)
RAW_NUMERIC = [c for c, t in CANONICAL.items() if t in ("BIGINT", "FLOAT")]

#: LAION column -> canonical column (LAION's ``similarity`` is a CLIP ViT-B/32 cosine).
LAION_TO_CANONICAL = {
    "URL": "url",
    "TEXT": "text",
    "WIDTH": "original_width",
    "HEIGHT": "original_height",
    "similarity": "clip_b32_similarity_score",
}


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_boxes(t: pa.DataType) -> bool:
    """A list of boxes, each a list of numbers (NULL-typed parts allowed)."""
    if not _is_list(t):
        return False
    box = _plain(t.value_type)
    return pa.types.is_null(box) or (
        _is_list(box) and (_is_number(v := _plain(box.value_type)) or pa.types.is_null(v))
    )


_KINDS: dict[str, tuple[Callable[[pa.DataType], bool], str]] = {
    "VARCHAR": (_is_text, "a string"),
    "BIGINT": (_is_number, "a number"),
    "FLOAT": (_is_number, "a number"),
    "DOUBLE[][]": (_is_boxes, "a list of boxes, each a list of numbers (DOUBLE[][])"),
}


def _plain(t: pa.DataType) -> pa.DataType:
    """The value type of a dictionary-encoded type (pandas categoricals), else the type itself."""
    return t.value_type if pa.types.is_dictionary(t) else t


class SourceFileError(ValueError):
    """A source file cannot be ingested at all (not parquet, missing or mistyped columns)."""


@dataclass(frozen=True)
class SourceLayout:
    """How one file's columns map onto the canonical columns."""

    style: str  # "datacomp" or "laion"
    mapping: dict[str, str]  # canonical column -> source column
    uid_derived: bool
    arrow_schema: pa.Schema
    num_rows: int  # from the parquet footer: the count every row must be accounted against

    @property
    def extra_columns(self) -> list[str]:
        used = set(self.mapping.values())
        return [n for n in self.arrow_schema.names if n not in used]

    def position(self, canon: str) -> int:
        """The index of ``canon``'s source column among the file's top-level columns."""
        return self.arrow_schema.get_field_index(self.mapping[canon])


def read_layout(path: str, filesystem=None) -> SourceLayout:
    """Detect the schema style of one source parquet; raise SourceFileError naming what is wrong."""
    try:
        metadata = pq.read_metadata(path, filesystem=filesystem)
        schema = metadata.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as err:
        raise SourceFileError(f"{path}: not a readable parquet file ({err})") from err
    names = set(schema.names)
    if "url" in names:
        style, mapping = "datacomp", {c: c for c in CANONICAL if c in names}
        required = ["url", "text"]
    elif "URL" in names:
        style = "laion"
        mapping = {canon: src for src, canon in LAION_TO_CANONICAL.items() if src in names}
        required = ["URL", "TEXT"]
    else:
        raise SourceFileError(
            f"{path}: missing required column 'url' (DataComp schema) or 'URL' (LAION style); "
            f"found columns {schema.names}"
        )
    missing = [c for c in required if c not in names]
    if missing:
        raise SourceFileError(f"{path}: {style} schema but missing required columns {missing}")
    _check_unique(path, schema, mapping)
    _check_types(path, schema, mapping)
    return SourceLayout(style, mapping, "uid" not in mapping, schema, metadata.num_rows)


def _check_unique(path: str, schema: pa.Schema, mapping: dict[str, str]) -> None:
    """A column poolsieve reads must appear once: with two, which one is meant is a guess."""
    counts = Counter(schema.names)
    for src in mapping.values():
        if counts[src] > 1:
            raise SourceFileError(
                f"{path}: column {src!r} appears {counts[src]} times; keep one of them"
            )


def _check_types(path: str, schema: pa.Schema, mapping: dict[str, str]) -> None:
    for canon, src in mapping.items():
        arrow_type = schema.field(src).type
        accepts, expected = _KINDS[CANONICAL[canon]]
        if not (pa.types.is_null(arrow_type) or accepts(_plain(arrow_type))):
            raise SourceFileError(
                f"{path}: column {src!r} has type {arrow_type}, expected {expected}"
            )


def source_relation(
    conn: duckdb.DuckDBPyConnection, path: str, layout: SourceLayout
) -> duckdb.DuckDBPyRelation:
    """The file's columns renamed by position (``c0``, ``c1``, ...) plus ``row_idx``.

    Renaming by position makes every column reachable whatever the file calls it: DuckDB matches
    names case-insensitively (``url`` and ``URL`` in one file), dedups repeated names, and a
    column named ``file_row_number`` would hide the reader's row number. ``row_idx`` is that
    virtual row number (the row's position in the file, from 0).
    """
    # can_have_nan: DuckDB otherwise trusts parquet min/max statistics (which leave NaN out) and
    # folds `isnan(score)` to false, letting NaN scores past validation (duckdb#25521).
    # hive_partitioning off: a `key=value/` folder in the path must not add a column.
    aliases = ", ".join(f"c{i}" for i in range(len(layout.arrow_schema)))
    return conn.sql(
        "SELECT file_row_number AS row_idx, * FROM read_parquet("
        f"$path, can_have_nan = true, hive_partitioning = false) AS src({aliases})",
        params={"path": literal_path(path)},
    )


def canonical_relation(
    conn: duckdb.DuckDBPyConnection, path: str, layout: SourceLayout
) -> duckdb.DuckDBPyRelation:
    """The file as canonical columns plus ``row_idx`` (its row number in the file, from 0) and,
    per numeric column, ``raw_<column>``: the source value as DOUBLE, for staging to validate
    (the canonical column is NULL where the value does not fit its type)."""
    exprs = [duckdb.ColumnExpression("row_idx").cast(duckdb.sqltype("BIGINT")).alias("row_idx")]
    raws = []
    for canon, sql_type in CANONICAL.items():
        src = _source_column(layout, canon)
        if canon in RAW_NUMERIC:
            exprs.append(src.try_cast(duckdb.sqltype(sql_type)).alias(canon))
            raws.append(src.try_cast(duckdb.sqltype("DOUBLE")).alias(f"raw_{canon}"))
        else:
            exprs.append(src.cast(duckdb.sqltype(sql_type)).alias(canon))
    return source_relation(conn, path, layout).select(*exprs, *raws)


def _source_column(layout: SourceLayout, canon: str) -> duckdb.Expression:
    if canon not in layout.mapping:
        return duckdb.ConstantExpression(None)
    return duckdb.ColumnExpression(f"c{layout.position(canon)}")
