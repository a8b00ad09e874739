"""image_hashes' logic: each downloaded image's sha256 and perceptual hash.

Writes ``<lake>/image_hashes/<shard>/hashes.parquet``: one row per downloaded sample (uid, key,
sha256, stored_sha256, phash, error), in key order. ``sha256`` is of the bytes as the server
sent them (the downloader's, img2dataset's ``compute_hash``: what a takedown list or a later
re-check compares); ``stored_sha256`` is of the image in the tar, which the downloader may have
re-encoded. A sample whose image does not decode keeps both and gets a NULL phash with ``error``
set, so every downloaded row is accounted for.

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
from poolsieve.lake import Lake, commit, tmp_path_for

ASSET = "image_hashes"
HASHES_FILE = "hashes.parquet"
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


def hash_row(sample, data: bytes) -> dict:
    """One sample's row: sha256 always, phash when the bytes decode."""
    image, error = decode_image(data)
    return {
        "uid": sample.uid,
        "key": sample.key,
        "sha256": sample.served_sha256 or None,
        "stored_sha256": hashlib.sha256(data).hexdigest(),
        "phash": phash64(image) if image is not None else None,
        "error": error or None,
    }


def hash_shard(lake: Lake, shard: str, progress=None) -> HashResult:
    """Hash every downloaded image of ``shard`` and write its hashes.parquet."""
    skipped: dict[str, str] = {}
    samples = [s for tar in shard_tars(lake, shard) for s in index_tar(tar, skipped)]
    rows = []
    for sample, data in sample_bytes(samples):
        rows.append(hash_row(sample, data))
        if progress is not None and len(rows) % 256 == 0:
            progress(len(rows), len(samples))
    path = lake.partition_dir(ASSET, shard) / HASHES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(path)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp)
    commit(tmp, path)
    return HashResult(path, len(rows), sum(r["error"] is not None for r in rows))
