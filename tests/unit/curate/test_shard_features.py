"""shard_features: DataComp's caption counting rules, and one shard's features file."""

from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poolsieve.curate.language import LanguageIdentifier
from poolsieve.curate.shard_features import (
    FEATURES_FILE,
    SCHEMA,
    FeatureSettings,
    build_shard_features,
    caption_counts,
    caption_counts_arrow,
    features_of,
    recorded_detectors,
)
from poolsieve.pool.ingest import ingest_shard
from tests.conftest import LAION_SAMPLE, row, write_datacomp

#: hand-made captions and what DataComp counts for them (words = len(text.split()), chars = len)
CAPTIONS = [
    ("foo bar", 2, 7),
    ("foo bar\n", 2, 8),  # a trailing newline is not a word (the old SQL rule counted 3)
    ("\tfoo bar", 2, 8),
    ("  foo   bar  ", 2, 13),
    ("foo\tbar\nbaz\r\nqux", 4, 16),
    ("foo\u00a0bar", 2, 7),  # no-break space splits
    ("foo\u2003bar", 2, 7),  # em space splits
    ("a\x1cb\x1dc\x1ed\x1fe", 5, 9),  # information separators are whitespace to Python
    ("a\x85b\u2028c\u2029d", 4, 7),  # next line, line and paragraph separators
    ("a\u3000b\u1680c\u202fd\u205fe", 5, 9),  # ideographic, ogham, narrow no-break, math spaces
    ("a\u200bb", 1, 3),  # a zero-width space is not whitespace
    ("日本語のキャプション", 1, 10),  # code points, not bytes
    ("\U0001f600 emoji", 2, 7),
    ("", 0, 0),
    (" \t\n\u00a0", 0, 4),
    (None, 0, 0),
]


def test_caption_counts_are_pythons_split_and_len():
    texts = [t for t, _, _ in CAPTIONS]
    words, chars = caption_counts(texts)
    assert words == [w for _, w, _ in CAPTIONS]
    assert chars == [c for _, _, c in CAPTIONS]
    assert words == [len((t or "").split()) for t in texts]
    assert chars == [len(t or "") for t in texts]


def test_every_unicode_whitespace_splits_and_nothing_else_does():
    """Exhaustive over code points: a character between two letters splits them exactly when
    Python's str.split() does (DataComp's rule)."""
    points = [c for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    texts = [f"a{chr(c)}b" for c in points]
    words, chars = caption_counts(texts)
    assert words == [len(t.split()) for t in texts]
    assert set(chars) == {3}
    fast_words, fast_chars = caption_counts_arrow(pa.array(texts))
    assert fast_words.to_pylist() == words and fast_chars.to_pylist() == chars


def _fast_equals_python(column: pa.Array | pa.ChunkedArray):
    words, chars = caption_counts_arrow(column)
    assert (words.type, chars.type) == (pa.int32(), pa.int32())
    assert (words.to_pylist(), chars.to_pylist()) == caption_counts(column.to_pylist())


def test_vectorized_counts_are_pythons_on_every_code_point_alone_and_in_runs():
    points = [c for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    _fast_equals_python(pa.array([chr(c) for c in points]))
    _fast_equals_python(pa.array([f"{chr(c)}{chr(c)}x{chr(c)}y" for c in points]))


TRICKY = [t for t, _, _ in CAPTIONS] + [
    "\x1c\x1d\x1e\x1f",
    "a\x1fb",
    "\x85",
    "x\x85",
    "\u00a0\u00a0a",
    "a\u2003\u2003b\u3000",
    "\u3000\u3000",
    "tab\tsep\vvt\fff\rcr",
    "– dash “quotes” … ellipsis",  # E2 80 xx bytes that are not whitespace
    "、。「日本」",  # E3 80 xx bytes that are not whitespace
    "\u2000\u200a\u200b\u2028\u2029\u202f\u205f\u2060\u1680\u180e",
    "ends with a space ",
    None,
    "",
]


@pytest.mark.parametrize(
    "shape",
    ["plain", "sliced", "chunked", "large_string", "string_view"],
)
def test_vectorized_counts_are_pythons_on_tricky_captions(shape):
    column = pa.array(TRICKY * 3)
    column = {
        "plain": column,
        "sliced": column.slice(5, 2 * len(TRICKY)),
        "chunked": pa.chunked_array([column.slice(0, 7), column.slice(7, 0), column.slice(7)]),
        "large_string": column.cast(pa.large_string()),
        "string_view": column.cast(pa.string_view()),
    }[shape]
    _fast_equals_python(column)


def test_vectorized_counts_of_no_or_only_missing_captions():
    _fast_equals_python(pa.array([], pa.string()))
    _fast_equals_python(pa.nulls(3, pa.string()))
    _fast_equals_python(pa.nulls(3))


def _laion_captions() -> list[str | None]:
    real = pq.read_table(LAION_SAMPLE, columns=["TEXT"]).column("TEXT").to_pylist()
    spaces = ["\t", "\n", "\u00a0", "\u2003", "\u3000", "\x1c", "\x85", "  "]
    varied = [t.replace(" ", spaces[i % len(spaces)], 1) for i, t in enumerate(real) if t]
    return real + varied + [t + "\n" for t in real if t]


def test_vectorized_counts_are_pythons_on_real_captions():
    _fast_equals_python(pa.array(_laion_captions()))


def test_features_are_the_same_with_one_or_two_language_workers():
    captions = _laion_captions()
    captions += captions[:500] + ["", None, " \t"]  # repeats are identified once, answered for each
    batch = _batch(captions)
    settings = FeatureSettings("fasttext", "gcld3")
    alone = features_of(batch, settings)
    with LanguageIdentifier(["fasttext", "gcld3"], workers=2, min_texts=1) as two:
        together = features_of(batch, settings, two)
        again = features_of(batch.slice(0, 700), settings, two)  # the same processes, reused
    assert together.equals(alone)
    assert again.equals(alone.slice(0, 700))
    assert set(together.column("language").to_pylist()) > {"en", "de", ""}


def test_settings_refuse_negative_language_workers():
    with pytest.raises(ValueError, match="language_workers must be 0"):
        FeatureSettings(language_workers=-1)


def _batch(texts, **columns):
    n = len(texts)
    base = {
        "uid": [f"{i:032x}" for i in range(n)],
        "text": texts,
        "shard": ["s.parquet"] * n,
        "row_idx": list(range(n)),
    }
    return pa.RecordBatch.from_pydict({**base, **columns})


def test_features_of_a_batch_names_every_column_and_copies_scores():
    batch = _batch(
        ["a red car on a road", None, "ein rotes Auto auf der Straße"],
        clip_b32_similarity_score=pa.array([0.3, None, 0.25], pa.float32()),
        clip_l14_similarity_score=pa.array([0.31, 0.2, None], pa.float32()),
        original_width=pa.array([640, None, 10], pa.int64()),
        original_height=pa.array([480, 7, None], pa.int64()),
    )
    table = features_of(batch, FeatureSettings("fasttext", "gcld3"))
    assert table.schema == SCHEMA
    got = table.to_pydict()
    assert got["caption_words"] == [6, 0, 6] and got["caption_chars"] == [19, 0, 29]
    assert got["language"] == ["en", "", "de"] and got["language_cld3"] == ["en", "", "de"]
    assert got["language_confidence"][1] == 0.0 and got["language_confidence"][0] > 0.5
    assert got["clip_b32_score"] == pytest.approx([0.3, None, 0.25])
    assert got["clip_l14_score"][2] is None
    assert got["meta_width"] == [640, None, 10] and got["meta_height"] == [480, 7, None]


def test_no_laion_detector_leaves_its_columns_null_and_missing_scores_are_null():
    table = features_of(_batch(["a dog", "a cat"]), FeatureSettings("fasttext", ""))
    got = table.to_pydict()
    assert got["language_cld3"] == [None, None] and got["language_cld3_confidence"] == [None] * 2
    assert got["clip_b32_score"] == [None, None] and got["meta_width"] == [None, None]


def test_settings_refuse_an_unknown_mode_or_no_detector():
    with pytest.raises(ValueError, match="'both' is not one of"):
        FeatureSettings(mode="both")
    with pytest.raises(ValueError, match="no language detector"):
        FeatureSettings(language_detector="")


def test_a_shard_is_written_in_batches_sorted_by_row_idx(conn, source_dir, lake):
    captions = ["a photo of a dog\n", "\tzwei Hunde", "x", None, "un chat\u00a0noir", "cat"]
    rows = [row(i, text=t) for i, t in enumerate(captions)]
    rows.insert(2, row(99, url="ftp://bad.example/x.jpg"))  # quarantined: row_idx 2 is absent
    ingest_shard(conn, lake, "s0.parquet", 0, str(write_datacomp(source_dir / "s0.parquet", rows)))
    seen = []
    result = build_shard_features(
        lake, "s0.parquet", FeatureSettings(batch_rows=2), lambda d, t, w: seen.append((d, t))
    )
    assert seen == [(2, 6), (4, 6), (6, 6)]  # three batches of two
    assert (result.rows, result.source_rows) == (6, 6)
    path = lake.partition_dir("shard_features", "s0.parquet") / FEATURES_FILE
    assert result.path == path
    table = pq.read_table(path)
    assert table.schema.remove_metadata() == SCHEMA
    got = table.to_pydict()
    assert got["row_idx"] == [0, 1, 3, 4, 5, 6]
    assert got["uid"] == [f"{i:032x}" for i in range(6)]
    assert got["caption_words"] == [5, 2, 1, 0, 3, 1]
    assert got["caption_chars"] == [17, 11, 1, 0, 12, 3]
    assert got["language"][0] == "en" and got["language"][3] == ""
    assert got["clip_l14_score"] == pytest.approx([0.25] * 6)
    assert got["meta_width"] == [640] * 6
    assert recorded_detectors(path) == ("fasttext", "gcld3")
    assert result.languages["en"] >= 2


def test_a_shard_without_rows_fails_naming_the_asset(lake):
    with pytest.raises(FileNotFoundError, match="materialize pool_shard"):
        build_shard_features(lake, "missing.parquet")
