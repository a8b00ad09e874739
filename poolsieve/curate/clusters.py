"""Image clusters for DataComp's image-based filter, in two steps whose memory stays bounded.

``image_centroids`` (:func:`build_centroids`): faiss spherical k-means trained on a seeded sample
of the pool's image embeddings, read one shard at a time. The sample is the ``size`` rows whose
``(hash(seed, uid), uid, shard)`` is smallest (a bottom-k sample): which rows it holds, and the
order k-means sees them in, depend only on the pool's (uid, shard, embedding) rows and the seed,
never on the order shards are read in. Memory: the sample plus one shard. The exemplar clusters
are the nearest centroids of the exemplar embeddings (DataComp: ImageNet-1k's training images
embedded with the clustering model; a small pool may use its trusted set, embedded with the
scorer).

``shard_clusters`` (:func:`assign_shard`): one shard's embeddings assigned to the nearest
centroid in batches. A shard that arrives later is assigned against the same centroids.

Embeddings come from ``source``: ``scorer`` (clip_embeddings' embeddings.parquet) or a DataComp
``.npz`` key (``l14_img``, ``b32_img``) beside the pool's parquet (metadata_embeddings).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.lake import Lake, commit, tmp_path_for, upstream_file, write_json

SOURCES = ("scorer", "l14_img", "b32_img")
CENTROIDS_FILE = "centroids.npy"
EXEMPLARS_FILE = "exemplar_clusters.json"
CLUSTERS_FILE = "clusters.parquet"
ASSIGN_BATCH = 65_536  # rows per faiss search: bounds the float32 copy of a shard's batch
KMEANS_ITERATIONS = 20
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


@dataclass(frozen=True)
class CentroidSettings:
    k: int = 36  # DataComp: 100k for its 12.8B pool
    sample: int = 1_000_000  # rows k-means trains on
    seed: int = 0
    source: str = "scorer"


@dataclass
class Sample:
    """The sampled rows, in (hash, uid, shard) order; ``rows_read`` counts every row seen."""

    hashes: np.ndarray  # (n,) uint64
    uids: np.ndarray  # (n,) str
    shards: np.ndarray  # (n,) str
    emb: np.ndarray  # (n, d) float32, unit rows
    rows_read: int = 0


@dataclass(frozen=True)
class CentroidsResult:
    centroids: Path
    exemplar_clusters: Path
    k: int
    dims: int
    sample_rows: int
    pool_rows: int
    exemplar_rows: int
    clusters_hit: int


@dataclass(frozen=True)
class ShardClusters:
    path: Path
    rows: int  # rows written
    embeddings: int  # embeddings read
    no_embedding: int  # zero vectors: no cluster
    exemplar_rows: int  # rows in an exemplar cluster


def unit(x: np.ndarray) -> np.ndarray:
    """Rows L2-normalized as float32 (zero rows stay zero)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# --- reading one shard's embeddings ---------------------------------------------------------


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"curation.cluster_embeddings is {source!r}; expected one of {SOURCES}")
    return source


def shard_embeddings(
    lake: Lake, shard: str, source: str, take: np.ndarray | None = None
) -> tuple[list[str], np.ndarray]:
    """One shard's (uids, unit float32 image embeddings) from ``source``; ``take`` (ascending
    positions in shard_uids' order): only those rows."""
    if check_source(source) == "scorer":
        path = upstream_file(lake, "clip_embeddings", shard, "embeddings.parquet")
        table = pq.read_table(path, columns=["uid", "image_emb"])
        if take is not None:
            table = table.take(pa.array(take, pa.int64()))
        flat = table["image_emb"].combine_chunks()
        emb = np.asarray(flat.flatten(), np.float32).reshape(-1, flat.type.list_size)
        return table["uid"].to_pylist(), _unit_in_place(emb)
    from poolsieve.curate.metadata import image_embeddings

    uids, emb = image_embeddings(lake, shard, source, take)
    return list(uids), _unit_in_place(emb)


def shard_uids(lake: Lake, shard: str, source: str) -> list[str]:
    """The uids of shard_embeddings' rows, in its order, without reading any embedding."""
    if check_source(source) == "scorer":
        path = upstream_file(lake, "clip_embeddings", shard, "embeddings.parquet")
        return pq.read_table(path, columns=["uid"])["uid"].to_pylist()
    from poolsieve.curate.metadata import npz_row_uids

    return npz_row_uids(lake, shard)[0]


def _unit_in_place(emb: np.ndarray) -> np.ndarray:
    """``emb`` (float32) with unit rows, without a second copy of the shard."""
    emb = np.require(emb, np.float32, ["C", "W"])
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return emb


# --- the seeded, order-independent sample -----------------------------------------------------


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads every input bit over the output."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def uid_hashes(uids: Sequence[str], seed: int) -> np.ndarray:
    """A seeded 64-bit hash of each uid's UTF-8 bytes (FNV-1a, then splitmix64), vectorized.

    Depends on the uid and the seed only (not on the batch it is computed in)."""
    raw = [u.encode() for u in uids]
    if not raw:
        return np.zeros(0, np.uint64)
    lens = np.fromiter(map(len, raw), np.int64, len(raw))
    width = max(int(lens.max()), 1)
    mat = np.array(raw, dtype=f"S{width}").view(np.uint8).reshape(len(raw), width)
    h = np.full(len(raw), _FNV_OFFSET, np.uint64) ^ _mix(np.array([seed], np.uint64))
    with np.errstate(over="ignore"):
        for j in range(width):
            h = np.where(j < lens, (h ^ mat[:, j]) * _FNV_PRIME, h)
        return _mix(h ^ lens.astype(np.uint64))


def _empty_sample(dims: int) -> Sample:
    return Sample(
        np.zeros(0, np.uint64), np.zeros(0, str), np.zeros(0, str), np.zeros((0, dims), np.float32)
    )


def _merge(kept: Sample, shard: str, uids: list[str], emb: np.ndarray, h, size: int) -> Sample:
    """``kept`` plus the shard's candidate rows, cut back to the ``size`` smallest keys."""
    hashes = np.concatenate([kept.hashes, h])
    uid_arr = np.concatenate([kept.uids, np.asarray(uids, dtype=str)])
    shard_arr = np.concatenate([kept.shards, np.full(len(uids), shard)])
    order = np.lexsort((shard_arr, uid_arr, hashes))[:size]
    emb_all = np.concatenate([kept.emb, emb]) if len(uids) else kept.emb
    return Sample(hashes[order], uid_arr[order], shard_arr[order], emb_all[order], kept.rows_read)


def sample_embeddings(
    batches: Iterable[tuple[str, list[str], np.ndarray]], size: int, seed: int
) -> Sample:
    """The ``size`` rows of smallest (hash(seed, uid), uid, shard) over every batch (bottom-k).

    Holds the sample plus one batch. Rows with a zero embedding (none was made) are skipped."""
    if size < 1:
        raise ValueError(f"curation.centroid_sample must be at least 1, got {size}")
    kept: Sample | None = None
    for shard, uids, emb in batches:
        if len(uids) != len(emb):
            raise ValueError(f"shard {shard!r}: {len(uids)} uids for {len(emb)} embeddings")
        kept = kept or _empty_sample(emb.shape[1])
        if emb.shape[1] != kept.emb.shape[1]:
            raise ValueError(f"shard {shard!r}: {emb.shape[1]}-d, others {kept.emb.shape[1]}-d")
        kept.rows_read += len(uids)
        h = uid_hashes(uids, seed)
        take = np.any(emb != 0, axis=1)
        if len(kept.hashes) >= size:  # only rows that can displace the largest key kept
            take &= h <= kept.hashes[-1]
        idx = np.flatnonzero(take)
        kept = _merge(kept, shard, [uids[i] for i in idx], emb[idx], h[idx], size)
    if kept is None or not len(kept.hashes):
        raise ValueError("no image embeddings to cluster: every shard is empty")
    return kept


@dataclass
class _Keys:
    """Sample candidates without embeddings: key (hash, uid, shard) and row position."""

    hashes: np.ndarray
    uids: np.ndarray
    shards: np.ndarray
    positions: np.ndarray


def _bottom_keys(lake: Lake, shards: Sequence[str], source: str, limit: int, seed: int):
    """The ``limit`` smallest (hash, uid, shard) keys over every shard's rows (uids only), and
    how many rows there are."""
    kept, rows = _Keys(*(np.zeros(0, t) for t in (np.uint64, str, str, np.int64))), 0
    for shard in shards:
        uids = shard_uids(lake, shard, source)
        rows += len(uids)
        h = uid_hashes(uids, seed)
        idx = np.flatnonzero(h <= kept.hashes[-1]) if len(kept.hashes) >= limit else None
        idx = np.arange(len(uids)) if idx is None else idx
        both = _Keys(
            np.concatenate([kept.hashes, h[idx]]),
            np.concatenate([kept.uids, np.asarray([uids[i] for i in idx], dtype=str)]),
            np.concatenate([kept.shards, np.full(len(idx), shard)]),
            np.concatenate([kept.positions, idx.astype(np.int64)]),
        )
        order = np.lexsort((both.shards, both.uids, both.hashes))[:limit]
        kept = _Keys(*(a[order] for a in vars(both).values()))
    return kept, rows


def _candidate_embeddings(lake: Lake, keys: _Keys, source: str) -> np.ndarray:
    """The embeddings of ``keys``' rows (read shard by shard, only those rows), in key order."""
    emb = None
    for shard in dict.fromkeys(keys.shards.tolist()):
        at = np.flatnonzero(keys.shards == shard)
        at = at[np.argsort(keys.positions[at], kind="stable")]
        _, rows = shard_embeddings(lake, shard, source, keys.positions[at])
        emb = np.zeros((len(keys.hashes), rows.shape[1]), np.float32) if emb is None else emb
        emb[at] = rows
    return emb


def sample_pool(lake: Lake, shards: Sequence[str], source: str, size: int, seed: int) -> Sample:
    """sample_embeddings' sample of the pool, read in two passes: every shard's uids (hashed),
    then the embeddings of the sampled rows only. Rows with a zero embedding are skipped, so the
    candidates are a margin larger than ``size`` (doubled until enough are not zero)."""
    if size < 1:
        raise ValueError(f"curation.centroid_sample must be at least 1, got {size}")
    limit = size + size // 8 + 64
    while True:
        keys, rows = _bottom_keys(lake, shards, source, limit, seed)
        if not len(keys.hashes):
            raise ValueError("no image embeddings to cluster: every shard is empty")
        emb = _candidate_embeddings(lake, keys, source)
        nonzero = np.flatnonzero(np.any(emb != 0, axis=1))
        if len(nonzero) >= size or len(keys.hashes) == rows:
            if not len(nonzero):
                raise ValueError("no image embeddings to cluster: every shard is empty")
            take = nonzero[:size]
            return Sample(keys.hashes[take], keys.uids[take], keys.shards[take], emb[take], rows)
        limit *= 2


# --- k-means and assignment ------------------------------------------------------------------


def train_centroids(sample: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Spherical k-means (faiss) on every sample row, in the order given; (k', d) unit float32
    with k' = min(k, rows)."""
    import faiss

    sample = unit(sample)
    k = max(1, min(k, len(sample)))
    kmeans = faiss.Kmeans(
        sample.shape[1],
        k,
        niter=KMEANS_ITERATIONS,
        seed=seed,
        spherical=True,
        verbose=False,
        max_points_per_centroid=len(sample) // k + 1,  # train on the whole sample
        min_points_per_centroid=1,  # a small pool's k close to its size: no warning
    )
    kmeans.train(sample)
    return np.ascontiguousarray(kmeans.centroids, dtype=np.float32)


def nearest_centroid(
    emb: np.ndarray, centroids: np.ndarray, batch: int = ASSIGN_BATCH
) -> np.ndarray:
    """Index of each row's nearest centroid (largest inner product), searched ``batch`` rows at
    a time; (n,) int64."""
    return nearest_centroids(emb, centroids, 1, batch)[:, 0]


def nearest_centroids(
    emb: np.ndarray, centroids: np.ndarray, k: int, batch: int = ASSIGN_BATCH
) -> np.ndarray:
    """Indexes of each row's ``k`` nearest centroids, the nearest first; (n, k) int64."""
    import faiss

    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    k = min(k, len(centroids))
    out = np.zeros((len(emb), k), np.int64)
    for start in range(0, len(emb), batch):
        _, found = index.search(unit(emb[start : start + batch]), k)
        out[start : start + batch] = found
    return out


# --- exemplars -------------------------------------------------------------------------------


def embed_tars(tars: list[Path], clip) -> np.ndarray:
    """Image embeddings of webdataset tars with a loaded CLIP (the scorer)."""
    from poolsieve.clip.encode import embed_webdataset

    found = embed_webdataset(
        tars, clip.model, clip.preprocess, clip.tokenizer, num_workers=0, device=clip.device
    )
    return found.image_emb


def load_exemplars(
    spec: str, dims: int, source: str, embed: Callable[[list[Path]], np.ndarray]
) -> np.ndarray:
    """Unit exemplar embeddings from ``spec``: an ``.npy`` of (n, dims) embeddings, or a folder
    of webdataset tars that ``embed`` embeds with the scorer (only when clustering the
    scorer's embeddings). An empty spec gives no exemplars (so no exemplar cluster)."""
    if spec.endswith(".npy"):
        emb = np.load(spec, allow_pickle=False)
        if emb.ndim != 2 or emb.shape[1] != dims:
            raise ValueError(
                f"exemplar embeddings {spec}: shape {emb.shape}, but the {source} embeddings "
                f"being clustered are {dims}-d: embed the exemplars with the same model"
            )
        return unit(emb)
    tars = sorted(Path(spec).glob("*.tar")) if spec else []
    if spec and not tars:
        raise FileNotFoundError(f"exemplars {spec}: neither an .npy file nor a folder of .tar")
    if tars and source != "scorer":
        raise ValueError(
            f"exemplars {spec} are webdataset tars, embedded with the scorer, but the clusters "
            f"are of {source} embeddings: set curation.exemplar_dir to an .npy of exemplar "
            f"embeddings made with that model"
        )
    emb = embed(tars) if tars else np.zeros((0, dims), np.float32)
    if emb.shape[1] != dims:
        raise ValueError(f"exemplars {spec}: {emb.shape[1]}-d, clustered embeddings {dims}-d")
    return unit(emb)


# --- the two steps ---------------------------------------------------------------------------


def centroids_dir(lake: Lake) -> Path:
    return lake.path("image_centroids")


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = tmp_path_for(path)
    with open(tmp, "wb") as handle:
        np.save(handle, array)
    commit(tmp, path)


def build_centroids(
    lake: Lake,
    shards: Sequence[str],
    settings: CentroidSettings,
    exemplars: str,
    embed: Callable[[list[Path]], np.ndarray],
) -> CentroidsResult:
    """Sample, train, find the exemplar clusters; write centroids.npy and exemplar_clusters.json."""
    source = check_source(settings.source)
    sample = sample_pool(lake, shards, source, settings.sample, settings.seed)
    centroids = train_centroids(sample.emb, settings.k, settings.seed)
    dims = centroids.shape[1]
    ex = load_exemplars(exemplars, dims, source, embed)
    hit = sorted({int(c) for c in nearest_centroid(ex, centroids)}) if len(ex) else []
    folder = centroids_dir(lake)
    folder.mkdir(parents=True, exist_ok=True)
    _save_npy(folder / CENTROIDS_FILE, centroids)
    doc = {
        "k": len(centroids),
        "clusters": hit,
        "source": source,
        "sample_rows": len(sample.hashes),
        "centroid_sample": settings.sample,
        "pool_rows": sample.rows_read,
        "shards": len(shards),
        "seed": settings.seed,
        "dims": dims,
        "exemplars": exemplars,
        "exemplar_rows": len(ex),
    }
    write_json(folder / EXEMPLARS_FILE, doc)
    return CentroidsResult(
        folder / CENTROIDS_FILE,
        folder / EXEMPLARS_FILE,
        len(centroids),
        dims,
        len(sample.hashes),
        sample.rows_read,
        len(ex),
        len(hit),
    )


def centroid_problem(result: CentroidsResult) -> str:
    """What is wrong with written centroids ('' when none): shape, non-finite or non-unit rows."""
    centroids = np.load(result.centroids, allow_pickle=False)
    if centroids.shape != (result.k, result.dims) or not 1 <= result.k <= result.sample_rows:
        return f"centroids {centroids.shape}, k {result.k}, sample rows {result.sample_rows}"
    norms = np.linalg.norm(centroids, axis=1)
    if not np.all(np.isfinite(norms)) or np.any(np.abs(norms - 1) > 1e-3):
        return f"{int(np.sum(~(np.abs(norms - 1) <= 1e-3)))} centroids are not unit vectors"
    return ""


def read_centroids(lake: Lake, source: str) -> tuple[np.ndarray, dict]:
    """image_centroids' centroids and document; errors say what to materialize."""
    folder = centroids_dir(lake)
    if not (folder / CENTROIDS_FILE).is_file() or not (folder / EXEMPLARS_FILE).is_file():
        raise FileNotFoundError(f"no image centroids in {folder}: materialize image_centroids")
    doc = json.loads((folder / EXEMPLARS_FILE).read_text())
    if doc["source"] != source:
        raise ValueError(
            f"image_centroids were trained on {doc['source']} embeddings but "
            f"curation.cluster_embeddings is {source}: re-materialize image_centroids"
        )
    return np.load(folder / CENTROIDS_FILE, allow_pickle=False), doc


def clusters_table(uids: list[str], emb: np.ndarray, centroids, hit: list[int]) -> pa.Table:
    """uid, image_cluster (NULL for a zero embedding), exemplar_cluster; sorted by uid."""
    cluster = nearest_centroid(emb, centroids)
    present = np.any(emb != 0, axis=1)
    exemplar = np.isin(cluster, np.asarray(hit, np.int64)) & present
    table = pa.table(
        {
            "uid": pa.array(uids, pa.string()),
            "image_cluster": pa.array(cluster.astype(np.int32), pa.int32(), mask=~present),
            "exemplar_cluster": pa.array(exemplar, pa.bool_()),
        }
    )
    return table.sort_by("uid")


def assign_shard(lake: Lake, shard: str, source: str) -> ShardClusters:
    """Write ``shard_clusters/<shard>/clusters.parquet``: every embedded row's nearest centroid."""
    centroids, doc = read_centroids(lake, check_source(source))
    uids, emb = shard_embeddings(lake, shard, source)
    if len(uids) and emb.shape[1] != centroids.shape[1]:
        raise ValueError(
            f"shard {shard!r}: {emb.shape[1]}-d {source} embeddings, centroids are "
            f"{centroids.shape[1]}-d: re-materialize image_centroids"
        )
    table = clusters_table(uids, emb, centroids, doc["clusters"])
    path = lake.partition_dir("shard_clusters", shard) / CLUSTERS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(path)
    pq.write_table(table, tmp)
    commit(tmp, path)
    no_cluster = table["image_cluster"].null_count
    exemplar_rows = int(np.sum(table["exemplar_cluster"].to_numpy(zero_copy_only=False)))
    return ShardClusters(path, table.num_rows, len(uids), no_cluster, exemplar_rows)


# --- legacy: whole-pool clustering in memory ---------------------------------------------------
# TODO(lead): remove once poolsieve/curate/features.py reads shard_clusters instead of calling
# exemplar_clusters (and with it tests/unit/curate/test_curate.py's two exemplar_clusters tests).


@dataclass(frozen=True)
class Clusters:
    pool_cluster: np.ndarray  # (n,) int64 nearest centroid of each pool row
    exemplar_cluster: np.ndarray  # (n,) bool: that centroid is some exemplar's nearest
    k: int
    exemplar_clusters: int  # distinct centroids hit by exemplars


def exemplar_clusters(
    pool: np.ndarray,
    exemplars: np.ndarray,
    k: int,
    seed: int = 0,
    uids: Sequence[str] | None = None,
) -> Clusters:
    """Cluster the whole ``pool`` in memory (rows in uid order when ``uids`` are given)."""
    if uids is None:
        return _pool_clusters(pool, exemplars, k, seed)
    if len(uids) != len(pool):
        raise ValueError(f"{len(uids)} uids for {len(pool)} pool rows")
    order = np.argsort(np.asarray(uids, dtype=str), kind="stable")
    found = _pool_clusters(np.asarray(pool)[order], exemplars, k, seed)
    pool_cluster = np.empty_like(found.pool_cluster)
    pool_cluster[order] = found.pool_cluster
    exemplar_cluster = np.empty_like(found.exemplar_cluster)
    exemplar_cluster[order] = found.exemplar_cluster
    return Clusters(pool_cluster, exemplar_cluster, found.k, found.exemplar_clusters)


def _pool_clusters(pool: np.ndarray, exemplars: np.ndarray, k: int, seed: int) -> Clusters:
    import faiss

    if len(pool) == 0:
        return Clusters(np.zeros(0, np.int64), np.zeros(0, bool), 0, 0)
    pool, exemplars = unit(pool), unit(exemplars)
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
