"""Image-based filtering's clustering (DataComp): faiss k-means over the pool's image embeddings.

A pool sample passes when its cluster (nearest centroid) is the nearest centroid of at least one
exemplar image (ImageNet-1k training images in DataComp; a small pool may use its trusted set).
Deterministic for a seed; k is capped at the number of pool samples.

k-means draws its first centroids by row position, so the same embeddings in another order give
other clusters. Given the rows' uids, rows are clustered in uid order: a uid's cluster then
depends only on the set of (uid, embedding) pairs, never on the order the caller read them in
(files in download order, shards in registration order).
"""

from __future__ import annotations

from collections.abc import Sequence
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


def exemplar_clusters(
    pool: np.ndarray,
    exemplars: np.ndarray,
    k: int,
    seed: int = 0,
    uids: Sequence[str] | None = None,
) -> Clusters:
    """Cluster ``pool`` (L2-normalized, spherical k-means) and mark clusters exemplars fall in.

    With ``uids`` (one per pool row) the rows are clustered in uid order; the result stays in
    the caller's row order.
    """
    if uids is None:
        return _clusters(pool, exemplars, k, seed)
    if len(uids) != len(pool):
        raise ValueError(f"{len(uids)} uids for {len(pool)} pool rows")
    order = np.argsort(np.asarray(uids, dtype=str), kind="stable")
    found = _clusters(np.asarray(pool)[order], exemplars, k, seed)
    pool_cluster = np.empty_like(found.pool_cluster)
    pool_cluster[order] = found.pool_cluster
    exemplar_cluster = np.empty_like(found.exemplar_cluster)
    exemplar_cluster[order] = found.exemplar_cluster
    return Clusters(pool_cluster, exemplar_cluster, found.k, found.exemplar_clusters)


def _clusters(pool: np.ndarray, exemplars: np.ndarray, k: int, seed: int) -> Clusters:
    """k-means over ``pool`` in the order given."""
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
