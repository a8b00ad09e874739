"""pool_features' logic: the union of every shard's features with the pool-wide decisions.

Nothing per row is computed here: caption counts, languages and precomputed scores come from each
shard's ``shard_features`` file (poolsieve.curate.shard_features), image clusters from its
``shard_clusters`` file, so a new shard costs a union, never a recomputation of the others.

Inputs per shard (each must be materialized; a missing one fails naming the shard and asset):
pool_shard rows (url, caption), url_dedup decisions and shard_features; in download mode also
shard_images' download status, clip_embeddings' CLIP score and eval_decontamination. shard_clusters
is read where it is materialized: a shard without it has a NULL ``image_cluster`` and
``exemplar_cluster`` false. In metadata mode (DataComp's filtering track) the download inputs are
not read: their columns are NULL and a row is ineligible only when dedup dropped it. The SQL
model ``features/pool_features.sql`` joins them.

Writes ``<lake>/pool_features/pool_features.parquet`` (what subsets read) and the table
``pool_features`` in the catalog (for ad-hoc SQL and audits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from poolsieve.curate.shard_features import FEATURES_FILE, FeatureSettings, recorded_detectors
from poolsieve.images.decontamination import RESULT_FILE as DECONTAM_FILE
from poolsieve.images.decontamination import RESULT_SCHEMA as DECONTAM_SCHEMA
from poolsieve.images.status import STATUS_FILE, STATUS_SCHEMA
from poolsieve.lake import Lake, literal_path, upstream_file
from poolsieve.pool.ingest import write_parquet
from poolsieve.sqlrunner import SqlProject

__all__ = ["FEATURE_MODELS", "FeatureSettings", "FeaturesResult", "build_pool_features"]

FEATURE_MODELS = ["pool_features"]
#: source name -> (asset, file) per shard: needed in every mode
INPUTS = {
    "rows": ("pool_shard", "rows.parquet"),
    "decisions": ("url_dedup", "decisions.parquet"),
    "features": ("shard_features", FEATURES_FILE),
}
#: needed in download mode only
DOWNLOAD_INPUTS = {
    "download_status": ("shard_images", STATUS_FILE),
    "embeddings": ("clip_embeddings", "embeddings.parquet"),
    "decontamination": ("eval_decontamination", DECONTAM_FILE),
}
#: read for the shards that have it
CLUSTERS = ("shard_clusters", "clusters.parquet")
#: the columns a source gives the model when no shard has its file (metadata mode, no clusters)
EMPTY = {
    "download_status": STATUS_SCHEMA,
    "embeddings": pa.schema([("uid", pa.string()), ("clip_score", pa.float32())]),
    "decontamination": DECONTAM_SCHEMA,
    "clusters": pa.schema(
        [("uid", pa.string()), ("image_cluster", pa.int32()), ("exemplar_cluster", pa.bool_())]
    ),
}


@dataclass
class FeaturesResult:
    path: Path
    rows: int
    eligible: int
    ineligible: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    k: int = 0  # distinct image clusters among the rows
    exemplar_clusters: int = 0  # of which hold an exemplar
    unclustered_shards: list[str] = field(default_factory=list)
    #: (language detector, LAION rule's detector) the shards' features were made with
    detectors: list[tuple[str, str]] = field(default_factory=list)


def input_files(lake: Lake, shards: list[str], mode: str = "download") -> dict[str, list[str]]:
    """Every shard's file of every input the mode needs; FileNotFoundError lists what is not
    materialized."""
    if not shards:
        raise FileNotFoundError("pool_features: no shards registered")
    needed = {**INPUTS, **(DOWNLOAD_INPUTS if mode == "download" else {})}
    files, missing = {name: [] for name in needed}, []
    for name, (asset, file) in needed.items():
        for shard in shards:
            try:
                files[name].append(str(upstream_file(lake, asset, shard, file)))
            except FileNotFoundError:
                missing.append(f"{asset}[{shard}]")
    if missing:
        raise FileNotFoundError(
            f"pool_features needs every shard's upstream assets; not materialized: {missing}"
        )
    return files


def cluster_files(lake: Lake, shards: list[str]) -> tuple[list[str], list[str]]:
    """(files of the shards that have shard_clusters, the shards that do not)."""
    asset, file = CLUSTERS
    paths = {s: lake.partition_dir(asset, s) / file for s in shards}
    found = {s: p for s, p in paths.items() if p.is_file()}
    return [str(p) for p in found.values()], [s for s in shards if s not in found]


def _views(conn: duckdb.DuckDBPyConnection, files: dict[str, list[str]]) -> None:
    """One view per source: the union of its files, or an empty relation of its columns."""
    for name, paths in files.items():
        if paths:
            rel = conn.read_parquet([literal_path(p) for p in paths], union_by_name=True)
            rel.create_view(name)
        else:
            conn.register(name, EMPTY[name].empty_table())


def build_pool_features(
    conn: duckdb.DuckDBPyConnection,
    lake: Lake,
    shards: list[str],
    settings: FeatureSettings,
    project: SqlProject | None = None,
) -> FeaturesResult:
    files = input_files(lake, shards, settings.mode)
    clusters, unclustered = cluster_files(lake, shards)
    _views(conn, {**dict.fromkeys(DOWNLOAD_INPUTS, []), **files, "clusters": clusters})
    sources = {name: name for name in [*INPUTS, *DOWNLOAD_INPUTS, "clusters"]}
    (project or SqlProject()).run(conn, FEATURE_MODELS, sources, {"mode": settings.mode})
    conn.execute("CREATE OR REPLACE TABLE main.pool_features AS SELECT * FROM temp.pool_features")
    path = write_parquet(
        conn,
        "SELECT * FROM temp.pool_features ORDER BY shard, row_idx",
        lake.root / "pool_features" / "pool_features.parquet",
    )
    detectors = sorted({recorded_detectors(p) for p in files["features"]})
    return _summary(conn, Path(path), unclustered, detectors)


def _summary(conn: duckdb.DuckDBPyConnection, path: Path, unclustered: list[str], detectors):
    reasons = dict(
        conn.execute(
            "SELECT coalesce(ineligible_reason, 'eligible'), count(*) FROM temp.pool_features "
            "GROUP BY 1"
        ).fetchall()
    )
    eligible = reasons.pop("eligible", 0)
    languages = conn.execute(
        "SELECT coalesce(language, ''), count(*) FROM temp.pool_features "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
    ).fetchall()
    k, exemplar = conn.execute(
        "SELECT count(DISTINCT image_cluster), "
        "count(DISTINCT image_cluster) FILTER (WHERE exemplar_cluster) FROM temp.pool_features"
    ).fetchall()[0]
    return FeaturesResult(
        path,
        eligible + sum(reasons.values()),
        eligible,
        reasons,
        dict(languages),
        k,
        exemplar,
        unclustered,
        detectors,
    )
