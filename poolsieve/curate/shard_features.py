"""shard_features' logic: every per-row feature of one shard, computed batch by batch.

One row per row of the shard's ``pool_shard`` rows file, in its order (sorted by ``row_idx``):
caption words and characters counted as DataComp counts them, the caption's language from the
configured detector (and from the LAION rule's detector, ``language_cld3``), the source's
precomputed CLIP scores and image sizes. The rows file is read ``batch_rows`` rows at a time and
each batch written before the next is read, so memory holds one batch whatever the shard's size;
nothing here reads another shard, so a new shard never recomputes an old one.

Writes ``<lake>/shard_features/<shard>/features.parquet`` atomically (a crash leaves the previous
file). ``pool_features`` unions these files (poolsieve.curate.features).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.curate.language import detector
from poolsieve.lake import Lake, commit, tmp_path_for, upstream_file

FEATURES_FILE = "features.parquet"
#: bump when what a row's features are (or how they are counted) changes: stales every shard
CODE_VERSION = "shard-features-v1"
MODES = ("download", "metadata")

#: the file's columns, in order (a contract: pool_features and the filters read them)
SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("shard", pa.string()),
        ("row_idx", pa.int64()),
        ("caption_words", pa.int32()),
        ("caption_chars", pa.int32()),
        ("language", pa.string()),
        ("language_confidence", pa.float32()),
        ("language_cld3", pa.string()),
        ("language_cld3_confidence", pa.float32()),
        ("clip_b32_score", pa.float32()),
        ("clip_l14_score", pa.float32()),
        ("meta_width", pa.int64()),
        ("meta_height", pa.int64()),
    ]
)
#: feature column -> the rows file's column it copies (NULL when the rows file lacks it)
COPIED = {
    "uid": "uid",
    "shard": "shard",
    "row_idx": "row_idx",
    "clip_b32_score": "clip_b32_similarity_score",
    "clip_l14_score": "clip_l14_similarity_score",
    "meta_width": "original_width",
    "meta_height": "original_height",
}


@dataclass(frozen=True)
class FeatureSettings:
    """How features are computed (shard_features) and what makes a row eligible (pool_features).

    ``mode``: "download" (a row is eligible once downloaded, embedded and not an eval
    near-duplicate) or "metadata" (DataComp's filtering track: eligible from the metadata alone).
    ``laion_language_detector`` fills ``language_cld3``; empty: that column stays NULL."""

    language_detector: str = "fasttext"
    laion_language_detector: str = "gcld3"
    mode: str = "download"
    batch_rows: int = 100_000

    def __post_init__(self):
        if not self.language_detector:
            raise ValueError("no language detector configured (curation.language_detector)")
        if self.mode not in MODES:
            raise ValueError(f"curation mode {self.mode!r} is not one of {list(MODES)}")
        if self.batch_rows < 1:
            raise ValueError(f"feature batch_rows must be positive, not {self.batch_rows}")


@dataclass
class ShardFeaturesResult:
    path: Path
    rows: int  # rows written
    source_rows: int  # rows of the shard's pool_shard rows file
    seconds: float
    languages: Counter = field(default_factory=Counter)

    @property
    def rows_per_s(self) -> float:
        return self.rows / max(self.seconds, 1e-9)


def caption_counts(texts: Sequence[str | None]) -> tuple[list[int], list[int]]:
    """(words, characters) per caption, exactly as DataComp counts them: ``len(text.split())``
    (runs of anything but Unicode whitespace, as Python's ``str.isspace`` defines it: tabs,
    newlines, no-break and em spaces, U+001C..U+001F, U+0085, U+2028/9, U+3000, ...) and
    ``len(text)`` in code points. A missing caption counts 0 and 0.

    Plain Python on purpose: it *is* DataComp's rule (no second definition to keep equal), the
    captions are Python strings already for language ID, and it is no slower than an Arrow
    regex kernel over the same strings."""
    words, chars = [], []
    for text in texts:
        text = text or ""
        words.append(len(text.split()))
        chars.append(len(text))
    return words, chars


def _languages(name: str, texts: list[str]) -> tuple[pa.Array, pa.Array]:
    """(codes, confidences) from detector ``name``; all NULL when ``name`` is empty."""
    if not name:
        return pa.nulls(len(texts), pa.string()), pa.nulls(len(texts), pa.float32())
    found = detector(name)(texts)
    if len(found) != len(texts):
        raise ValueError(f"language detector {name!r} answered {len(found)} of {len(texts)} texts")
    return (
        pa.array([code for code, _ in found], pa.string()),
        pa.array([p for _, p in found], pa.float32()),
    )


def features_of(batch: pa.RecordBatch, settings: FeatureSettings) -> pa.Table:
    """The features of one batch of a rows file (same rows, same order)."""
    names = batch.schema.names
    texts = batch.column("text").to_pylist() if "text" in names else [None] * batch.num_rows
    texts = [t or "" for t in texts]
    words, chars = caption_counts(texts)
    language, confidence = _languages(settings.language_detector, texts)
    cld3, cld3_confidence = _languages(settings.laion_language_detector, texts)
    computed = {
        "caption_words": pa.array(words, pa.int32()),
        "caption_chars": pa.array(chars, pa.int32()),
        "language": language,
        "language_confidence": confidence,
        "language_cld3": cld3,
        "language_cld3_confidence": cld3_confidence,
    }
    for out, column in COPIED.items():
        kind = SCHEMA.field(out).type
        computed[out] = (
            batch.column(column).cast(kind) if column in names else pa.nulls(batch.num_rows, kind)
        )
    return pa.table([computed[name] for name in SCHEMA.names], schema=SCHEMA)


def _check_order(path: Path, row_idx: pa.Array, previous: int) -> int:
    """The rows file is in row_idx order (pool_shard writes it so); the last row_idx seen."""
    values = row_idx.to_numpy(zero_copy_only=False)
    if len(values) == 0:
        return previous
    steps = (values[1:] <= values[:-1]).nonzero()[0]
    if values[0] <= previous or len(steps):
        bad = int(values[0]) if values[0] <= previous else int(values[steps[0] + 1])
        raise ValueError(f"{path}: rows are not in row_idx order (at row_idx {bad})")
    return int(values[-1])


def file_metadata(settings: FeatureSettings) -> dict[str, str]:
    """What a features file records of how it was made (read back by pool_features)."""
    return {
        "poolsieve.code_version": CODE_VERSION,
        "poolsieve.language_detector": settings.language_detector,
        "poolsieve.laion_language_detector": settings.laion_language_detector,
    }


def recorded_detectors(path: str | Path) -> tuple[str, str]:
    """(language detector, LAION rule's detector) a features file was made with."""
    meta = pq.read_schema(path).metadata or {}
    return tuple(
        meta.get(f"poolsieve.{key}".encode(), b"?").decode()
        for key in ("language_detector", "laion_language_detector")
    )


Progress = Callable[[int, int, str], None]


def build_shard_features(
    lake: Lake,
    shard: str,
    settings: FeatureSettings = FeatureSettings(),
    progress: Progress | None = None,
) -> ShardFeaturesResult:
    """Write ``shard``'s features file from its pool_shard rows, one batch at a time."""
    rows_file = upstream_file(lake, "pool_shard", shard, "rows.parquet")
    source = pq.ParquetFile(rows_file)
    total = source.metadata.num_rows
    names = set(source.schema_arrow.names)
    columns = [c for c in ["text", *COPIED.values()] if c in names]
    final = lake.partition_dir("shard_features", shard) / FEATURES_FILE
    tmp, start, written, last, languages = tmp_path_for(final), time.monotonic(), 0, -1, Counter()
    try:
        schema = SCHEMA.with_metadata(file_metadata(settings))
        with pq.ParquetWriter(tmp, schema, compression="zstd", compression_level=1) as writer:
            for batch in source.iter_batches(batch_size=settings.batch_rows, columns=columns):
                table = features_of(batch, settings).replace_schema_metadata(schema.metadata)
                last = _check_order(rows_file, table.column("row_idx"), last)
                writer.write_table(table)
                languages.update(table.column("language").to_pylist())
                written += table.num_rows
                if progress is not None:
                    progress(written, total, f"{shard}: features")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    commit(tmp, final)
    return ShardFeaturesResult(final, written, total, time.monotonic() - start, languages)
