"""Ingest of one shard: schema detection, validation reasons, conservation, clear file errors."""

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poolsieve.pool.ingest import QUARANTINE_REASONS, ingest_shard
from poolsieve.schema import SourceFileError
from poolsieve.sqlrunner import SqlProject
from tests.conftest import LAION_SAMPLE, row, uid, write_datacomp

BAD_ROWS = [  # (row, expected reason)
    (row(1, url=None), "url_missing"),
    (row(2, url="   "), "url_missing"),
    (row(3, url="ftp://files.example.com/a.jpg"), "url_scheme"),
    (row(4, url="javascript:alert(1)"), "url_scheme"),
    (row(5, url="http://exa mple.com/a.jpg"), "url_unparseable"),
    (row(6, url="http:///a.jpg"), "url_unparseable"),
    (row(7, url="http://a.com/" + "x" * 2100), "url_unparseable"),
    (row(8, original_width=-5), "size_invalid"),
    (row(9, original_height=0), "size_invalid"),
    (row(10, original_width=10**7), "size_invalid"),
    (row(11, clip_b32_similarity_score=float("nan")), "score_invalid"),
    (row(12, clip_l14_similarity_score=1.5), "score_invalid"),
    (row(13, uid="ABCDEF" * 5 + "AB"), "uid_malformed"),
    (row(14, uid="1234"), "uid_malformed"),
    (row(15, uid=None), "uid_malformed"),
    (row(16, uid=uid(100)), "uid_repeated"),  # repeats the valid row 100 below (earlier in file)
    (row(17, url="\t\n"), "url_missing"),  # only whitespace: tabs, newlines
    (row(18, url=" \r\n\x0b\x0c "), "url_missing"),
]


def _shard(tmp_path):
    rows = [row(100)] + [r for r, _ in BAD_ROWS] + [row(i) for i in range(200, 210)]
    rows.append(row(300, original_width=None, original_height=None, text=None))  # NULLs are fine
    return write_datacomp(tmp_path / "src" / "s0.parquet", rows)


def test_every_reason_exactly(tmp_path, conn, lake):
    result = ingest_shard(conn, lake, "s0.parquet", 0, str(_shard(tmp_path)))
    assert (result.rows_read, result.rows_normalized, result.rows_quarantined) == (30, 12, 18)
    assert result.conserved
    expected = {}
    for _, reason in BAD_ROWS:
        expected[reason] = expected.get(reason, 0) + 1
    assert result.quarantine_reasons == expected
    got = duckdb.sql(f"SELECT row_idx, reason FROM '{result.files['quarantine']}' ORDER BY row_idx")
    assert got.fetchall() == [(i + 1, reason) for i, (_, reason) in enumerate(BAD_ROWS)]
    detail = duckdb.sql(
        f"SELECT reason_detail FROM '{result.files['quarantine']}' WHERE reason = 'uid_repeated'"
    ).fetchall()
    assert detail == [("first at row 0",)]


def test_quarantine_keeps_whole_rows(tmp_path, conn, lake):
    result = ingest_shard(conn, lake, "s0.parquet", 0, str(_shard(tmp_path)))
    got = duckdb.sql(f"SELECT url, text FROM '{result.files['quarantine']}' WHERE row_idx = 3")
    assert got.fetchall() == [("ftp://files.example.com/a.jpg", "a photo of thing 3")]


def test_normalized_rows_have_lineage_columns(tmp_path, conn, lake):
    src = write_datacomp(tmp_path / "s.parquet", [row(1, url="HTTP://A.com/x/?utm_source=q")])
    result = ingest_shard(conn, lake, "s.parquet", 0, str(src))
    got = duckdb.sql(f"SELECT uid, url, url_norm, shard, row_idx FROM '{result.files['rows']}'")
    assert got.fetchall() == [
        (uid(1), "HTTP://A.com/x/?utm_source=q", "http://a.com/x", "s.parquet", 0)
    ]
    assert result.rows_registered == 1


def test_laion_style_maps_columns_and_derives_stable_uids(tmp_path, conn, lake):
    result = ingest_shard(conn, lake, "laion", 0, str(LAION_SAMPLE))
    assert result.layout.style == "laion" and result.layout.uid_derived
    assert (result.rows_read, result.rows_normalized, result.rows_quarantined) == (1000, 1000, 0)
    rows = duckdb.sql(
        f"SELECT uid, url, text FROM '{result.files['rows']}' ORDER BY row_idx"
    ).fetchall()
    first_uid, first_url, first_text = rows[0]
    expected = duckdb.sql(
        "SELECT md5($u || chr(31) || $t)", params={"u": first_url, "t": first_text}
    )
    assert first_uid == expected.fetchall()[0][0]
    again = ingest_shard(conn, lake, "laion", 0, str(LAION_SAMPLE))
    rows2 = duckdb.sql(f"SELECT uid FROM '{again.files['rows']}' ORDER BY row_idx").fetchall()
    assert [r[0] for r in rows] == [r[0] for r in rows2]


def test_laion_extra_columns_are_mapped(tmp_path, conn, lake):
    table = pa.table(
        {
            "URL": ["http://a.com/1.jpg"],
            "TEXT": ["x"],
            "WIDTH": [10.0],
            "HEIGHT": [20.0],
            "similarity": [0.31],
            "LICENSE": ["?"],
        }
    )
    pq.write_table(table, tmp_path / "l.parquet")
    result = ingest_shard(conn, lake, "l", 0, str(tmp_path / "l.parquet"))
    got = duckdb.sql(
        f"SELECT original_width, original_height, round(clip_b32_similarity_score::DOUBLE, 2) "
        f"FROM '{result.files['rows']}'"
    ).fetchall()
    assert got == [(10, 20, 0.31)]
    assert result.layout.extra_columns == ["LICENSE"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"link": ["http://a.com"]}), "missing required column 'url'"),
        (pa.table({"url": ["http://a.com"]}), "missing required columns ['text']"),
        (pa.table({"URL": ["http://a.com"]}), "missing required columns ['TEXT']"),
        (pa.table({"url": [1], "text": ["x"]}), "column 'url' has type int64"),
        (pa.table({"url": ["u"], "text": ["x"], "original_width": ["wide"]}), "'original_width'"),
    ],
)
def test_bad_schema_fails_naming_file_and_column(tmp_path, conn, lake, table, message):
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    with pytest.raises(SourceFileError) as err:
        ingest_shard(conn, lake, "bad", 0, str(path))
    assert str(path) in str(err.value) and message in str(err.value)
    assert not lake.partition_dir("pool_shard", "bad").exists()


def test_not_parquet_fails_naming_file(tmp_path, conn, lake):
    path = tmp_path / "fake.parquet"
    path.write_text("uid,url,text\n1,http://a.com,x\n")
    with pytest.raises(SourceFileError, match="fake.parquet: not a readable parquet file"):
        ingest_shard(conn, lake, "fake", 0, str(path))


def test_reasons_list_matches_the_sql_yaml():
    spec = SqlProject().model("pool_shard_quarantine").spec
    reason = next(c for c in spec["columns"] if c["name"] == "reason")
    accepted = next(t for t in reason["tests"] if isinstance(t, dict))["accepted_values"]["values"]
    assert accepted == QUARANTINE_REASONS


GLOB_NAMES = ["part-*.parquet", "a?c.parquet", "c[1].parquet", "d{1,2}.parquet", "f[!].parquet"]
#: files a name above would match if it were read as a pattern
LOOKALIKES = ["part-1.parquet", "part-2.parquet", "abc.parquet", "c1.parquet", "d1.parquet"]


@pytest.mark.parametrize("name", GLOB_NAMES)
def test_a_file_name_with_glob_characters_is_read_as_that_one_file(source_dir, conn, lake, name):
    for i, other in enumerate(LOOKALIKES):
        write_datacomp(source_dir / other, [row(1000 + i)])
    path = write_datacomp(source_dir / name, [row(1), row(2)])
    result = ingest_shard(conn, lake, name, 0, str(path))
    assert (result.rows_read, result.rows_normalized) == (2, 2)
    rows = duckdb.sql("SELECT uid FROM read_parquet($p)", params={"p": [result.files["rows"]]})
    assert sorted(u for (u,) in rows.fetchall()) == [uid(1), uid(2)]
