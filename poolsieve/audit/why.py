"""Sample provenance: why is a uid in or out of each subset, and which step versions decided.

``explain_uid(lake, uid, instance)`` reads the lake with the audit SQL models
(``dbt_like_sql/audit/``): every pool row carrying the uid, valid or quarantined (source file,
row, normalized URL), its URL-dedup decision (and the uid it duplicates), download status and
error, CLIP score, decontamination, language, and every strategy's keep/drop with the reason.
With a Dagster instance it adds, from the instance's event log (run id, time, code and data
version of each materialization):

- ``versions``: the latest materialization of each step behind the row facts (the lake holds
  their files now);
- ``decided_by``: per strategy, its subset materialization and the materializations that decision
  actually read (the pool_features it read, the scorer and shard materializations that one read:
  ``poolsieve.audit.events.read_by``), each with ``newer``, the latest materialization of the same
  asset partition when it is not the one read (the decision predates it).

``poolsieve why`` prints it.
"""

from __future__ import annotations

import duckdb

from poolsieve.audit.events import (
    Materialization,
    latest_materialization,
    latest_record,
    newer_than,
    read_by,
)
from poolsieve.curate.features import part_files
from poolsieve.curate.strategies import subset_decisions_view
from poolsieve.images.decontamination import RESULT_FILE as DECONTAM_FILE
from poolsieve.images.optout.check import SIGNALS_FILE
from poolsieve.images.status import STATUS_FILE
from poolsieve.lake import SHARD_ASSETS, Lake
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
    "optout_signals": (
        "shard_images",
        SIGNALS_FILE,
        "uid VARCHAR, signal VARCHAR, answer VARCHAR, detail VARCHAR, seen_at TIMESTAMPTZ",
    ),
    "embeddings": ("clip_embeddings", "embeddings.parquet", "uid VARCHAR, clip_score FLOAT"),
    "decontamination": (
        "eval_decontamination",
        DECONTAM_FILE,
        "uid VARCHAR, max_similarity FLOAT, nearest_eval VARCHAR, flagged BOOLEAN",
    ),
}
FEATURES_COLUMNS = (
    "shard VARCHAR, row_idx BIGINT, language VARCHAR, ineligible_reason VARCHAR, "
    "phash_duplicate_of VARCHAR, phash_distance INTEGER, semantic_duplicate_of VARCHAR, "
    "semantic_similarity FLOAT, removed_by_list VARCHAR, removed_by_entry BIGINT, "
    "removed_matched_on VARCHAR, removed_reference VARCHAR"
)


def _view(conn, name: str, files: list[str], columns: str) -> None:
    if files:
        conn.read_parquet(files, union_by_name=True).create_view(name)
    else:  # nothing materialized yet: an empty relation with the columns the models read
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({columns})")


def _register(conn, lake: Lake) -> None:
    for name, (asset, file, columns) in SOURCES.items():
        files = lake.asset_files(asset, file)
        if name in ("download_status", "optout_signals"):  # metadata mode: selected_images
            files += lake.asset_files("selected_images", file)
        _view(conn, name, files, columns)
    _view(conn, "pool_features", part_files(lake.path("pool_features")), FEATURES_COLUMNS)
    subset_decisions_view(conn, lake.asset_files("subset", "decisions.parquet"))


def _records(conn, relation: str) -> list[dict]:
    rel = conn.table(relation)
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def explain_uid(lake: Lake, uid: str, instance=None, project: SqlProject | None = None) -> dict:
    """Everything the lake (and the instance, if given) knows about ``uid``; see the module doc."""
    project = project or SqlProject()
    with duckdb.connect() as conn:
        _register(conn, lake)
        sources = {n: n for n in [*SOURCES, "pool_features", "subset_decisions"]}
        models = ["uid_occurrences", "uid_strategies", "uid_optout_signals"]
        project.run(conn, models, sources, {"uid": uid})
        doc = {
            "uid": uid,
            "occurrences": _records(conn, "uid_occurrences"),
            "strategies": _records(conn, "uid_strategies"),
            "optout_signals": _records(conn, "uid_optout_signals"),
        }
    if instance is not None:
        doc["versions"] = step_versions(instance, doc)
        shards = sorted({o["shard"] for o in doc["occurrences"]})
        doc["decided_by"] = {
            s["strategy"]: decided_by(instance, s["strategy"], shards) for s in doc["strategies"]
        }
    return doc


def step_versions(instance, doc: dict) -> dict[str, dict | None]:
    """The latest materialization of each step behind the row facts (what the lake holds now)."""
    shards = sorted({o["shard"] for o in doc["occurrences"]})
    versions = {
        f"{a}[{s}]": latest_materialization(instance, a, s) for s in shards for a in SHARD_ASSETS
    }
    versions |= {a: latest_materialization(instance, a, None) for a in ("scorer", "pool_features")}
    return versions


def _plain(record: Materialization | None) -> dict | None:
    return record.to_dict(metadata=False) if record else None


def _read(instance, reader: Materialization, asset: str, partition: str | None = None) -> dict:
    read = read_by(instance, reader, asset, partition)
    return {"read": _plain(read), "newer": _plain(newer_than(instance, read, asset, partition))}


def decided_by(instance, strategy: str, shards: list[str]) -> dict:
    """The subset materialization that decided ``strategy`` and what it read (see the module
    doc): ``{"subset": ..., "read": {step: {"read": ..., "newer": ...}}}``."""
    subset = latest_record(instance, "subset", strategy)
    if subset is None:
        return {"subset": None, "read": {}}
    features = read_by(instance, subset, "pool_features")
    read = {"pool_features": _read(instance, subset, "pool_features")}
    if features is not None:
        read["scorer"] = _read(instance, features, "scorer")
        read |= {f"{a}[{s}]": _read(instance, features, a, s) for s in shards for a in SHARD_ASSETS}
    return {"subset": _plain(subset), "read": read}


def _download_error(o: dict) -> str:
    """`` (category: message)``, the category said once (the guard's messages start with it)."""
    error, message = o["download_error"], o["download_message"] or ""
    if not error:
        return ""
    return f" ({error}: {message.removeprefix(f'{error}: ')})"


def _occurrence_lines(o: dict) -> list[str]:
    lines = [f"  row {o['row_idx']} of {o['shard']}: {o['url']}"]
    if o["quarantine_reason"]:
        return [*lines, f"    quarantined: {o['quarantine_reason']} ({o['quarantine_detail']})"]
    lines.append(f"    normalized URL: {o['url_norm']}")
    if not o["dedup_keep"]:
        dropped = f"    dropped by URL dedup: {o['dedup_reason']} of uid {o['duplicate_of']}"
        return [*lines, dropped, *_removal_lines(o)]
    lines.append("    kept by URL dedup")
    status = o["download_status"] or "not downloaded yet"
    lines.append(f"    download: {status}{_download_error(o)}")
    if o["clip_score"] is not None:
        lines.append(f"    CLIP score {o['clip_score']:.4f}; caption language {o['language']}")
    if o["eval_near_duplicate"] is not None:
        flag = "FLAGGED as" if o["eval_near_duplicate"] else "not"
        lines.append(
            f"    {flag} an eval near-duplicate (max similarity "
            f"{o['eval_max_similarity']:.3f} to {o['nearest_eval']})"
        )
    return lines + _near_duplicate_lines(o) + _removal_lines(o)


def _removal_lines(o: dict) -> list[str]:
    """The takedown or hash list entry that removed the row (the first, when several did)."""
    if not o.get("removed_by_list"):
        return []
    reference = f", reference {o['removed_reference']}" if o["removed_reference"] else ""
    return [
        f"    REMOVED by takedown list {o['removed_by_list']!r} entry {o['removed_by_entry']} "
        f"(matched on {o['removed_matched_on']}{reference})"
    ]


def _near_duplicate_lines(o: dict) -> list[str]:
    """The earlier images near_duplicates found this one a copy of (filters may drop it)."""
    lines = []
    if o.get("phash_duplicate_of"):
        lines.append(
            f"    near-duplicate image of uid {o['phash_duplicate_of']} (pHash "
            f"{o['phash_distance']} bits apart)"
        )
    if o.get("semantic_duplicate_of"):
        lines.append(
            f"    semantic duplicate of uid {o['semantic_duplicate_of']} (embedding cosine "
            f"{o['semantic_similarity']:.3f})"
        )
    return lines


def _signal_lines(signals: list[dict]) -> list[str]:
    """The opt-out signals checked when the image was downloaded, each with its answer."""
    if not signals:
        return []
    lines = ["  opt-out signals checked at download:"]
    for s in signals:
        answer = "OPTED OUT" if s["answer"] == "disallowed" else s["answer"]
        detail = f": {s['detail']}" if s["detail"] else ""
        lines.append(
            f"    {s['signal']}: {answer}{detail} (seen {s['seen_at']:%Y-%m-%d %H:%M:%S %Z})"
        )
    return lines


def _version(m: dict) -> str:
    return f"run {m['run_id'][:8]}, code {m['code_version']}, data {str(m['data_version'])[:12]}"


def _decision_lines(strategy: str, decision: dict) -> list[str]:
    """The subset behind a verdict, what it read (pool_features), what that read, and the newer
    materializations the decision did not read."""
    if decision["subset"] is None:
        return []
    lines = [f"    decided by subset[{strategy}]: {_version(decision['subset'])}"]
    for step, entry in decision["read"].items():
        indent = "      " if step == "pool_features" else "        "
        seen = _version(entry["read"]) if entry["read"] else "nothing (not materialized then)"
        lines.append(f"{indent}which read {step}: {seen}")
        if entry["newer"]:
            lines.append(
                f"{indent}  a newer {step} exists, not read by this decision: "
                f"{_version(entry['newer'])}"
            )
    return lines


def format_explanation(doc: dict, strategy: str | None = None) -> str:
    lines = [f"uid {doc['uid']}"]
    if not doc["occurrences"]:
        return lines[0] + ": not in any ingested shard of this lake"
    for o in doc["occurrences"]:
        lines += _occurrence_lines(o)
    lines += _signal_lines(doc.get("optout_signals", []))
    chosen = [s for s in doc["strategies"] if strategy in (None, s["strategy"])]
    if strategy and not chosen:
        lines.append(
            f"  strategy {strategy}: not decided (no subset materialized, or uid not in the pool)"
        )
    for s in chosen:
        verdict = "KEPT" if s["keep"] else f"dropped: {s['reason']}"
        lines.append(f"  strategy {s['strategy']}: {verdict}")
        decision = doc.get("decided_by", {}).get(s["strategy"], {"subset": None})
        lines += _decision_lines(s["strategy"], decision)
    versions = {step: v for step, v in doc.get("versions", {}).items() if v}
    if versions:
        lines.append("  the row facts above: the lake's files of the latest materializations")
    lines += [f"    decided by {step}: {_version(v)}" for step, v in versions.items()]
    return "\n".join(lines)
