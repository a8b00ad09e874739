"""DataComp-format shards for tests: a metadata parquet and the ``.npz`` beside it.

As DataComp ships them: ``b32_img``, ``b32_txt`` (512 wide), ``l14_img``, ``l14_txt`` (768 wide),
float16 unit rows aligned with the parquet's rows, and the parquet's
``clip_b32_similarity_score`` / ``clip_l14_similarity_score`` = dot(img, txt) of those rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import write_datacomp

DIMS = {"b32": 512, "l14": 768}


def unit_pairs(rng: np.random.Generator, n: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(img, txt) float16 unit rows whose cosines spread over about 0.05-0.45, like real pools."""
    img = rng.standard_normal((n, dim))
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    noise = rng.standard_normal((n, dim))
    noise -= (noise * img).sum(1, keepdims=True) * img  # orthogonal to img
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    cos = rng.uniform(0.05, 0.45, size=(n, 1))
    txt = cos * img + np.sqrt(1 - cos**2) * noise
    return img.astype(np.float16), txt.astype(np.float16)


def float16_dot(img: np.ndarray, txt: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", img.astype(np.float32), txt.astype(np.float32))


def write_shard(parquet: Path, rows: list[dict], seed: int) -> dict[str, np.ndarray]:
    """Write ``rows`` as a DataComp parquet with its .npz (same stem); scores = the .npz's dots,
    except where a row states its score as None (missing). Returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, dim in DIMS.items():
        img, txt = unit_pairs(rng, len(rows), dim)
        arrays[f"{prefix}_img"], arrays[f"{prefix}_txt"] = img, txt
        column = f"clip_{prefix}_similarity_score"
        for row, score in zip(rows, float16_dot(img, txt).tolist(), strict=True):
            if row.get(column, 0.0) is not None:
                row[column] = score
    write_datacomp(parquet, rows)
    save_npz(parquet.with_suffix(".npz"), arrays)
    return arrays


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as handle:  # an open file: np.savez appends no second ".npz"
        np.savez(handle, **arrays)
    return path
