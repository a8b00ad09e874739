"""pool_features' logic: one DuckDB relation over every shard with every feature a filter may use.

Inputs per shard (each must be materialized; a missing one fails naming the shard and asset):
pool_shard rows, url_dedup decisions, shard_images download status, clip_embeddings, and
eval_decontamination. Computed here: caption language (poolsieve.curate.language) and image
clusters against the exemplar images (poolsieve.curate.clusters; exemplars embedded with the
scorer). The SQL model ``features/pool_features.sql`` joins them.

Writes ``<lake>/pool_features/pool_features.parquet`` (what subsets read) and the table
``pool_features`` in the catalog (for ad-hoc SQL and audits).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from poolsieve.clip.encode import embed_webdataset
from poolsieve.clip.models import LoadedClip
from poolsieve.clip.npz import read_embeddings_parquet
from poolsieve.curate.clusters import exemplar_clusters
from poolsieve.curate.language import detector
from poolsieve.images.decontamination import RESULT_FILE as DECONTAM_FILE
from poolsieve.images.status import STATUS_FILE
from poolsieve.lake import Lake, literal_path, upstream_file
from poolsieve.pool.ingest import write_parquet
from poolsieve.sqlrunner import SqlProject

FEATURE_MODELS = ["pool_features"]
#: source name -> (asset, file) per shard
INPUTS = {
    "rows": ("pool_shard", "rows.parquet"),
    "decisions": ("url_dedup", "decisions.parquet"),
    "download_status": ("shard_images", STATUS_FILE),
    "embeddings": ("clip_embeddings", "embeddings.parquet"),
    "decontamination": ("eval_decontamination", DECONTAM_FILE),
}


@dataclass(frozen=True)
class FeatureSettings:
    language_detector: str = "lingua"
    image_clusters: int = 36  # k of the k-means (DataComp: 100k for its 12.8B pool)
    seed: int = 0


@dataclass
class FeaturesResult:
    path: Path
    rows: int
    eligible: int
    ineligible: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    k: int = 0
    exemplar_clusters: int = 0


def input_files(lake: Lake, shards: list[str]) -> dict[str, list[str]]:
    """Every shard's file of every input; FileNotFoundError lists what is not materialized."""
    files, missing = {name: [] for name in INPUTS}, []
    for name, (asset, file) in INPUTS.items():
        for shard in shards:
            try:
                files[name].append(str(upstream_file(lake, asset, shard, file)))
            except FileNotFoundError:
                missing.append(f"{asset}[{shard}]")
    if not shards or missing:
        raise FileNotFoundError(
            f"pool_features needs every shard's upstream assets; not materialized: {missing}"
            if shards
            else "pool_features: no shards registered"
        )
    return files


def _languages(conn, settings: FeatureSettings) -> pa.Table:
    uids, texts = zip(
        *conn.execute(
            "SELECT r.uid, r.text FROM rows r JOIN decisions d USING (shard, row_idx) "
            "WHERE d.reason IS DISTINCT FROM 'duplicate_uid' ORDER BY r.uid"
        ).fetchall(),
        strict=True,
    )
    found = detector(settings.language_detector)(list(texts))
    return pa.table(
        {
            "uid": list(uids),
            "language": [lang for lang, _ in found],
            "language_confidence": pa.array([p for _, p in found], pa.float32()),
        }
    )


def _clusters(files, clip: LoadedClip, exemplar_tars, settings: FeatureSettings):
    pool = [read_embeddings_parquet(p) for p in files]
    uids = [u for r in pool for u in r.uids]
    emb = np.concatenate([r.image_emb for r in pool]) if uids else np.zeros((0, 1), np.float32)
    exemplars = embed_webdataset(
        exemplar_tars,
        clip.model,
        clip.preprocess,
        clip.tokenizer,
        num_workers=0,
        device=clip.device,
    ).image_emb
    clusters = exemplar_clusters(  # in uid order: the same clusters whatever order files hold
        emb.astype(np.float32),
        exemplars.astype(np.float32),
        settings.image_clusters,
        settings.seed,
        uids=uids,
    )
    table = pa.table(
        {
            "uid": uids,
            "image_cluster": clusters.pool_cluster,
            "exemplar_cluster": clusters.exemplar_cluster,
        }
    )
    return table, clusters


def build_pool_features(
    conn: duckdb.DuckDBPyConnection,
    lake: Lake,
    shards: list[str],
    clip: LoadedClip,
    exemplar_tars: list[Path],
    settings: FeatureSettings = FeatureSettings(),
    project: SqlProject | None = None,
) -> FeaturesResult:
    files = input_files(lake, shards)
    for name, paths in files.items():
        conn.read_parquet([literal_path(p) for p in paths], union_by_name=True).create_view(name)
    languages = _languages(conn, settings)
    cluster_table, clusters = _clusters(files["embeddings"], clip, exemplar_tars, settings)
    conn.register("languages", languages)
    conn.register("image_clusters", cluster_table)
    sources = {name: name for name in [*INPUTS, "languages", "image_clusters"]}
    (project or SqlProject()).run(conn, FEATURE_MODELS, sources)
    conn.execute("CREATE OR REPLACE TABLE main.pool_features AS SELECT * FROM temp.pool_features")
    path = write_parquet(
        conn,
        "SELECT * FROM temp.pool_features ORDER BY shard, row_idx",
        lake.root / "pool_features" / "pool_features.parquet",
    )
    reasons = dict(
        conn.execute(
            "SELECT coalesce(ineligible_reason, 'eligible'), count(*) FROM temp.pool_features GROUP BY 1"
        ).fetchall()
    )
    eligible = reasons.pop("eligible", 0)
    return FeaturesResult(
        Path(path),
        eligible + sum(reasons.values()),
        eligible,
        reasons,
        dict(Counter(languages.column("language").to_pylist()).most_common(10)),
        clusters.k,
        clusters.exemplar_clusters,
    )
