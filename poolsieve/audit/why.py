"""Sample provenance: why is a uid in or out of each subset, and which step versions decided.

``explain_uid(lake, uid, instance)`` reads the lake with the audit SQL models
(``dbt_like_sql/audit/``): every pool row carrying the uid, valid or quarantined (source file,
row, normalized URL), its URL-dedup decision (and the uid it duplicates), download status and
error, CLIP score, decontamination, language, and every strategy's keep/drop with the reason.
With a Dagster instance it adds, per step, the materialization that decided (run id, time,
code version, data version) from the instance's event log. ``poolsieve why`` prints it.
"""

from __future__ import annotations

import duckdb

from poolsieve.audit.events import latest_materialization
from poolsieve.images.decontamination import RESULT_FILE as DECONTAM_FILE
from poolsieve.images.status import STATUS_FILE
from poolsieve.lake import SHARD_ASSETS, Lake, literal_path
from poolsieve.sqlrunner import SqlProject

#: source -> (asset, file, columns of an empty stand-in when nothing is materialized yet)
SOURCES = {
    "rows": (
        "pool_shard",
        "rows.parquet",
        "uid VARCHAR, shard VARCHAR, row_idx BIGINT, url VARCHAR, url_norm VARCHAR, text VARCHAR",
    ),
    "quarantine": (
        "pool_shard",
        "quarantine.parquet",
        "uid VARCHAR, shard VARCHAR, row_idx BIGINT, url VARCHAR, text VARCHAR, "
        "reason VARCHAR, reason_detail VARCHAR",
    ),
    "decisions": (
        "url_dedup",
        "decisions.parquet",
        "shard VARCHAR, row_idx BIGINT, keep BOOLEAN, reason VARCHAR, duplicate_of VARCHAR",
    ),
    "download_status": (
        "shard_images",
        STATUS_FILE,
        "uid VARCHAR, status VARCHAR, error_category VARCHAR, error_message VARCHAR",
    ),
    "embeddings": ("clip_embeddings", "embeddings.parquet", "uid VARCHAR, clip_score FLOAT"),
    "decontamination": (
        "eval_decontamination",
        DECONTAM_FILE,
        "uid VARCHAR, max_similarity FLOAT, nearest_eval VARCHAR, flagged BOOLEAN",
    ),
}
FEATURES_COLUMNS = "shard VARCHAR, row_idx BIGINT, language VARCHAR, ineligible_reason VARCHAR"


def _view(conn, name: str, files: list[str], columns: str) -> None:
    if files:
        conn.read_parquet(files, union_by_name=True).create_view(name)
    else:  # nothing materialized yet: an empty relation with the columns the models read
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({columns})")


def _register(conn, lake: Lake) -> None:
    for name, (asset, file, columns) in SOURCES.items():
        _view(conn, name, lake.asset_files(asset, file), columns)
    features = lake.root / "pool_features" / "pool_features.parquet"
    _view(
        conn,
        "pool_features",
        [literal_path(features)] if features.is_file() else [],
        FEATURES_COLUMNS,
    )
    subsets = lake.asset_files("subset", "decisions.parquet")
    if subsets:
        conn.sql(
            "SELECT *, regexp_extract(filename, '/subset/([^/]+)/decisions.parquet$', 1) AS strategy "
            "FROM read_parquet($files, filename = true)",
            params={"files": subsets},
        ).create_view("subset_decisions")
    else:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE subset_decisions "
            "(uid VARCHAR, keep BOOLEAN, reason VARCHAR, strategy VARCHAR)"
        )


def _records(conn, relation: str) -> list[dict]:
    rel = conn.table(relation)
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def explain_uid(lake: Lake, uid: str, instance=None, project: SqlProject | None = None) -> dict:
    """Everything the lake (and the instance, if given) knows about ``uid``; see the module doc."""
    project = project or SqlProject()
    with duckdb.connect() as conn:
        _register(conn, lake)
        sources = {n: n for n in [*SOURCES, "pool_features", "subset_decisions"]}
        project.run(conn, ["uid_occurrences", "uid_strategies"], sources, {"uid": uid})
        doc = {
            "uid": uid,
            "occurrences": _records(conn, "uid_occurrences"),
            "strategies": _records(conn, "uid_strategies"),
        }
    if instance is not None:
        doc["versions"] = step_versions(instance, doc)
    return doc


def step_versions(instance, doc: dict) -> dict[str, dict | None]:
    shards = sorted({o["shard"] for o in doc["occurrences"]})
    versions = {
        f"{a}[{s}]": latest_materialization(instance, a, s) for s in shards for a in SHARD_ASSETS
    }
    versions |= {a: latest_materialization(instance, a, None) for a in ("scorer", "pool_features")}
    versions |= {
        f"subset[{s['strategy']}]": latest_materialization(instance, "subset", s["strategy"])
        for s in doc["strategies"]
    }
    return versions


def _occurrence_lines(o: dict) -> list[str]:
    lines = [f"  row {o['row_idx']} of {o['shard']}: {o['url']}"]
    if o["quarantine_reason"]:
        return [*lines, f"    quarantined: {o['quarantine_reason']} ({o['quarantine_detail']})"]
    lines.append(f"    normalized URL: {o['url_norm']}")
    if not o["dedup_keep"]:
        return [*lines, f"    dropped by URL dedup: {o['dedup_reason']} of uid {o['duplicate_of']}"]
    lines.append("    kept by URL dedup")
    status = o["download_status"] or "not downloaded yet"
    error = f" ({o['download_error']}: {o['download_message']})" if o["download_error"] else ""
    lines.append(f"    download: {status}{error}")
    if o["clip_score"] is not None:
        lines.append(f"    CLIP score {o['clip_score']:.4f}; caption language {o['language']}")
    if o["eval_near_duplicate"] is not None:
        flag = "FLAGGED as" if o["eval_near_duplicate"] else "not"
        lines.append(
            f"    {flag} an eval near-duplicate (max similarity "
            f"{o['eval_max_similarity']:.3f} to {o['nearest_eval']})"
        )
    return lines


def format_explanation(doc: dict, strategy: str | None = None) -> str:
    lines = [f"uid {doc['uid']}"]
    if not doc["occurrences"]:
        return lines[0] + ": not in any ingested shard of this lake"
    for o in doc["occurrences"]:
        lines += _occurrence_lines(o)
    chosen = [s for s in doc["strategies"] if strategy in (None, s["strategy"])]
    if strategy and not chosen:
        lines.append(
            f"  strategy {strategy}: not decided (no subset materialized, or uid not in the pool)"
        )
    for s in chosen:
        verdict = "KEPT" if s["keep"] else f"dropped: {s['reason']}"
        lines.append(f"  strategy {s['strategy']}: {verdict}")
    for step, version in doc.get("versions", {}).items():
        if version:
            lines.append(
                f"  decided by {step}: run {version['run_id'][:8]}, code "
                f"{version['code_version']}, data {str(version['data_version'])[:12]}"
            )
    return "\n".join(lines)
