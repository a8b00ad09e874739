"""Hand-made pool_features rows with exactly the columns (and types) the filters read."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.curate.strategies import build_subset
from poolsieve.lake import Lake

#: pool_features' columns (docs/curation.md; the issue-12 design) and their types
SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("shard", pa.string()),
        ("row_idx", pa.int64()),
        ("url", pa.string()),
        ("text", pa.string()),
        ("caption_words", pa.int32()),
        ("caption_chars", pa.int32()),
        ("dedup_keep", pa.bool_()),
        ("dedup_reason", pa.string()),
        ("duplicate_of", pa.string()),
        ("download_status", pa.string()),
        ("download_error", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("clip_score", pa.float32()),
        ("clip_b32_score", pa.float32()),
        ("clip_l14_score", pa.float32()),
        ("language", pa.string()),
        ("language_confidence", pa.float32()),
        ("language_cld3", pa.string()),
        ("language_cld3_confidence", pa.float32()),
        ("meta_width", pa.int64()),
        ("meta_height", pa.int64()),
        ("eval_max_similarity", pa.float32()),
        ("nearest_eval", pa.string()),
        ("eval_near_duplicate", pa.bool_()),
        ("image_cluster", pa.int32()),
        ("exemplar_cluster", pa.bool_()),
        ("phash_duplicate_of", pa.string()),
        ("phash_distance", pa.int32()),
        ("semantic_duplicate_of", pa.string()),
        ("semantic_similarity", pa.float32()),
        ("ineligible_reason", pa.string()),
    ]
)

DEFAULTS = {
    "shard": "s0",
    "url": "http://x/1.jpg",
    "text": "a red star on a plain background",
    "dedup_keep": True,
    "dedup_reason": None,
    "duplicate_of": None,
    "download_status": "success",
    "download_error": None,
    "width": 400,
    "height": 300,
    "clip_score": 0.5,
    "clip_b32_score": 0.3,
    "clip_l14_score": 0.3,
    "language": "en",
    "language_confidence": 0.9,
    "language_cld3": "en",
    "language_cld3_confidence": 0.9,
    "meta_width": 400,
    "meta_height": 300,
    "eval_max_similarity": 0.1,
    "nearest_eval": "x",
    "eval_near_duplicate": False,
    "image_cluster": 0,
    "exemplar_cluster": True,
    "phash_duplicate_of": None,
    "phash_distance": None,
    "semantic_duplicate_of": None,
    "semantic_similarity": None,
    "ineligible_reason": None,
}


def feature_row(i: int, **overrides) -> dict:
    """Row ``i`` (uid = i in hex); words and characters counted from the text unless given."""
    row = {"uid": f"{i:032x}", "row_idx": i, **DEFAULTS, **overrides}
    text = row["text"] or ""
    row.setdefault("caption_words", len(text.split()))
    row.setdefault("caption_chars", len(text))
    return row


def write_features(tmp_path, rows: list[dict]) -> str:
    path = tmp_path / "pool_features.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)
    return str(path)


def decide(tmp_path, name, rows, profile="", project=None) -> dict[int, str | None]:
    """Filter ``name`` over ``rows``: row number -> None (kept) or the reason it was dropped."""
    with duckdb.connect() as conn:
        result = build_subset(
            conn, Lake(tmp_path / "lake"), write_features(tmp_path, rows), name, profile, project
        )
    decisions = pq.read_table(result.files["decisions"]).to_pylist()
    return {int(d["uid"], 16): (None if d["keep"] else d["reason"]) for d in decisions}
