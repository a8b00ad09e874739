"""image_hashes' logic: each downloaded image's sha256 and perceptual hash.

Writes ``<lake>/image_hashes/<shard>/hashes.parquet``: one row per downloaded sample (uid, key,
sha256, stored_sha256, phash, error), in key order. ``sha256`` is of the bytes as the server
sent them (the downloader's, img2dataset's ``compute_hash``: what a takedown list or a later
re-check compares); ``stored_sha256`` is of the image in the tar, which the downloader may have
re-encoded. A sample whose image does not decode keeps both and gets a NULL phash with ``error``
set, so every downloaded row is accounted for. ``copy_features.npy`` holds each row's copy
feature (pixel_features.copy_embedding, float16, zeros when undecodable), row-aligned with
hashes.parquet: what near_duplicates' semantic rule compares with ``semantic_features=pixel``.

``phash`` is imagehash's DCT perceptual hash (``imagehash.phash``, 8x8: 64 bits), stored as a
signed 64-bit integer (the same bits; parquet has no unsigned 64-bit type DuckDB reads back as
one). Two copies of a picture re-encoded, resized or slightly re-exposed differ in a few bits;
unrelated pictures in about half of them. The near-duplicate rule that uses it, and its
threshold: poolsieve/curate/near_duplicates.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.clip.embedding import shard_tars
from poolsieve.clip.encode import decode_image, index_tar, sample_bytes
from poolsieve.images.pixel_features import COPY_DIM, copy_embedding
from poolsieve.lake import Lake, atomic_file

ASSET = "image_hashes"
HASHES_FILE = "hashes.parquet"
COPY_FEATURES_FILE = "copy_features.npy"
PHASH_BITS = 64
SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("key", pa.string()),
        ("sha256", pa.string()),
        ("stored_sha256", pa.string()),
        ("phash", pa.int64()),
        ("error", pa.string()),
    ]
)


@dataclass(frozen=True)
class HashResult:
    path: Path
    samples: int
    undecodable: int


def phash_block_params(max_distance: int) -> dict:
    """The SQL parameters of a pHash candidate join within ``max_distance`` bits: two 64-bit
    hashes that close agree exactly on one of ``max_distance + 1`` blocks (the pigeonhole
    principle), so only rows sharing a block value are compared."""
    blocks = max(max_distance, 0) + 1
    bits = -(-PHASH_BITS // blocks)
    mask = -1 if bits >= PHASH_BITS else (1 << bits) - 1
    return {"max_distance": max_distance, "blocks": blocks, "block_bits": bits, "block_mask": mask}


def phash64(image) -> int:
    """The image's 64-bit DCT perceptual hash as a signed int64 (bit i = the i-th hash cell)."""
    bits = imagehash.phash(image.convert("RGB")).hash.flatten()
    value = int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])
    return value - (1 << 64) if value >= 1 << 63 else value


def hash_row(sample, data: bytes) -> tuple[dict, np.ndarray]:
    """One sample's row (sha256 always, phash when the bytes decode) and its copy feature
    (pixel_features.copy_embedding; zeros when the bytes do not decode)."""
    image, error = decode_image(data)
    row = {
        "uid": sample.uid,
        "key": sample.key,
        "sha256": sample.served_sha256 or None,
        "stored_sha256": hashlib.sha256(data).hexdigest(),
        "phash": phash64(image) if image is not None else None,
        "error": error or None,
    }
    feature = copy_embedding([image])[0] if image is not None else np.zeros(COPY_DIM, np.float32)
    return row, feature


def hash_shard(lake: Lake, shard: str, progress=None) -> HashResult:
    """Hash every downloaded image of ``shard``; write its hashes.parquet and the row-aligned
    copy features (COPY_FEATURES_FILE, float16)."""
    skipped: dict[str, str] = {}
    samples = [s for tar in shard_tars(lake, shard) for s in index_tar(tar, skipped)]
    rows, features = [], []
    for sample, data in sample_bytes(samples):
        row, feature = hash_row(sample, data)
        rows.append(row)
        features.append(feature)
        if progress is not None and len(rows) % 256 == 0:
            progress(len(rows), len(samples))
    folder = lake.partition_dir(ASSET, shard)
    folder.mkdir(parents=True, exist_ok=True)
    stacked = np.stack(features) if features else np.zeros((0, COPY_DIM), np.float32)
    with atomic_file(folder / COPY_FEATURES_FILE) as tmp, open(tmp, "wb") as handle:
        np.save(handle, stacked.astype(np.float16))
    path = folder / HASHES_FILE
    with atomic_file(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp)
    return HashResult(path, len(rows), sum(r["error"] is not None for r in rows))


def read_copy_features(lake: Lake, shard: str) -> tuple[list[str], np.ndarray]:
    """The shard's uids (hashes.parquet order) and their copy features (float16 rows)."""
    uids = pq.read_table(lake.partition_file(ASSET, shard, HASHES_FILE), columns=["uid"])
    features = np.load(lake.partition_file(ASSET, shard, COPY_FEATURES_FILE))
    if len(features) != uids.num_rows:
        raise ValueError(
            f"{ASSET}/{shard}: {COPY_FEATURES_FILE} has {len(features)} rows for "
            f"{uids.num_rows} hashes: materialize image_hashes for it again"
        )
    return uids.column("uid").to_pylist(), features
