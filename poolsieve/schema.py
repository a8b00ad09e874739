"""Pool schemas: DataComp's metadata columns, LAION-style inputs, and how one maps to the other.

A source parquet is *DataComp-style* when it has a lower-case ``url`` column and *LAION-style* when
it has upper-case ``URL``/``TEXT``. Both are projected onto :data:`CANONICAL` (missing optional
columns become typed NULLs). When a file has no ``uid`` column, staging derives one from content:

    uid = md5(raw url || U+001F || coalesce(caption, ''))   -- 32 lower-case hex chars, 128 bits

so the same (url, caption) pair gets the same uid in every file and every run, and the uid has
DataComp's format (subset files, ``.npy`` uid pairs, all work unchanged).
"""

from __future__ import annotations

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

#: LAION column -> canonical column (LAION's ``similarity`` is a CLIP ViT-B/32 cosine).
LAION_TO_CANONICAL = {
    "URL": "url",
    "TEXT": "text",
    "WIDTH": "original_width",
    "HEIGHT": "original_height",
    "similarity": "clip_b32_similarity_score",
}

_KINDS = {
    "VARCHAR": (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view),
    "BIGINT": (pa.types.is_integer, pa.types.is_floating),
    "FLOAT": (pa.types.is_floating, pa.types.is_integer),
    "DOUBLE[][]": (pa.types.is_list, pa.types.is_large_list),
}


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


def read_layout(path: str, filesystem=None) -> SourceLayout:
    """Detect the schema style of one source parquet; raise SourceFileError naming what is wrong."""
    try:
        metadata = pq.read_metadata(path, filesystem=filesystem)
        schema = metadata.schema.to_arrow_schema()
    except (pa.ArrowInvalid, OSError) as err:
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
    _check_types(path, schema, mapping)
    return SourceLayout(style, mapping, "uid" not in mapping, schema, metadata.num_rows)


def _check_types(path: str, schema: pa.Schema, mapping: dict[str, str]) -> None:
    for canon, src in mapping.items():
        arrow_type = schema.field(src).type
        if not any(check(arrow_type) for check in _KINDS[CANONICAL[canon]]):
            raise SourceFileError(
                f"{path}: column {src!r} has type {arrow_type}, expected {CANONICAL[canon]}"
            )


def canonical_relation(
    conn: duckdb.DuckDBPyConnection, path: str, layout: SourceLayout
) -> duckdb.DuckDBPyRelation:
    """The file as canonical columns plus ``row_idx`` (its row number in the file, from 0)."""
    # can_have_nan: DuckDB otherwise trusts parquet min/max statistics (which leave NaN out) and
    # folds `isnan(score)` to false, letting NaN scores past validation (duckdb#25521).
    rel = conn.sql(
        "SELECT * FROM read_parquet($path, file_row_number = true, can_have_nan = true)",
        params={"path": literal_path(path)},
    )
    exprs = [
        duckdb.ColumnExpression("file_row_number").cast(duckdb.sqltype("BIGINT")).alias("row_idx")
    ]
    for canon, sql_type in CANONICAL.items():
        src = layout.mapping.get(canon)
        expr = duckdb.ColumnExpression(src) if src else duckdb.ConstantExpression(None)
        exprs.append(expr.cast(duckdb.sqltype(sql_type)).alias(canon))
    return rel.select(*exprs)
