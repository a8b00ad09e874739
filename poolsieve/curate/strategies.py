"""Strategies: the filters in ``dbt_like_sql/filters/``, each one a SQL model + YAML parameters.

A strategy's name is its file name; adding ``filters/<name>.sql`` (+ ``.yml``) adds a strategy
partition, a subset, a model and a leaderboard row with no Python change. A filter reads the
source ``pool_features`` (and may ``ref`` other filters, e.g. intersections) and returns one row
per uid: ``uid`` and ``reason`` (its own rule's reason to drop; NULL when the rule keeps it).
``subsets/strategy_decisions.sql`` then drops every never-trainable row with its
``ineligible_reason`` first, in one place for all filters. Its parameters come from its YAML
``params`` and those of the filters it refs; a named profile (``profiles: {name: {...}}``, picked
by the curation resource's ``param_profile``) replaces some of them, e.g. ``tiny-cpu`` for a small
pool scored by a tiny CLIP, whose cosines sit higher than OpenAI B/32's. Parameters are always
bound, never pasted into SQL.

The subset file is DataComp's: a numpy structured array of dtype ``u8,u8`` holding
(int(uid[:16], 16), int(uid[16:], 16)) of every kept uid, sorted ascending -- the same order as
sorting the hex strings. DataComp's resharder silently selects the wrong samples from an unsorted
file, so ``write_subset_npy`` always sorts and ``read_subset_npy`` refuses unsorted input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from poolsieve.lake import Lake, commit, literal_path, tmp_path_for, write_bytes_atomic
from poolsieve.pool.ingest import write_parquet
from poolsieve.sqlrunner import SqlProject

FILTER_LAYER = "filters"
DECISIONS_MODEL = "strategy_decisions"
SUBSET_DTYPE = np.dtype("u8,u8")


def strategy_names(project: SqlProject | None = None) -> list[str]:
    return (project or SqlProject()).in_layer(FILTER_LAYER)


def param_profiles(project: SqlProject) -> list[str]:
    """The parameter profiles the filters define (``profiles:`` in their YAML)."""
    models = [project.model(name) for name in strategy_names(project)]
    return sorted({p for model in models for p in model.spec.get("profiles", {})})


def strategy_params(project: SqlProject, name: str, profile: str = "") -> dict:
    """The bound parameters of ``name`` and the filters it refs (conflicting values refused):
    each model's ``params`` with its ``profile`` values on top ("": params only)."""
    if profile and profile not in param_profiles(project):
        raise ValueError(
            f"unknown parameter profile {profile!r} (param_profile); "
            f"the filters define {param_profiles(project)}"
        )
    params: dict = {}
    for model in project.plan([name]):
        own = {
            **model.spec.get("params", {}),
            **model.spec.get("profiles", {}).get(profile, {}),
        }
        for key, value in own.items():
            if key in params and params[key] != value:
                raise ValueError(
                    f"filter {name}: parameter {key!r} differs between the filters it uses"
                )
            params[key] = value
    return params


def strategy_hash(project: SqlProject, name: str, profile: str = "") -> str:
    """What a subset's content depends on: the SQL (and refs, macros) and the bound parameters."""
    return project.code_version([name, DECISIONS_MODEL], strategy_params(project, name, profile))


def uid_pairs(uids: list[str]) -> np.ndarray:
    """uids (32 hex chars) -> sorted ``u8,u8`` array (DataComp's subset format)."""
    pairs = np.array([(int(u[:16], 16), int(u[16:], 16)) for u in uids], dtype=SUBSET_DTYPE)
    return np.sort(pairs, order=["f0", "f1"])


def pairs_to_uids(pairs: np.ndarray) -> list[str]:
    return [f"{int(a):016x}{int(b):016x}" for a, b in pairs.tolist()]


def write_subset_npy(path: Path, uids: list[str]) -> Path:
    tmp = tmp_path_for(path)
    with open(tmp, "wb") as handle:
        np.save(handle, uid_pairs(uids))
    commit(tmp, path)
    return path


def is_sorted(pairs: np.ndarray) -> bool:
    """Ascending by (f0, f1), repeats allowed."""
    a, b = pairs["f0"], pairs["f1"]
    return bool(np.all((a[1:] > a[:-1]) | ((a[1:] == a[:-1]) & (b[1:] >= b[:-1]))))


def read_subset_npy(path: str | Path) -> np.ndarray:
    pairs = np.load(path)
    if pairs.dtype != SUBSET_DTYPE:
        raise ValueError(f"{path}: dtype {pairs.dtype}, expected {SUBSET_DTYPE} (DataComp subset)")
    if not is_sorted(pairs):
        raise ValueError(f"{path}: not sorted; DataComp's resharder would pick the wrong samples")
    return pairs


@dataclass
class SubsetResult:
    strategy: str
    rows: int
    kept: int
    reasons: dict[str, int] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    sql_hash: str = ""
    files: dict[str, Path] = field(default_factory=dict)


def build_subset(
    conn: duckdb.DuckDBPyConnection,
    lake: Lake,
    features_parquet: Path,
    name: str,
    profile: str = "",
    project: SqlProject | None = None,
) -> SubsetResult:
    """Run filter ``name`` over pool_features; write decisions.parquet and subset.npy."""
    project = project or SqlProject()
    if name not in strategy_names(project):
        raise ValueError(f"unknown strategy {name!r}; known: {strategy_names(project)}")
    if not Path(features_parquet).is_file():
        raise FileNotFoundError(f"no pool_features at {features_parquet}: materialize it first")
    params = strategy_params(project, name, profile)
    conn.read_parquet(literal_path(features_parquet)).create_view("pool_features")
    sources = {"pool_features": "pool_features", "filter": name}
    project.run(conn, [name, DECISIONS_MODEL], sources, params)
    out = lake.partition_dir("subset", name)
    decisions = write_parquet(
        conn, f'SELECT * FROM "{DECISIONS_MODEL}" ORDER BY uid', out / "decisions.parquet"
    )
    kept = [
        u for (u,) in conn.execute(f'SELECT uid FROM "{DECISIONS_MODEL}" WHERE keep').fetchall()
    ]
    npy = write_subset_npy(out / "subset.npy", kept)
    counts = dict(
        conn.execute(
            f"SELECT coalesce(reason, 'keep'), count(*) FROM \"{DECISIONS_MODEL}\" GROUP BY 1"
        ).fetchall()
    )
    counts.pop("keep", None)
    result = SubsetResult(
        name,
        len(kept) + sum(counts.values()),
        len(kept),
        dict(sorted(counts.items())),
        params,
        strategy_hash(project, name, profile),
        {"decisions": Path(decisions), "npy": npy, "summary": out / "summary.json"},
    )
    summary = {
        k: getattr(result, k) for k in ("strategy", "rows", "kept", "reasons", "params", "sql_hash")
    }
    write_bytes_atomic(out / "summary.json", (json.dumps(summary, indent=1) + "\n").encode())
    return result
