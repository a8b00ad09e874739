"""eval_decontamination's logic: each downloaded pool image's nearest evaluation image.

Writes ``<lake>/eval_decontamination/<shard>/decontamination.parquet``: one row per downloaded
sample (uid, key, max_similarity, nearest_eval, flagged, error); a sample whose image does not
decode is kept with ``error`` set and ``flagged`` false, so every downloaded row is accounted for.
The feature is poolsieve.images.pixel_features's pixel embedding (why not the scorer's, and how
the threshold was chosen: docs/decisions.md). ``nearest_eval`` is the eval image's path relative
to the eval folder, e.g. ``classification/images/cls-00012.png``.

Eval features are computed once per eval set and cached in ``<lake>/eval_features/`` under a
fingerprint of the eval files (names, sizes, mtimes), so a changed eval set is re-read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from poolsieve.clip.embedding import shard_tars
from poolsieve.clip.encode import Sample, decode_image, index_tar, sample_bytes
from poolsieve.images.pixel_features import flag_near_duplicates, max_similarity, pixel_embedding
from poolsieve.lake import Lake, commit, tmp_path_for

EVAL_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
RESULT_FILE = "decontamination.parquet"
BLOCK = 256  # pool images featurized at a time (~10 MB of features)


@dataclass(frozen=True)
class EvalFeatures:
    keys: list[str]
    feats: np.ndarray


@dataclass(frozen=True)
class DecontamResult:
    path: Path
    samples: int
    flagged: int
    undecodable: int
    threshold: float
    eval_images: int


def eval_image_paths(eval_dir: str | Path) -> list[Path]:
    folder = Path(eval_dir)
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EVAL_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no evaluation images ({'/'.join(EVAL_SUFFIXES)}) under {folder}")
    return paths


def _fingerprint(folder: Path, paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for p in paths:
        stat = p.stat()
        digest.update(f"{p.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def eval_features(eval_dir: str | Path, cache_dir: Path) -> EvalFeatures:
    """Pixel features of every eval image, from the cache when the eval files are unchanged."""
    folder = Path(eval_dir)
    paths = eval_image_paths(folder)
    cache = cache_dir / f"pixel-{_fingerprint(folder, paths)}.npz"
    keys = [str(p.relative_to(folder)) for p in paths]
    if cache.is_file():
        with np.load(cache) as saved:
            return EvalFeatures(keys, saved["feats"])
    feats = pixel_embedding(Image.open(p) for p in paths)
    tmp = tmp_path_for(cache)
    with open(tmp, "wb") as handle:
        np.savez(handle, feats=feats)
    commit(tmp, cache)
    return EvalFeatures(keys, feats)


def _decoded(samples: list[Sample]) -> Iterator[tuple[Sample, Image.Image | None, str]]:
    for s, data in sample_bytes(samples):
        yield s, *decode_image(data)


def _score_block(block, evals: EvalFeatures, threshold: float) -> list[dict]:
    images = [(s, img) for s, img, _ in block if img is not None]
    sims, idx = max_similarity(pixel_embedding(img for _, img in images), evals.feats)
    flags = flag_near_duplicates(sims, threshold)
    by_key = {
        s.key: (float(sims[i]), evals.keys[idx[i]], bool(flags[i]))
        for i, (s, _) in enumerate(images)
    }
    rows = []
    for s, _, error in block:
        sim, nearest, flag = by_key.get(s.key, (None, None, False))
        rows.append(
            {
                "uid": s.uid,
                "key": s.key,
                "max_similarity": sim,
                "nearest_eval": nearest,
                "flagged": flag,
                "error": error or None,
            }
        )
    return rows


RESULT_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("key", pa.string()),
        ("max_similarity", pa.float32()),
        ("nearest_eval", pa.string()),
        ("flagged", pa.bool_()),
        ("error", pa.string()),
    ]
)


def decontaminate_shard(
    lake: Lake, shard: str, evals: EvalFeatures, threshold: float, progress=None
) -> DecontamResult:
    """Score every downloaded image of ``shard`` against the eval set and write the result."""
    skipped: dict[str, str] = {}
    samples = [s for tar in shard_tars(lake, shard) for s in index_tar(tar, skipped)]
    rows, block = [], []
    for item in _decoded(samples):
        block.append(item)
        if len(block) == BLOCK:
            rows += _score_block(block, evals, threshold)
            block = []
            if progress is not None:
                progress(len(rows), len(samples))
    rows += _score_block(block, evals, threshold) if block else []
    path = lake.partition_dir("eval_decontamination", shard) / RESULT_FILE
    tmp = tmp_path_for(path)
    pq.write_table(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA), tmp)
    commit(tmp, path)
    return DecontamResult(
        path,
        len(rows),
        sum(r["flagged"] for r in rows),
        sum(r["error"] is not None for r in rows),
        threshold,
        len(evals.keys),
    )
