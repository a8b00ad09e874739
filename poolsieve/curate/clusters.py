"""Image-based filtering's clustering (DataComp): faiss k-means over the pool's image embeddings.

A pool sample passes when its cluster (nearest centroid) is the nearest centroid of at least one
exemplar image (ImageNet-1k training images in DataComp; a small pool may use its trusted set).
Deterministic for a seed; k is capped at the number of pool samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Clusters:
    pool_cluster: np.ndarray  # (n,) int64 nearest centroid of each pool row
    exemplar_cluster: np.ndarray  # (n,) bool: that centroid is some exemplar's nearest
    k: int
    exemplar_clusters: int  # distinct centroids hit by exemplars


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def exemplar_clusters(pool: np.ndarray, exemplars: np.ndarray, k: int, seed: int = 0) -> Clusters:
    """Cluster ``pool`` (L2-normalized, spherical k-means) and mark clusters exemplars fall in."""
    import faiss

    if len(pool) == 0:
        return Clusters(np.zeros(0, np.int64), np.zeros(0, bool), 0, 0)
    pool, exemplars = _unit(pool), _unit(exemplars)
    k = max(1, min(k, len(pool)))
    kmeans = faiss.Kmeans(pool.shape[1], k, niter=20, seed=seed, spherical=True, verbose=False)
    kmeans.train(pool)
    _, pool_idx = kmeans.index.search(pool, 1)
    hit = np.zeros(k, bool)
    if len(exemplars):
        _, ex_idx = kmeans.index.search(exemplars, 1)
        hit[ex_idx[:, 0]] = True
    pool_idx = pool_idx[:, 0].astype(np.int64)
    return Clusters(pool_idx, hit[pool_idx], k, int(hit.sum()))
