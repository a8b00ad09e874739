"""near_duplicates' logic: near-duplicate images across the pool, by two rules, each naming the
image a dropped one duplicates.

* ``phash`` (Data-Juicer's image deduplicator, with a tolerance): an image whose 64-bit pHash
  (image_hashes) is within ``phash_max_distance`` bits of an EARLIER image's is dropped. Pool
  order is URL dedup's: ``(shard_seq, row_idx)``, so which copy stays never depends on the order
  shards were materialized in. SQL: dbt_like_sql/near_duplicates/.
* ``semantic`` (SemDeDup, Abbas et al. 2023): within each image cluster (shard_clusters: the
  embeddings' nearest k-means centroid), an image whose embedding has cosine similarity at least
  ``semantic_threshold`` with an EARLIER image's is dropped. faiss's exact inner-product range
  search, one cluster at a time. SemDeDup keeps the image farthest from its centroid; poolsieve
  keeps the first in pool order, as every other dedup here, so a decision never changes when a
  later shard arrives.

A dropped image names the earliest such image (``duplicate_of``), which may itself be dropped
(a chain of copies, each a little further off: each names the one it is closest to in order).
These are pool features, not eligibility: a filter decides whether to drop them
(dbt_like_sql/filters/image_and_clip_dedup.sql).

Output: ``<lake>/near_duplicates/<shard>/near_duplicates.parquet`` per shard: one row per
(dropped uid, rule): uid, shard, rule, duplicate_of, distance (Hamming bits for phash, 1 - cosine
for semantic). A shard's file is rewritten only when its content changed, so pool_features
reuses the parts of shards whose near-duplicates did not change.

Memory: pHash rows go through DuckDB (it spills under its memory limit); embeddings are spilled
per cluster to a scratch folder in one pass over the shards, then read back one cluster at a
time, so memory is the largest cluster, not the pool.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.curate.clusters import CLUSTERS_FILE, shard_embeddings
from poolsieve.images.hashes import ASSET as HASHES_ASSET
from poolsieve.images.hashes import HASHES_FILE, PHASH_BITS, phash_block_params
from poolsieve.lake import Lake, literal_path, upstream_file, write_json, write_parquet_if_changed
from poolsieve.sqlrunner import SqlProject, column_test_failures

ASSET = "near_duplicates"
RESULT_FILE = "near_duplicates.parquet"
#: the settings the files were decided with (which rules were on), beside the shards' folders
SETTINGS_FILE = "settings.json"
RULES = ("phash", "semantic")
SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("shard", pa.string()),
        ("rule", pa.string()),
        ("duplicate_of", pa.string()),
        ("distance", pa.float64()),
    ]
)
QUERY_BATCH = 4096  # rows per faiss range search: bounds its result lists
SEMANTIC_FEATURES = ("clip", "pixel")
MAX_PROBES = 16


@dataclass(frozen=True)
class NearDupSettings:
    """``phash_max_distance``: bits (of 64) within which two pHashes match; negative: the rule
    is off. ``semantic_threshold``: cosine similarity from which two embeddings match; 0 (the default):
    off, since it needs a strong CLIP's embeddings (docs/curation.md has the demo's figures).
    ``source``: the embeddings (as curation.cluster_embeddings: the clusters' own)."""

    phash_max_distance: int = 2
    semantic_threshold: float = 0.0
    source: str = "scorer"
    #: what the semantic rule compares: "clip" (the ``source`` embeddings) or "pixel"
    #: (image_hashes' copy features: re-encoded, re-exposed, few-pixel-shifted copies)
    semantic_features: str = "clip"
    #: clusters each image is compared in: its ``semantic_probes`` nearest centroids (1: its
    #: shard_clusters cluster); more find copies a weak CLIP puts near a cluster border
    semantic_probes: int = 1

    def rules_on(self) -> list[str]:
        return [r for r, on in zip(RULES, self.on(), strict=True) if on]

    def on(self) -> tuple[bool, bool]:
        return self.phash_max_distance >= 0, self.semantic_threshold > 0

    def __post_init__(self):
        if self.phash_max_distance > PHASH_BITS // 2:
            raise ValueError(
                f"phash_max_distance {self.phash_max_distance} is over {PHASH_BITS // 2} bits: "
                "unrelated images differ in about half of a pHash's 64 bits"
            )
        if not 0 <= self.semantic_threshold <= 1:
            raise ValueError(f"semantic_threshold {self.semantic_threshold} is not in [0, 1]")
        if self.semantic_features not in SEMANTIC_FEATURES:
            raise ValueError(
                f"semantic_features {self.semantic_features!r} is not one of {SEMANTIC_FEATURES}"
            )
        if not 1 <= self.semantic_probes <= MAX_PROBES:
            raise ValueError(f"semantic_probes {self.semantic_probes} is not in 1..{MAX_PROBES}")


@dataclass
class NearDupResult:
    images: int  # decodable images compared by pHash
    embedded: int  # clustered embeddings compared semantically
    dropped: dict[str, int] = field(default_factory=dict)  # per rule
    clusters: int = 0
    largest_cluster: int = 0
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    without_hashes: list[str] = field(default_factory=list)
    without_clusters: list[str] = field(default_factory=list)
    #: the pHash models' YAML tests, and rows that name themselves ([]: all pass)
    failures: list[str] = field(default_factory=list)


def find_near_duplicates(
    conn: duckdb.DuckDBPyConnection,
    lake: Lake,
    order: dict[str, int],
    settings: NearDupSettings,
    project: SqlProject | None = None,
) -> NearDupResult:
    """Decide both rules over the shards of ``order`` (shard -> shard_seq) and write each
    shard's file."""
    project = project or SqlProject()
    shards = sorted(order, key=order.__getitem__)
    result = NearDupResult(0, 0)
    _phash_duplicates(conn, lake, order, shards, settings, project, result)
    semantic = _semantic_duplicates(lake, order, shards, settings, result)
    conn.register("semantic_duplicates", semantic)
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE near_duplicates AS "
        "SELECT uid, shard, rule, duplicate_of, distance FROM phash_duplicates "
        "UNION ALL SELECT uid, shard, rule, duplicate_of, distance FROM semantic_duplicates"
    )
    counts = conn.execute("SELECT rule, count(*) FROM near_duplicates GROUP BY rule").fetchall()
    result.dropped = {rule: dict(counts).get(rule, 0) for rule in RULES}
    result.failures = _failures(conn, project)
    for shard in shards:
        changed = _write_shard(conn, lake, shard)
        (result.written if changed else result.unchanged).append(shard)
    write_json(
        lake.root / ASSET / SETTINGS_FILE, {**asdict(settings), "rules": settings.rules_on()}
    )
    return result


# ---------------------------------------------------------------- pHash


def _phash_duplicates(conn, lake, order, shards, settings, project, result) -> None:
    """TEMP table phash_duplicates (empty when the rule is off or nothing is hashed)."""
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE all_image_rows (uid VARCHAR, shard VARCHAR, "
        "shard_seq INTEGER, row_idx BIGINT, phash BIGINT)"
    )
    for shard in shards if settings.phash_max_distance >= 0 else []:
        hashes = lake.partition_file(HASHES_ASSET, shard, HASHES_FILE)
        if not hashes.exists():
            result.without_hashes.append(shard)
            continue
        rows = upstream_file(lake, "pool_shard", shard, "rows.parquet")
        conn.read_parquet(literal_path(hashes)).create_view("shard_hashes", replace=True)
        conn.read_parquet(literal_path(rows)).create_view("shard_rows", replace=True)
        sources = {"hashes": "shard_hashes", "rows": "shard_rows"}
        project.run(conn, ["image_rows"], sources, {"shard": shard, "shard_seq": order[shard]})
        conn.execute("INSERT INTO all_image_rows SELECT * FROM image_rows")
    result.images = conn.execute("SELECT count(*) FROM all_image_rows").fetchall()[0][0]
    params = phash_block_params(settings.phash_max_distance)
    project.run(conn, ["phash_duplicates"], {"image_rows": "all_image_rows"}, params)


# ---------------------------------------------------------------- semantic (SemDeDup)


def _semantic_duplicates(lake, order, shards, settings, result) -> pa.Table:
    """The semantic rule's rows (empty when it is off)."""
    if settings.semantic_threshold <= 0:
        return SCHEMA.empty_table()
    (lake.root / "duckdb_tmp").mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="semdedup-", dir=lake.root / "duckdb_tmp"))
    try:
        spill = ClusterSpill(scratch)
        centroids = _probe_centroids(lake, settings)
        for shard in shards:
            spilled = _spill_shard(lake, shard, order[shard], settings, spill, centroids)
            if spilled is None:
                result.without_clusters.append(shard)
            else:
                result.embedded += spilled
        rows = []
        for cluster in spill.clusters():
            members = spill.load(cluster)
            result.largest_cluster = max(result.largest_cluster, len(members.uids))
            rows += cluster_duplicates(members, settings.semantic_threshold)
        result.clusters = len(spill.counts)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return pa.Table.from_pylist(earliest_per_uid(rows), schema=SCHEMA)


def earliest_per_uid(rows: list[dict]) -> list[dict]:
    """One row per dropped uid: the one naming the earliest image in pool order (an image
    compared in several clusters may match in more than one); without the order key."""
    best: dict[str, dict] = {}
    for row in rows:
        if row["uid"] not in best or row["duplicate_key"] < best[row["uid"]]["duplicate_key"]:
            best[row["uid"]] = row
    return [{k: v for k, v in r.items() if k != "duplicate_key"} for r in best.values()]


def _probe_centroids(lake: Lake, settings: NearDupSettings) -> np.ndarray | None:
    """The centroids to find each image's nearest ``semantic_probes`` in (None: 1 probe, the
    shard_clusters cluster)."""
    if settings.semantic_probes == 1:
        return None
    from poolsieve.curate.clusters import read_centroids

    return read_centroids(lake, settings.source)[0]


def _spill_shard(lake: Lake, shard: str, seq: int, settings, spill, centroids) -> int | None:
    """Add the shard's clustered images' features to ``spill``, each row to each of its
    clusters; how many images that was (None when the shard has no clusters yet)."""
    clusters_path = lake.partition_file("shard_clusters", shard, CLUSTERS_FILE)
    if not clusters_path.exists():
        return None
    clusters = pq.read_table(clusters_path, columns=["uid", "image_cluster"]).to_pydict()
    rows_path = upstream_file(lake, "pool_shard", shard, "rows.parquet")
    rows = pq.read_table(rows_path, columns=["uid", "row_idx"])
    row_of = dict(zip(rows["uid"].to_pylist(), rows["row_idx"].to_pylist(), strict=True))
    uids, feats = _features(lake, shard, settings)
    clusters_of = _clusters_of(lake, shard, settings, centroids, clusters, (uids, feats))
    members: dict[int, list[int]] = {}
    for i, uid in enumerate(uids):
        if feats[i].any():  # a zero row: no image to compare
            for cluster in clusters_of.get(uid, ()):
                members.setdefault(int(cluster), []).append(i)
    for cluster, take in sorted(members.items()):
        keys = [(seq << 40) + row_of[uids[i]] for i in take]
        spill.add(cluster, [uids[i] for i in take], shard, keys, feats[take])
    return len({i for take in members.values() for i in take})


def _features(lake: Lake, shard: str, settings) -> tuple[list[str], np.ndarray]:
    """The shard's uids and their unit float32 feature rows for the semantic rule (zero rows
    where an image has none): the ``source`` embeddings, or image_hashes' copy features."""
    if settings.semantic_features != "pixel":
        return shard_embeddings(lake, shard, settings.source)
    from poolsieve.images.hashes import read_copy_features

    uids, feats = read_copy_features(lake, shard)
    feats = feats.astype(np.float32)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return uids, np.divide(feats, norms, out=np.zeros_like(feats), where=norms > 0)


def _clusters_of(lake, shard, settings, centroids, clusters, features) -> dict[str, list]:
    """uid -> its clusters: its shard_clusters cluster, or its nearest ``semantic_probes``
    centroids (of the ``source`` embeddings: ``features`` already when they are those)."""
    clustered = [
        (u, c)
        for u, c in zip(clusters["uid"], clusters["image_cluster"], strict=True)
        if c is not None
    ]
    if centroids is None:
        return {u: [c] for u, c in clustered}
    from poolsieve.curate.clusters import nearest_centroids

    uids, emb = (
        features
        if settings.semantic_features != "pixel"
        else shard_embeddings(lake, shard, settings.source)
    )
    nearest = dict(
        zip(uids, nearest_centroids(emb, centroids, settings.semantic_probes), strict=True)
    )
    return {u: list(nearest[u]) for u, _ in clustered if u in nearest}


@dataclass(frozen=True)
class Members:
    """One cluster's images: uid, shard and pool-order key per row, unit embeddings."""

    uids: list[str]
    shards: list[str]
    keys: np.ndarray
    emb: np.ndarray


class ClusterSpill:
    """Embeddings appended to one file per cluster (raw float32), their rows' uid, shard and
    pool order beside them (JSON lines): written shard by shard, read a cluster at a time."""

    def __init__(self, folder: Path):
        self.folder, self.counts, self.dims = folder, {}, None

    def add(self, cluster: int, uids: list[str], shard: str, keys: list[int], emb) -> None:
        self.dims = emb.shape[1]
        with open(self.folder / f"{cluster}.f32", "ab") as handle:
            np.ascontiguousarray(emb, np.float32).tofile(handle)
        with open(self.folder / f"{cluster}.jsonl", "a") as handle:
            for uid, key in zip(uids, keys, strict=True):
                handle.write(json.dumps([uid, shard, key]) + "\n")
        self.counts[cluster] = self.counts.get(cluster, 0) + len(uids)

    def clusters(self) -> list[int]:
        return sorted(self.counts)

    def load(self, cluster: int) -> Members:
        emb = np.fromfile(self.folder / f"{cluster}.f32", np.float32).reshape(-1, self.dims)
        lines = (self.folder / f"{cluster}.jsonl").read_text().splitlines()
        uids, shards, keys = zip(*(json.loads(line) for line in lines), strict=True)
        return Members(list(uids), list(shards), np.asarray(keys, np.int64), emb)


def cluster_duplicates(members: Members, threshold: float) -> list[dict]:
    """Within one cluster: each image whose cosine similarity with an earlier one (pool order)
    is at least ``threshold``, naming the earliest such image."""
    import faiss

    rank = np.argsort(members.keys, kind="stable")
    emb = np.ascontiguousarray(members.emb[rank])
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    rows = []
    for start in range(0, len(emb), QUERY_BATCH):
        lims, sims, hits = index.range_search(emb[start : start + QUERY_BATCH], threshold)
        for q in range(len(lims) - 1):
            i, found = start + q, slice(lims[q], lims[q + 1])
            earlier = hits[found] < i
            if not earlier.any():
                continue
            j = int(hits[found][earlier].min())
            sim = float(sims[found][hits[found] == j][0])
            me, dup = int(rank[i]), int(rank[j])
            rows.append(
                {
                    "uid": members.uids[me],
                    "shard": members.shards[me],
                    "rule": "semantic",
                    "duplicate_of": members.uids[dup],
                    "distance": max(0.0, 1.0 - sim),
                    "duplicate_key": int(members.keys[dup]),
                }
            )
    return rows


def _failures(conn, project: SqlProject) -> list[str]:
    """The pHash models' YAML column tests, and any row naming itself as its duplicate."""
    failures = column_test_failures(conn, project.model("phash_duplicates"), "phash_duplicates")
    selves = conn.execute(
        "SELECT count(*) FROM near_duplicates WHERE duplicate_of = uid"
    ).fetchall()[0][0]
    return failures + ([f"{selves} near_duplicates rows name themselves"] if selves else [])


# ---------------------------------------------------------------- writing


def _write_shard(conn, lake: Lake, shard: str) -> bool:
    """Write the shard's rows unless its file already holds exactly them; whether it wrote."""
    table = conn.sql(
        "SELECT uid, shard, rule, duplicate_of, distance FROM near_duplicates "
        "WHERE shard = $shard ORDER BY rule, uid",
        params={"shard": shard},
    ).to_arrow_table()
    path = lake.partition_file(ASSET, shard, RESULT_FILE)
    return write_parquet_if_changed(path, table.cast(SCHEMA))
