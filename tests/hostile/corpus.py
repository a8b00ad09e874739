"""The hostile corpus: good source files and many kinds of bad ones, with what each must become.

``write_corpus(folder)`` writes every file into one source folder; ``write_corpus(folder,
good_only=True)`` writes only the good ones, byte for byte the same. Names sort so that the
good files keep their relative order with or without the others (pool order is the names' sort
order); a bad file never shares a URL or uid with a good file after it, so the good files'
decisions cannot depend on the bad ones.

Each file states, row by row, what must happen to it (``expect``: ``keep``, a quarantine reason,
or a dedup reason), or that the whole file fails (``fails``, with the column the message must
name). ``kinds`` names the hostile kinds a file holds and the rows of each (row kinds share a
file by theme: a file is one Dagster run, and the corpus has to run in about a minute).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import DATACOMP_TYPES, LAION_SAMPLE

KEEP = "keep"


@dataclass
class SourceFile:
    """One file of the corpus and what ingest + dedup must make of it."""

    key: str  # path under the source folder = shard name
    write: Callable[[Path], None]
    expect: list[str] = field(default_factory=list)  # per row, in file order
    kinds: dict[str, list[int]] = field(default_factory=dict)  # kind -> its rows (row_idx)
    fails: str | None = None  # the file fails: the column its message names ("" = none)
    good: bool = False

    @property
    def read(self) -> int:
        return len(self.expect)


def _uid(tag: str, i: int) -> str:
    return hashlib.md5(f"{tag}:{i}".encode()).hexdigest()


def _row(tag: str, i: int, **values) -> dict:
    """A valid DataComp row of file ``tag``: its own uid and URL host."""
    host = "".join(c if c.isalnum() else "-" for c in tag.lower()).strip("-")
    base = {
        "uid": _uid(tag, i),
        "url": f"http://{host}.hostile.test/{i}.jpg",
        "text": f"{tag} row {i}",
        "original_width": 640,
        "original_height": 480,
        "clip_b32_similarity_score": 0.31,
        "clip_l14_similarity_score": 0.27,
        "face_bboxes": [],
        "sha256": "0" * 64,
    }
    return {**base, **values}


def _table(rows: list[dict], types: dict | None = None, drop: tuple = ()) -> pa.Table:
    types = {**DATACOMP_TYPES, **(types or {})}
    names = [n for n in DATACOMP_TYPES if n not in drop]
    return pa.table({n: pa.array([r.get(n) for r in rows], type=types[n]) for n in names})


def _parquet(table: pa.Table, **options) -> Callable[[Path], None]:
    return lambda path: pq.write_table(table, path, **options)


class Builder:
    """Collects the corpus's files; a file's rows are given as (row values, expected outcome)."""

    def __init__(self):
        self.files: list[SourceFile] = []

    def rows_file(self, key, rows, types=None, drop=(), kinds=None, good=False, **options):
        table = _table([r for r, _ in rows], types, drop)
        expect = [e for _, e in rows]
        self.add(SourceFile(key, _parquet(table, **options), expect, kinds or {}, good=good))

    def table_file(self, key, table, expect, kind, **options):
        self.add(
            SourceFile(key, _parquet(table, **options), expect, {kind: list(range(len(expect)))})
        )

    def failing(self, key, write, kind, column=""):
        self.add(SourceFile(key, write, kinds={kind: []}, fails=column))

    def add(self, source: SourceFile):
        self.files.append(source)


def _clean(tag: str, n: int, start: int = 0, **values) -> list[tuple[dict, str]]:
    return [(_row(tag, i, **values), KEEP) for i in range(start, start + n)]


def _themed(b: Builder, key: str, cases: list[tuple[str, dict, str]], types=None):
    """One file of row kinds: two clean rows, then per case (kind, values, outcome) one row."""
    tag = key.split("-", 1)[1].removesuffix(".parquet")
    rows, kinds = _clean(tag, 2), {}
    for kind, values, outcome in cases:
        kinds.setdefault(kind, []).append(len(rows))
        rows.append((_row(tag, len(rows), text=f"{tag}: {kind}", **values), outcome))
    rows += _clean(tag, 2, start=len(rows))
    b.rows_file(key, rows, types, kinds=kinds)


GOOD_A = "00-good-a.parquet"


def _good(b: Builder):
    """Four good files (one LAION-style, real rows); good-b repeats good-a's URL and uid."""
    a = _clean("good-a", 12)
    a.append((_row("good-a", 12, url="ftp://good-a.hostile.test/x.jpg"), "url_scheme"))
    a.append((_row("good-a", 13, url=a[3][0]["url"]), "duplicate_url"))
    b.rows_file(GOOD_A, a, good=True)
    bb = _clean("good-b", 10)
    bb.append(
        (
            _row("good-b", 10, url=a[0][0]["url"].upper().replace("/0.JPG", "/0.jpg")),
            "duplicate_url",
        )
    )
    bb.append((_row("good-b", 11, uid=a[1][0]["uid"]), "duplicate_uid"))
    b.rows_file("40-good-b.parquet", bb, good=True)
    laion = pq.read_table(LAION_SAMPLE)
    b.add(SourceFile("70-good-laion.parquet", _parquet(laion), [KEEP] * laion.num_rows, good=True))
    b.rows_file("99-good-z.parquet", _clean("good-z", 8), good=True)


def _url_rows(b: Builder):
    """Bad URLs, one row each (and a few that only look bad: ingest keeps them)."""
    dup = _row("good-a", 5)
    _themed(
        b,
        "10-urls.parquet",
        [
            ("url_null", {"url": None}, "url_missing"),
            ("url_empty", {"url": ""}, "url_missing"),
            ("url_spaces", {"url": "   "}, "url_missing"),
            ("url_tabs_newlines", {"url": "\t\n\r\n"}, "url_missing"),
            ("url_ftp", {"url": "ftp://files.hostile.test/a.jpg"}, "url_scheme"),
            ("url_javascript", {"url": "javascript:alert(1)"}, "url_scheme"),
            ("url_data", {"url": "data:image/png;base64,iVBORw0KGgo="}, "url_scheme"),
            ("url_file", {"url": "file:///etc/passwd"}, "url_scheme"),
            ("url_gopher", {"url": "gopher://hostile.test/1"}, "url_scheme"),
            ("url_no_scheme", {"url": "www.hostile.test/a.jpg"}, "url_scheme"),
            ("url_protocol_relative", {"url": "//cdn.hostile.test/a.jpg"}, "url_scheme"),
            ("url_space_in_host", {"url": "http://exa mple.test/a.jpg"}, "url_unparseable"),
            ("url_empty_host", {"url": "http:///a.jpg"}, "url_unparseable"),
            ("url_line_break", {"url": "http://hostile.test/a\nb.jpg"}, "url_unparseable"),
            ("url_nul_byte", {"url": "http://hostile.test/a\x00.jpg"}, "url_unparseable"),
            ("url_del_char", {"url": "http://hostile.test/a\x7f.jpg"}, "url_unparseable"),
            ("url_escape_char", {"url": "http://hostile.test/\x1b[31m.jpg"}, "url_unparseable"),
            ("url_too_long", {"url": "http://hostile.test/" + "x" * 2100}, "url_unparseable"),
            ("url_one_megabyte", {"url": "http://hostile.test/" + "y" * 2**20}, "url_unparseable"),
            ("url_unicode_host", {"url": "http://bücher.hostile.test/a.jpg"}, "url_unparseable"),
            ("url_bad_host_char", {"url": "http://host!.hostile.test/a.jpg"}, "url_unparseable"),
            ("url_private_address", {"url": "http://169.254.169.254/latest/meta-data"}, KEEP),
            ("url_loopback", {"url": "http://127.0.0.1:8808/a.jpg"}, KEEP),
            ("url_exact_dup_of_earlier_file", {"url": dup["url"]}, "duplicate_url"),
            (
                "url_normalized_dup_of_earlier_file",
                {"url": "HTTP://Good-A.hostile.test:80" + dup["url"][26:] + "/?utm_source=x#f"},
                "duplicate_url",
            ),
            ("uid_dup_of_earlier_file", {"uid": _row("good-a", 6)["uid"]}, "duplicate_uid"),
        ],
    )
    rows = _clean("urls-dup", 3)
    rows += [(_row("urls-dup", 3, url=rows[0][0]["url"]), "duplicate_url")]
    rows += [(_row("urls-dup", 4, url=rows[1][0]["url"] + "#frag"), "duplicate_url")]
    b.rows_file("11-urls-dup.parquet", rows, kinds={"url_dup_within_file": [3, 4]})


def _value_rows(b: Builder):
    """Bad sizes, scores and uids, one row each; numbers no canonical type can hold included."""
    nan, inf = float("nan"), float("inf")
    _themed(
        b,
        "12-sizes.parquet",
        [
            ("width_negative", {"original_width": -5.0}, "size_invalid"),
            ("height_zero", {"original_height": 0.0}, "size_invalid"),
            ("width_huge", {"original_width": 1e7}, "size_invalid"),
            ("width_nan", {"original_width": nan}, "size_invalid"),
            ("width_1e19", {"original_width": 1e19}, "size_invalid"),
            ("height_infinite", {"original_height": inf}, "size_invalid"),
            ("width_fraction", {"original_width": 640.5}, "size_invalid"),
            ("width_null", {"original_width": None}, KEEP),
        ],
        types={"original_width": pa.float64(), "original_height": pa.float64()},
    )
    _themed(
        b,
        "13-sizes-uint64.parquet",
        [
            ("width_uint64_above_2_63", {"original_width": 2**63 + 5}, "size_invalid"),
            ("height_uint64_max", {"original_height": 2**64 - 1}, "size_invalid"),
            ("width_uint64_zero", {"original_width": 0}, "size_invalid"),
        ],
        types={"original_width": pa.uint64(), "original_height": pa.uint64()},
    )
    double = pa.float64()
    _themed(
        b,
        "14-scores.parquet",
        [
            ("score_nan", {"clip_b32_similarity_score": nan}, "score_invalid"),
            ("score_above_one", {"clip_l14_similarity_score": 1.5}, "score_invalid"),
            ("score_1e300", {"clip_b32_similarity_score": 1e300}, "score_invalid"),
            ("score_minus_infinity", {"clip_l14_similarity_score": -inf}, "score_invalid"),
            ("score_just_above_one", {"clip_b32_similarity_score": 1 + 1e-9}, "score_invalid"),
        ],
        types={"clip_b32_similarity_score": double, "clip_l14_similarity_score": double},
    )
    _themed(
        b,
        "15-uids.parquet",
        [
            ("uid_upper_case", {"uid": "ABCDEF" * 5 + "AB"}, "uid_malformed"),
            ("uid_too_short", {"uid": "1234"}, "uid_malformed"),
            ("uid_too_long", {"uid": "a" * 33}, "uid_malformed"),
            ("uid_non_hex", {"uid": "g" * 32}, "uid_malformed"),
            ("uid_null", {"uid": None}, "uid_malformed"),
            ("uid_uuid_dashes", {"uid": "12345678-1234-1234-1234-123456789abc"}, "uid_malformed"),
            ("uid_repeated_in_file", {"uid": _uid("uids", 0)}, "uid_repeated"),
        ],
    )


N = 4  # rows of a file whose whole layout is the hostile kind


def _plain(tag: str, n: int = N) -> pa.Table:
    return _table([_row(tag, i) for i in range(n)])


def _odd_types(b: Builder):
    """Encodings and types that only look odd: every row is read as written."""
    plain = _plain("dictionary")
    encoded = plain.set_column(1, "url", plain.column("url").dictionary_encode())
    encoded = encoded.set_column(2, "text", encoded.column("text").dictionary_encode())
    b.table_file("20-dictionary.parquet", encoded, [KEEP] * N, "dictionary_encoded_url_text")
    nulls = _plain("null-typed").drop_columns(["original_width", "face_bboxes", "sha256"])
    for name in ("original_width", "face_bboxes", "sha256"):
        nulls = nulls.append_column(name, pa.nulls(N))
    b.table_file("21-null-typed.parquet", nulls, [KEEP] * N, "null_typed_optional_columns")
    nested = _plain("nested").append_column("meta", pa.array([{"a": 1, "b": [1.0, None]}] * N))
    tags = pa.array([[("k", "v")]] * N, pa.map_(pa.string(), pa.string()))
    nested = nested.append_column("tags", tags)
    b.table_file("24-nested-extra.parquet", nested, [KEEP] * N, "struct_and_map_extra_columns")
    wide = {
        "original_width": pa.uint64(),
        "original_height": pa.decimal128(12, 2),
        "clip_b32_similarity_score": pa.float16(),
        "clip_l14_similarity_score": pa.int8(),
        "face_bboxes": pa.list_(pa.list_(pa.int32(), 4)),
    }
    values = {"clip_b32_similarity_score": np.float16(0.25), "clip_l14_similarity_score": 0}
    rows = [(_row("wide", i, face_bboxes=[[1, 2, 3, 4]], **values), KEEP) for i in range(N)]
    b.rows_file("25-wide-types.parquet", rows, wide, kinds={"uint64_decimal_float16_int8": [0]})
    boxes = {"face_bboxes": pa.large_list(pa.large_list(pa.float32()))}
    rows = [(_row("boxes", i, face_bboxes=[[0.1, 0.2, 0.3, 0.4]]), KEEP) for i in range(N)]
    b.rows_file("26-boxes-large.parquet", rows, boxes, kinds={"face_bboxes_large_float32": [0]})
    codecs = {"url": "gzip", "text": "brotli", "uid": "lz4", "sha256": "zstd"}
    options = {"compression": codecs, "version": "1.0", "data_page_version": "2.0"}
    b.table_file("33-codecs.parquet", _plain("codecs"), [KEEP] * N, "mixed_codecs", **options)
    frame = _plain("pandas").to_pandas().astype({"url": "category", "text": "category"})
    frame.index = [10, 11, 12, 13]  # written as a column of its own
    kinds = {"pandas_categoricals_and_index": [0]}
    b.add(SourceFile("34-pandas.parquet", frame.to_parquet, [KEEP] * N, kinds))


def _odd_layouts(b: Builder):
    """Column names, row groups and sizes that only look odd."""
    extra = _plain("file-row-number").append_column("file_row_number", pa.array([9, 8, 7, 6]))
    b.table_file("22-file-row-number.parquet", extra, [KEEP] * N, "column_named_file_row_number")
    both = _plain("both-cases")  # URL, TEXT first: DuckDB matches names case-insensitively
    both = both.add_column(0, "URL", pa.array(["http://upper.hostile.test/x.jpg"] * N))
    both = both.add_column(1, "TEXT", pa.array(["upper"] * N))
    b.table_file("23-both-cases.parquet", both, [KEEP] * N, "url_and_URL_both_present")
    texts = ["a\x00b", "caption " * 2**18, "c", "d"]  # a NUL in a caption; a 2 MB caption
    rows = [(_row("huge-text", i, text=t), KEEP) for i, t in enumerate(texts)]
    b.rows_file("27-huge-text.parquet", rows, kinds={"nul_and_two_megabyte_captions": [0, 1]})
    many = {"sixty_row_groups": [0, 59]}
    b.rows_file("28-row-groups.parquet", _clean("groups", 60), kinds=many, row_group_size=1)
    empty = {"empty_row_groups": [0, 1, 2]}
    b.add(SourceFile("29-empty-row-groups.parquet", _empty_row_groups, [KEEP] * 3, empty))
    b.table_file("30-zero-rows.parquet", _table([]), [], "zero_rows")
    rows = [(_row("all-bad", i, url=None), "url_missing") for i in range(3)]
    b.rows_file("31-all-bad.parquet", rows, kinds={"every_row_quarantined": [0, 1, 2]})
    laion = pa.table(
        {
            "URL": [f"http://laion-mixed.hostile.test/{i}.jpg" for i in range(N)],
            "TEXT": [f"laion {i}" for i in range(N)],
            "WIDTH": [640.0, float("nan"), 320.0, 1e19],
            "HEIGHT": [480.0, 480.0, 240.0, 480.0],
            "similarity": [0.3, 0.31, 1e300, 0.2],
            "LICENSE": ["?"] * N,
        }
    )
    expect = [KEEP, "size_invalid", "score_invalid", "size_invalid"]
    b.table_file("32-laion-mixed.parquet", laion, expect, "laion_float_sizes")


#: file names that only look odd (and the look-alikes a glob would also match)
ODD_NAMES = {
    "35-kv/text=spam/a.parquet": "key_value_folder",
    "36-ünïcode name.parquet": "unicode_and_space_in_name",
    "37-part-*.parquet": "glob_star_in_name",
    "37-part-1.parquet": "glob_star_lookalike",
    "38-c[1].parquet": "glob_brackets_in_name",
    "38-c1.parquet": "glob_brackets_lookalike",
}


def _odd_names(b: Builder):
    for i, (key, kind) in enumerate(ODD_NAMES.items()):
        b.table_file(key, _plain(f"name-{i}", 2 + i % 2), [KEEP] * (2 + i % 2), kind)


def _empty_row_groups(path: Path):
    table = _table([_row("empty-groups", i) for i in range(3)])
    with pq.ParquetWriter(path, table.schema) as writer:
        for part in (table.slice(0, 0), table, table.slice(0, 0)):
            writer.write_table(part)


MARKER = b"BROKEN"


def _not_utf8(data: bytes, at: int) -> bytes:
    return data.replace(MARKER, b"\xff\xfe\xfd\xfc\xfb\xfa")


def _garble(data: bytes, at: int) -> bytes:
    return data[: at - 40] + bytes(x ^ 0x5A for x in data[at - 40 : at]) + data[at:]


def _with_marker(tag: str) -> pa.Table:
    return _table([_row(tag, 0), _row(tag, 1, text=MARKER.decode() * 8), _row(tag, 2)])


def _patched(tag: str, patch, compression: str) -> Callable[[Path], None]:
    """A file whose caption holding MARKER is then broken by ``patch``."""

    def write(path: Path):
        pq.write_table(
            _with_marker(tag),
            path,
            use_dictionary=False,
            write_statistics=False,
            compression=compression,
        )
        data = path.read_bytes()
        path.write_bytes(patch(data, data.index(MARKER)))

    return write


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _truncated(path: Path):
    pq.write_table(_table([_row("truncated", i) for i in range(4)]), path)
    path.write_bytes(path.read_bytes()[:-100])


#: (key, writer, kind, column the message names): files that cannot be read or lack a column
UNREADABLE = [
    ("50-zero-bytes.parquet", _bytes(b""), "zero_bytes", ""),
    ("50-csv.parquet", _bytes(b"uid,url,text\n1,http://a.test,x\n"), "not_parquet_csv", ""),
    ("50-magic-only.parquet", _bytes(b"PAR1PAR1"), "parquet_magic_only", ""),
    ("50-truncated.parquet", _truncated, "truncated_footer", ""),
    ("51-garbled.parquet", _patched("garbled", _garble, "SNAPPY"), "corrupt_data_page", "text"),
    ("51-not-utf8.parquet", _patched("utf8", _not_utf8, "NONE"), "caption_not_utf8", "text"),
]
_T = _table([_row("bad", i) for i in range(3)])
MISSING = [  # (key, table, kind, column)
    ("52-no-url.parquet", _T.drop_columns(["url"]), "missing_url_column", "url"),
    ("52-no-text.parquet", _T.drop_columns(["text"]), "missing_text_column", "text"),
    (
        "52-case-only.parquet",
        pa.table({"Url": ["http://a.test"], "Text": ["x"]}),
        "Url_Text",
        "url",
    ),
    ("52-laion-no-text.parquet", pa.table({"URL": ["http://a.test"]}), "laion_no_TEXT", "TEXT"),
    ("52-no-columns.parquet", pa.table({}), "no_columns", "url"),
    (
        "53-two-url-columns.parquet",
        pa.Table.from_arrays([_T["url"], _T["url"], _T["text"]], names=["url", "url", "text"]),
        "url_column_twice",
        "url",
    ),
]
#: (kind, column, values): a column of a type no row of it can be read as
MISTYPED = [
    ("url_as_int", "url", pa.array([1, 2, 3])),
    ("url_as_binary", "url", pa.array([b"http://a.test/1"] * 3)),
    ("uid_as_int", "uid", pa.array([1, 2, 3])),
    ("width_as_string", "original_width", pa.array(["640", "x", "1"])),
    ("width_as_bool", "original_width", pa.array([True, False, True])),
    ("score_as_timestamp", "clip_b32_similarity_score", pa.array([1, 2, 3], pa.timestamp("s"))),
    ("boxes_as_list_double", "face_bboxes", pa.array([[0.1, 0.2]] * 3)),
    ("boxes_as_list_string", "face_bboxes", pa.array([["0.1"]] * 3)),
    ("boxes_as_json_string", "face_bboxes", pa.array(["[[0.1, 0.2, 0.3, 0.4]]"] * 3)),
    ("boxes_three_deep", "face_bboxes", pa.array([[[[0.1]]]] * 3)),
    ("text_as_struct", "text", pa.array([{"en": "x"}] * 3)),
]


def _failing(b: Builder):
    """Files that cannot be ingested: each fails its shard, naming the file and the column."""
    for key, write, kind, column in UNREADABLE:
        b.failing(key, write, kind, column)
    for key, table, kind, column in MISSING:
        b.failing(key, _parquet(table), kind, column)
    for i, (kind, column, values) in enumerate(MISTYPED):
        swapped = _T.set_column(_T.schema.get_field_index(column), column, values)
        b.failing(f"54-{i:02d}-{kind}.parquet", _parquet(swapped), kind, column)


#: files a source folder may hold that are not shards (Spark's markers, notes)
NOT_SHARDS = {"_SUCCESS": b"", ".part-0.parquet.crc": b"crc", "README.txt": b"notes"}


def corpus() -> list[SourceFile]:
    b = Builder()
    for part in (_good, _url_rows, _value_rows, _odd_types, _odd_layouts, _odd_names, _failing):
        part(b)
    return sorted(b.files, key=lambda f: f.key)


def write_corpus(folder: Path, good_only: bool = False) -> list[SourceFile]:
    """Write the corpus (or its good files only) into ``folder``; the files written."""
    files = [f for f in corpus() if f.good or not good_only]
    for source in files:
        path = folder / source.key
        path.parent.mkdir(parents=True, exist_ok=True)
        source.write(path)
    if not good_only:
        for name, data in NOT_SHARDS.items():
            (folder / name).write_bytes(data)
    return files
