"""Hostile source files, one rule each: a bad value quarantines its row with a reason; a bad
column type or an unreadable file fails the file with a message naming the file and the column;
encodings and types that only look odd (dictionary, null type, uint64, decimal) are accepted."""

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poolsieve.pool.ingest import ingest_shard
from poolsieve.schema import SourceFileError
from tests.conftest import row, uid, write_datacomp

N = 4  # rows per hostile file; row 1 is the bad one unless a test says otherwise


def _base(n: int = N) -> dict:
    return {
        "uid": [uid(i) for i in range(n)],
        "url": [f"http://img.example.com/{i}.jpg" for i in range(n)],
        "text": [f"caption {i}" for i in range(n)],
    }


def _write(tmp_path, table: pa.Table, name: str = "h.parquet"):
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _quarantine(result) -> list[tuple]:
    path = result.files["quarantine"]
    query = "SELECT row_idx, reason, reason_detail FROM read_parquet($p) ORDER BY row_idx"
    return duckdb.sql(query, params={"p": [path]}).fetchall()


def _rows(result, columns: str) -> list[tuple]:
    query = f"SELECT {columns} FROM read_parquet($p) ORDER BY row_idx"
    return duckdb.sql(query, params={"p": [result.files["rows"]]}).fetchall()


# (column, arrow array with row 1 bad, reason, detail): values no canonical type can hold, or
# that the cast would have rounded into range - the row is quarantined, the file is not failed
BAD_NUMBERS = [
    ("original_width", pa.array([640.0, float("nan"), 3.0, 4.0]), "size_invalid", "size nanx?"),
    ("original_width", pa.array([640.0, 1e19, 3.0, 4.0]), "size_invalid", "size 1e+19x?"),
    (
        "original_height",
        pa.array([480, 2**63 + 5, 3, 4], pa.uint64()),
        "size_invalid",
        "size ?x9.223372036854776e+18",
    ),
    (
        "original_width",
        pa.array([640, 2**64 - 1, 3, 4], pa.uint64()),
        "size_invalid",
        "size 1.8446744073709552e+19x?",
    ),
    ("original_width", pa.array([640.0, 640.5, 3.0, 4.0]), "size_invalid", "size 640.5x?"),
    (
        "original_width",
        pa.array([640, float("nan"), 3, 4], pa.float32()),
        "size_invalid",
        "size nanx?",
    ),
    (
        "clip_b32_similarity_score",
        pa.array([0.3, 1e300, 0.1, 0.2]),
        "score_invalid",
        "clip_b32_similarity_score 1e+300",
    ),
    (
        "clip_l14_similarity_score",
        pa.array([0.3, float("-inf"), 0.1, 0.2]),
        "score_invalid",
        "clip_l14_similarity_score -inf",
    ),
    (  # 1 + 1e-9 is 1.0 as a FLOAT: judged on the source's double, not the cast
        "clip_b32_similarity_score",
        pa.array([0.3, 1 + 1e-9, 0.1, 0.2]),
        "score_invalid",
        "clip_b32_similarity_score 1.000000001",
    ),
]


@pytest.mark.parametrize(("column", "values", "reason", "detail"), BAD_NUMBERS)
def test_a_number_out_of_range_quarantines_its_row(
    tmp_path, conn, lake, column, values, reason, detail
):
    path = _write(tmp_path, pa.table({**_base(), column: values}))
    result = ingest_shard(conn, lake, "h.parquet", 0, str(path))
    assert (result.rows_read, result.rows_normalized, result.rows_quarantined) == (N, N - 1, 1)
    assert _quarantine(result) == [(1, reason, detail)]
    kept = _rows(result, f"row_idx, {column}::DOUBLE")
    assert kept == [(i, pytest.approx(values[i].as_py(), rel=1e-6)) for i in (0, 2, 3)]


def test_a_wide_uint64_or_decimal_column_is_read_when_its_values_fit(tmp_path, conn, lake):
    table = pa.table(
        {
            **_base(),
            "original_width": pa.array([640, 1, 2, 3], pa.uint64()),
            "original_height": pa.array([480, 1, 2, 3], pa.decimal128(10, 2)),
            "clip_b32_similarity_score": pa.array(np.array([0.5, 0, 1, -1], dtype=np.float16)),
        }
    )
    result = ingest_shard(conn, lake, "h", 0, str(_write(tmp_path, table)))
    assert result.rows_normalized == N
    got = _rows(result, "original_width, original_height, clip_b32_similarity_score")
    assert got == [(640, 480, 0.5), (1, 1, 0.0), (2, 2, 1.0), (3, 3, -1.0)]


def _dictionary(values: list) -> pa.Array:
    return pa.array(values).dictionary_encode()


def test_dictionary_encoded_columns_are_read_like_plain_ones(tmp_path, conn, lake):
    """pandas categoricals: dictionary-encoded url, text and uid give the same rows."""
    base = _base()
    plain = ingest_shard(conn, lake, "plain", 0, str(_write(tmp_path, pa.table(base), "p.parquet")))
    encoded = pa.table({k: _dictionary(v) for k, v in base.items()})
    assert pa.types.is_dictionary(encoded.schema.field("url").type)
    result = ingest_shard(conn, lake, "dict", 1, str(_write(tmp_path, encoded, "d.parquet")))
    columns = "uid, url, text, url_norm, row_idx"
    assert _rows(result, columns) == _rows(plain, columns) and result.rows_normalized == N


def test_a_pandas_frame_with_categorical_columns_is_ingested(tmp_path, conn, lake):
    import pandas as pd

    frame = pd.DataFrame(_base()).astype({"url": "category", "text": "category"})
    path = tmp_path / "src" / "cat.parquet"
    path.parent.mkdir(parents=True)
    frame.to_parquet(path)
    result = ingest_shard(conn, lake, "cat", 0, str(path))
    assert result.rows_normalized == N
    assert _rows(result, "url") == [(u,) for u in _base()["url"]]


def test_null_typed_columns_are_columns_of_nulls(tmp_path, conn, lake):
    """Arrow's null type (an all-NULL column written by pandas/pyarrow) is accepted for every
    column: optional ones stay NULL, a NULL url or uid quarantines its row as usual."""
    nulls = {c: pa.nulls(N) for c in ("original_width", "clip_b32_similarity_score")}
    nulls |= {"face_bboxes": pa.nulls(N), "sha256": pa.nulls(N)}
    result = ingest_shard(conn, lake, "n", 0, str(_write(tmp_path, pa.table({**_base(), **nulls}))))
    assert result.rows_normalized == N
    got = _rows(result, "original_width, clip_b32_similarity_score, face_bboxes, sha256")
    assert got == [(None, None, None, None)] * N
    no_url = pa.table({**_base(), "url": pa.nulls(N)})
    result = ingest_shard(conn, lake, "u", 1, str(_write(tmp_path, no_url, "u.parquet")))
    assert result.quarantine_reasons == {"url_missing": N}


def test_a_column_named_file_row_number_is_an_ordinary_extra_column(tmp_path, conn, lake):
    table = pa.table({**_base(), "file_row_number": [70, 71, 72, 73]})
    result = ingest_shard(conn, lake, "f", 0, str(_write(tmp_path, table)))
    assert _rows(result, "row_idx, uid") == [(i, uid(i)) for i in range(N)]
    assert result.layout.extra_columns == ["file_row_number"]


def test_lower_case_url_wins_over_upper_case_url_and_each_column_is_read_as_itself(
    tmp_path, conn, lake
):
    """DuckDB matches names case-insensitively: the file's own `url` is read, not `URL`."""
    table = pa.table({"URL": ["http://laion.example.com/x"] * N, **_base(), "TEXT": ["LAION"] * N})
    result = ingest_shard(conn, lake, "b", 0, str(_write(tmp_path, table)))
    assert result.layout.style == "datacomp"
    assert _rows(result, "url, text") == list(zip(_base()["url"], _base()["text"], strict=True))
    assert result.layout.extra_columns == ["URL", "TEXT"]


def test_laion_columns_are_read_by_their_exact_name(tmp_path, conn, lake):
    """`text` before `TEXT` in a LAION-style file: TEXT is the caption, not its look-alike."""
    table = pa.table({"text": ["not me"] * N, "URL": _base()["url"], "TEXT": _base()["text"]})
    result = ingest_shard(conn, lake, "l", 0, str(_write(tmp_path, table)))
    assert result.layout.style == "laion"
    assert _rows(result, "text") == [(t,) for t in _base()["text"]]


def test_a_key_value_folder_does_not_overwrite_a_column(tmp_path, conn, lake):
    """A source folder named like a hive partition (`text=spam/`) is just a folder."""
    path = _write(tmp_path, pa.table(_base()), "text=spam/a.parquet")
    result = ingest_shard(conn, lake, "text=spam/a.parquet", 0, str(path))
    assert _rows(result, "text") == [(t,) for t in _base()["text"]]


def test_control_characters_in_a_url_quarantine_the_row(tmp_path, conn, lake):
    urls = ["http://a.example.com/1", "http://a.example.com/\x00x", "http://a.example.com/\x7f"]
    rows = [row(i, url=u) for i, u in enumerate(urls)]
    result = ingest_shard(conn, lake, "c", 0, str(write_datacomp(tmp_path / "c.parquet", rows)))
    assert _quarantine(result) == [
        (1, "url_unparseable", "control character"),
        (2, "url_unparseable", "control character"),
    ]


def _columns_table(columns: dict[str, pa.Array]) -> pa.Table:
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


TWO_URLS = pa.Table.from_arrays(
    [pa.array(_base()["url"]), pa.array(_base()["url"]), pa.array(_base()["text"])],
    names=["url", "url", "text"],
)
# (table, column named, words the message holds): the column's type or presence is wrong for
# every row, so the file fails - with a message naming the file and the column
BAD_FILES = [
    (TWO_URLS, "url", "appears 2 times"),
    (
        pa.table({**_base(), "face_bboxes": pa.array([[0.1, 0.2]] * N)}),
        "face_bboxes",
        "type list<element: double>",
    ),
    (
        pa.table({**_base(), "face_bboxes": pa.array([["0.1"]] * N)}),
        "face_bboxes",
        "type list<element: string>",
    ),
    (
        pa.table({**_base(), "face_bboxes": pa.array([[["0.1"]]] * N)}),
        "face_bboxes",
        "expected a list of boxes",
    ),
    (pa.table({**_base(), "face_bboxes": ["[[0.1]]"] * N}), "face_bboxes", "type string"),
    (pa.table({**_base(), "original_width": [True] * N}), "original_width", "type bool"),
    (pa.table({**_base(), "uid": pa.array([1, 2, 3, 4])}), "uid", "type int64"),
    (
        pa.table({**_base(), "url": pa.array([b"http://a.com"] * N, pa.binary())}),
        "url",
        "type binary",
    ),
    (
        pa.table({**_base(), "text": pa.array([{"a": 1}] * N)}),
        "text",
        "type struct",
    ),
]


@pytest.mark.parametrize(("table", "column", "words"), BAD_FILES)
def test_a_file_level_problem_fails_the_file_naming_file_and_column(
    tmp_path, conn, lake, table, column, words
):
    path = _write(tmp_path, table)
    with pytest.raises(SourceFileError) as err:
        ingest_shard(conn, lake, "h", 0, str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: column {column!r}") and words in message, message
    assert not lake.partition_dir("pool_shard", "h").exists()


def _not_utf8(data: bytes, at: int) -> bytes:
    return data.replace(MARKER, b"\xff\xfe\xfd\xfc\xfb\xfa")


def _page_garbled(data: bytes, at: int) -> bytes:
    """The 40 bytes before the value (the page header) XOR-ed: the page cannot be decoded."""
    return data[: at - 40] + bytes(b ^ 0x5A for b in data[at - 40 : at]) + data[at:]


MARKER = b"BROKEN"


def _patched(tmp_path, patch, compression: str = "NONE"):
    """A parquet file with a caption holding MARKER, its bytes then changed by ``patch``."""
    text = ["caption", MARKER.decode() * 8, "caption"]
    table = pa.table({"url": [f"http://a.com/{i}" for i in range(3)], "text": text})
    path = tmp_path / "src" / "broken.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table, path, use_dictionary=False, write_statistics=False, compression=compression
    )
    data = path.read_bytes()
    assert MARKER in data
    path.write_bytes(patch(data, data.index(MARKER)))
    return path


@pytest.mark.parametrize(
    ("patch", "compression", "words"),
    [(_not_utf8, "NONE", "not valid UTF8"), (_page_garbled, "SNAPPY", "")],
)
def test_an_unreadable_column_fails_naming_file_and_column(
    tmp_path, conn, lake, patch, compression, words
):
    path = _patched(tmp_path, patch, compression)
    assert pq.read_metadata(path).num_rows == 3  # the footer is intact: only data is broken
    with pytest.raises(SourceFileError) as err:
        ingest_shard(conn, lake, "broken", 0, str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: column 'text' cannot be read") and words in message


def test_a_failed_file_leaves_the_shards_previous_files_and_no_temporaries(tmp_path, conn, lake):
    good = write_datacomp(tmp_path / "src" / "broken.parquet", [row(1), row(2)])
    first = ingest_shard(conn, lake, "s", 0, str(good))
    before = {name: Path(path).read_bytes() for name, path in first.files.items()}
    path = _patched(tmp_path, _not_utf8)
    with pytest.raises(SourceFileError, match="column 'text'"):
        ingest_shard(conn, lake, "s", 0, str(path))
    folder = lake.partition_dir("pool_shard", "s")
    assert sorted(p.name for p in folder.iterdir()) == ["quarantine.parquet", "rows.parquet"]
    assert {name: Path(p).read_bytes() for name, p in first.files.items()} == before
