"""Store embeddings: ``embeddings.parquet`` (one row per embedded uid) and DataComp's ``.npz``.

The parquet holds what was embedded, in the result's (key) order: ``uid``, ``key``, ``image_emb`` and
``text_emb`` (fixed-size lists of float16; DuckDB reads them as FLOAT[]) and ``clip_score``.

The ``.npz`` sidecar is row-aligned with a metadata parquet (the shard's rows, in their order),
as DataComp's tooling expects: row i of every array belongs to row i of the parquet. Keys:

- ``{prefix}_img``, ``{prefix}_txt``: (rows, d) float16, L2-normalized (DataComp's keys).
- ``{prefix}_score``: (rows,) float32 CLIP score (our addition; DataComp tools ignore it).
- ``uid``: (rows,) the metadata uids (our addition), so alignment can be checked at all.

A metadata row without an embedding (its image failed to download or decode) gets zero vectors
and a NaN score: zeros keep the arrays dense and aligned, have no direction, so any similarity
with them is 0, and the NaN score makes every score filter drop the row instead of keeping it
on a made-up value. Prefixes: ``b32`` for ViT-B-32, ``l14`` for ViT-L-14 (DataComp's), else the
caller's prefix or a name derived from the architecture.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.clip.encode import EmbedResult
from poolsieve.lake import commit, tmp_path_for

KNOWN_PREFIXES = {"ViT-B-32": "b32", "ViT-L-14": "l14"}
NORM_TOLERANCE = 1e-2  # float16 rounding of a unit vector's 512+ components


def npz_prefix(arch: str, prefix: str | None = None) -> str:
    """The npz key prefix for a model: an explicit prefix, DataComp's name, or one derived."""
    if prefix:
        return prefix
    if arch in KNOWN_PREFIXES:
        return KNOWN_PREFIXES[arch]
    return re.sub(r"[^0-9a-z]+", "_", arch.lower()).strip("_")


def _emb_array(emb: np.ndarray) -> pa.FixedSizeListArray:
    emb = np.ascontiguousarray(emb, dtype=np.float16)
    return pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), emb.shape[1])


def embeddings_table(result: EmbedResult) -> pa.Table:
    """One row per embedded sample, in the result's (key) order."""
    return pa.table(
        {
            "uid": pa.array(result.uids, pa.string()),
            "key": pa.array(result.keys, pa.string()),
            "image_emb": _emb_array(result.image_emb),
            "text_emb": _emb_array(result.text_emb),
            "clip_score": pa.array(result.scores, pa.float32()),
        }
    )


def write_embeddings_parquet(result: EmbedResult, path: str | Path) -> Path:
    """Write ``embeddings.parquet`` atomically (temp file, then rename)."""
    path = Path(path)
    tmp = tmp_path_for(path)
    pq.write_table(embeddings_table(result), tmp)
    commit(tmp, path)
    return path


def _fixed_list_to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    flat = column.combine_chunks()
    width = flat.type.list_size
    return np.asarray(flat.flatten(), dtype=np.float16).reshape(-1, width)


def read_embeddings_parquet(path: str | Path) -> EmbedResult:
    """Read ``embeddings.parquet`` back into an EmbedResult (skipped samples are not stored)."""
    table = pq.read_table(path)
    return EmbedResult(
        keys=table["key"].to_pylist(),
        uids=table["uid"].to_pylist(),
        image_emb=_fixed_list_to_numpy(table["image_emb"]),
        text_emb=_fixed_list_to_numpy(table["text_emb"]),
        scores=table["clip_score"].to_numpy().astype(np.float32),
    )


def metadata_uids(metadata_parquet: str | Path, uid_column: str = "uid") -> list[str]:
    """The uid of every metadata row, in row order."""
    return pq.read_table(metadata_parquet, columns=[uid_column])[uid_column].to_pylist()


def aligned_arrays(result: EmbedResult, uids: list[str], prefix: str) -> dict[str, np.ndarray]:
    """``{prefix}_img/_txt/_score`` with row i for ``uids[i]``; zeros and NaN where absent."""
    row_of = {uid: i for i, uid in enumerate(result.uids)}
    rows = np.array([row_of.get(uid, -1) for uid in uids], dtype=np.int64)
    present = rows >= 0
    dim = result.image_emb.shape[1]
    arrays = {
        f"{prefix}_img": np.zeros((len(uids), dim), np.float16),
        f"{prefix}_txt": np.zeros((len(uids), dim), np.float16),
        f"{prefix}_score": np.full(len(uids), np.nan, np.float32),
    }
    arrays[f"{prefix}_img"][present] = result.image_emb[rows[present]]
    arrays[f"{prefix}_txt"][present] = result.text_emb[rows[present]]
    arrays[f"{prefix}_score"][present] = result.scores[rows[present]]
    return arrays


def write_npz(
    path: str | Path,
    metadata_parquet: str | Path,
    results: Mapping[str, EmbedResult],
    uid_column: str = "uid",
) -> Path:
    """Write the npz sidecar aligned with ``metadata_parquet``; ``results`` maps prefix -> result.

    Several scorers (e.g. ``{"b32": ..., "l14": ...}``) can share one file, as in DataComp.
    Written atomically; ``np.savez`` gets an open file so it cannot append its own ".npz".
    """
    path = Path(path)
    uids = metadata_uids(metadata_parquet, uid_column)
    arrays = {"uid": np.array(uids, dtype=str)}
    for prefix, result in results.items():
        arrays.update(aligned_arrays(result, uids, prefix))
    tmp = tmp_path_for(path)
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    commit(tmp, path)
    return path


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an npz sidecar, loaded (no pickle: all arrays are plain dtypes)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def npz_prefixes(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """The scorer prefixes present: every ``X`` with an ``X_img`` array."""
    return sorted(name[: -len("_img")] for name in arrays if name.endswith("_img"))


def _uid_problems(arrays: Mapping[str, np.ndarray], uids: list[str]) -> list[str]:
    if "uid" not in arrays:
        return ["no 'uid' array: row alignment cannot be verified"]
    stored = arrays["uid"].tolist()
    if len(stored) != len(uids):
        return [f"uid: {len(stored)} rows, metadata has {len(uids)}"]
    wrong = [i for i, (a, b) in enumerate(zip(stored, uids, strict=True)) if a != b]
    if wrong:
        return [f"uid: {len(wrong)} rows differ from the metadata, first at row {wrong[0]}"]
    return []


def _vector_problems(arrays: Mapping[str, np.ndarray], prefix: str, rows: int) -> list[str]:
    """Shapes, unit norms, zero rows only where the score is NaN, score = dot(img, txt)."""
    img, txt = arrays[f"{prefix}_img"], arrays.get(f"{prefix}_txt")
    if txt is None:
        return [f"{prefix}_txt missing"]
    if img.ndim != 2 or img.shape != txt.shape or img.shape[0] != rows:
        return [f"{prefix}: img {img.shape} / txt {txt.shape}, metadata has {rows} rows"]
    img, txt = img.astype(np.float32), txt.astype(np.float32)
    problems = []
    for name, emb in (("img", img), ("txt", txt)):
        norms = np.linalg.norm(emb, axis=1)
        bad = (norms > 0) & (np.abs(norms - 1) > NORM_TOLERANCE)
        if bad.any():
            problems.append(f"{prefix}_{name}: {bad.sum()} rows not L2-normalized")
    score = arrays.get(f"{prefix}_score")
    if score is not None:
        problems += _score_problems(prefix, img, txt, score)
    return problems


def _score_problems(prefix: str, img, txt, score: np.ndarray) -> list[str]:
    if score.shape != (img.shape[0],):
        return [f"{prefix}_score: shape {score.shape}, expected ({img.shape[0]},)"]
    absent = ~np.any(img != 0, axis=1)
    problems = []
    if not np.array_equal(absent, np.isnan(score)):
        problems.append(f"{prefix}: zero vectors and NaN scores disagree on which rows are empty")
    dots = (img * txt).sum(axis=1)
    off = ~absent & ~np.isnan(score) & (np.abs(dots - score) > NORM_TOLERANCE)
    if off.any():
        problems.append(f"{prefix}_score: {off.sum()} rows differ from dot(img, txt)")
    return problems


def check_alignment(
    npz: str | Path | Mapping[str, np.ndarray],
    metadata_parquet: str | Path,
    uid_column: str = "uid",
) -> list[str]:
    """Problems that make an npz unsafe to use with ``metadata_parquet``; [] when aligned."""
    arrays = read_npz(npz) if isinstance(npz, str | Path) else npz
    uids = metadata_uids(metadata_parquet, uid_column)
    problems = _uid_problems(arrays, uids)
    prefixes = npz_prefixes(arrays)
    if not prefixes:
        problems.append("no '<prefix>_img' array")
    for prefix in prefixes:
        problems += _vector_problems(arrays, prefix, len(uids))
    return problems
