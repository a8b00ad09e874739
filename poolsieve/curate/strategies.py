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

Some parameters name the pool_features column a rule reads (``score_column``, ``language_column``,
``size_source``); the SQL picks the column with a CASE over the bound value, and
:data:`COLUMN_CHOICES` lists the values allowed, checked here with an error naming the YAML. A
subset refuses to run when the column chosen holds no value on any eligible row (a profile made
for another pool: metadata mode has no ``clip_score``, a pool without gcld3 no ``language_cld3``),
instead of dropping every row for a missing value.

The subset file is DataComp's: a numpy structured array of dtype ``u8,u8`` holding
(int(uid[:16], 16), int(uid[16:], 16)) of every kept uid, sorted ascending -- the same order as
sorting the hex strings. DataComp's resharder silently selects the wrong samples from an unsorted
file, so ``write_subset_npy`` always sorts and ``read_subset_npy`` refuses unsorted input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.curate.features import part_files
from poolsieve.lake import Lake, commit, tmp_path_for, write_bytes_atomic
from poolsieve.pool.ingest import write_parquet
from poolsieve.sqlrunner import SqlProject, column_test_failures

FILTER_LAYER = "filters"
DECISIONS_MODEL = "strategy_decisions"
SUBSET_DTYPE = np.dtype("u8,u8")


#: parameters naming the pool_features column a filter reads -> allowed value -> that column
COLUMN_CHOICES: dict[str, dict[str, str]] = {
    "score_column": {c: c for c in ("clip_score", "clip_b32_score", "clip_l14_score")},
    "language_column": {c: c for c in ("language", "language_cld3")},
    "size_source": {"image": "width", "metadata": "meta_width"},
}
#: what to do when a chosen column is empty over the pool
EMPTY_COLUMN_HINTS = {
    "clip_score": "poolsieve's scorer scored no row (metadata mode has no clip_score: use the "
    "pool's clip_b32_score / clip_l14_score, e.g. param_profile datacomp)",
    "clip_b32_score": "the pool's parquet has no clip_b32_similarity_score",
    "clip_l14_score": "the pool's parquet has no clip_l14_similarity_score",
    "language": "no caption language was detected",
    "language_cld3": "gcld3 did not run: set laion_language_detector=gcld3 "
    "(POOLSIEVE_LAION_LANGUAGE_DETECTOR)",
    "width": "no image size is known",
    "meta_width": "the pool's parquet states no sizes (original_width / original_height)",
}


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
        _check_choices(model, own, profile)
        for key, value in own.items():
            if key in params and params[key] != value:
                raise ValueError(
                    f"filter {name}: parameter {key!r} differs between the filters it uses"
                )
            params[key] = value
    return params


def _yaml(model) -> str:
    return str(model.path.with_suffix(".yml"))


def _check_choices(model, own: dict, profile: str) -> None:
    for key, allowed in COLUMN_CHOICES.items():
        if key in own and own[key] not in allowed:
            where = (
                f"profile {profile!r}: "
                if key in model.spec.get("profiles", {}).get(profile, {})
                else ""
            )
            raise ValueError(
                f"{_yaml(model)}: {where}{key} {own[key]!r} is not one of {sorted(allowed)}"
            )


def empty_chosen_columns(
    conn: duckdb.DuckDBPyConnection, project: SqlProject, name: str, params: dict
) -> list[str]:
    """One message per column a choice parameter picks that no eligible pool_features row
    fills ([] when the pool has no eligible row: an empty pool is not a configuration error)."""
    eligible = "FROM pool_features WHERE ineligible_reason IS NULL"
    if not conn.execute(f"SELECT count(*) {eligible}").fetchall()[0][0]:
        return []
    problems = []
    for key, allowed in COLUMN_CHOICES.items():
        if key not in params:
            continue
        column = allowed[params[key]]  # one of a fixed set of names, so safe to quote here
        if not conn.execute(f'SELECT count("{column}") {eligible}').fetchall()[0][0]:
            origin = next(m for m in project.plan([name]) if key in _own_params(m))
            problems.append(
                f"filter {name}: {key} {params[key]!r} ({_yaml(origin)}) reads "
                f"pool_features.{column}, empty on every eligible row: "
                f"{EMPTY_COLUMN_HINTS[column]}"
            )
    return problems


def _own_params(model) -> set[str]:
    return set(model.spec.get("params", {})) | {
        k for p in model.spec.get("profiles", {}).values() for k in p
    }


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
    failures: list[str] = field(default_factory=list)


def build_subset(
    conn: duckdb.DuckDBPyConnection,
    lake: Lake,
    features: Path,
    name: str,
    profile: str = "",
    project: SqlProject | None = None,
) -> SubsetResult:
    """Run filter ``name`` over pool_features (its folder of parts, or one file); write
    decisions.parquet and subset.npy. The decisions are computed once, sorted by uid, and every
    output and count is read from that one table (``SubsetResult.failures``: the YAML tests)."""
    project = project or SqlProject()
    if name not in strategy_names(project):
        raise ValueError(f"unknown strategy {name!r}; known: {strategy_names(project)}")
    parts = part_files(features)
    if not parts:
        raise FileNotFoundError(f"no pool_features at {features}: materialize it first")
    params = strategy_params(project, name, profile)
    conn.read_parquet(parts).create_view("pool_features", replace=True)
    empty = empty_chosen_columns(conn, project, name, params)
    if empty:
        raise ValueError("; ".join(empty))
    sources = {"pool_features": "pool_features", "filter": name}
    project.run(conn, [name, DECISIONS_MODEL], sources, params)
    out = lake.partition_dir("subset", name)
    # the join runs once, into a table; the written file (sorted once) gives the .npy's pairs
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {DECIDED} AS "
        f'SELECT uid, keep, reason FROM "{DECISIONS_MODEL}"'
    )
    decisions = write_parquet(
        conn,
        f"SELECT uid, {KEEP} AS keep, reason FROM {DECIDED} ORDER BY uid",
        out / "decisions.parquet",
    )
    hi, lo, keep = decided_pairs(decisions)
    npy = _write_pairs(out / "subset.npy", hi[keep], lo[keep])
    counts = dict(
        conn.execute(
            f"SELECT coalesce(reason, 'keep'), count(*) FROM {DECIDED} GROUP BY 1"
        ).fetchall()
    )
    counts.pop("keep", None)
    result = SubsetResult(
        name,
        len(keep),
        int(keep.sum()),
        dict(sorted(counts.items())),
        params,
        strategy_hash(project, name, profile),
        {"decisions": Path(decisions), "npy": npy, "summary": out / "summary.json"},
        failures=_test_failures(conn, project, name, hi, lo),
    )
    summary = {
        k: getattr(result, k) for k in ("strategy", "rows", "kept", "reasons", "params", "sql_hash")
    }
    write_bytes_atomic(out / "summary.json", (json.dumps(summary, indent=1) + "\n").encode())
    return result


#: the decisions, materialized once
DECIDED = "_subset_decided"
#: keep as written: DuckDB marks a column it knows holds no NULL (a table's statistics) as
#: required in parquet; decisions.parquet has always had an optional ``keep`` (the same bytes).
#: uid read from the table stays required, as it was when pool_features was one file.
KEEP = "CASE WHEN keep THEN true WHEN NOT keep THEN false END"
#: hex digit (either case) -> its value; 255: not a hex digit
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _digit in "0123456789abcdef":
    _NIBBLE[ord(_digit)] = _NIBBLE[ord(_digit.upper())] = int(_digit, 16)


def decided_pairs(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hi, lo, keep) of a decisions file, in its row order: each uid's two 64-bit halves
    (DataComp's pair), decoded from the 32 hex characters in bulk; a uid of any other form
    fails, named."""
    table = pq.read_table(path, columns=["uid", "keep"])
    uid = pa.concat_arrays([c.cast(pa.large_string()) for c in table.column("uid").chunks])
    uid = uid if len(uid) else pa.array([], pa.large_string())
    offsets = np.frombuffer(uid.buffers()[1], dtype=np.int64)[
        uid.offset : uid.offset + len(uid) + 1
    ]
    lengths = np.diff(offsets)
    digits = np.frombuffer(uid.buffers()[2] or b"", dtype=np.uint8)[offsets[0] : offsets[-1]]
    bad = np.flatnonzero(lengths != 32)
    nibbles = _NIBBLE[digits.reshape(-1, 32)] if not len(bad) and uid.null_count == 0 else None
    if nibbles is None or (nibbles == 255).any():
        row = int(bad[0]) if len(bad) else int(np.flatnonzero((nibbles == 255).any(axis=1))[0])
        raise ValueError(f"{path}: row {row}: uid {uid[row].as_py()!r} is not 32 hex characters")
    halves = []
    for part in (nibbles[:, :16], nibbles[:, 16:]):
        value = np.zeros(len(part), dtype=np.uint64)
        for column in range(16):
            value = (value << np.uint64(4)) | part[:, column].astype(np.uint64)
        halves.append(value)
    keep = table.column("keep").fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    return halves[0], halves[1], keep


def _write_pairs(path: Path, hi: np.ndarray, lo: np.ndarray) -> Path:
    """The subset file from sorted halves (sorted again if they are not)."""
    pairs = np.empty(len(hi), dtype=SUBSET_DTYPE)
    pairs["f0"], pairs["f1"] = hi, lo
    if not is_sorted(pairs):
        pairs = np.sort(pairs, order=["f0", "f1"])
    tmp = tmp_path_for(path)
    with open(tmp, "wb") as handle:
        np.save(handle, pairs)
    commit(tmp, path)
    return path


def _test_failures(conn, project: SqlProject, name: str, hi, lo) -> list[str]:
    """The filter's and the decisions' YAML tests. ``unique`` on uid is checked once, on the
    sorted decisions (adjacent pairs), instead of by hashing every uid twice: the decisions
    join the filter to pool_features (unique uids, its own test) on uid, so when they have as
    many rows as the filter and no repeat, the filter's uids are unique too; otherwise the
    filter's own test runs."""
    repeats = int(np.count_nonzero((hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1])))
    filter_rows = conn.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
    failures = column_test_failures(
        conn, _without_uid_unique(project.model(DECISIONS_MODEL)), DECIDED
    )
    failures = [f.replace(DECIDED, DECISIONS_MODEL) for f in failures]
    if repeats:
        failures.append(f"{DECISIONS_MODEL}.uid: unique failed for {repeats} rows")
    model = project.model(name)
    if filter_rows == len(hi) and not repeats:
        model = _without_uid_unique(model)
    return column_test_failures(conn, model, name) + failures


def _without_uid_unique(model):
    columns = [
        {**c, "tests": [t for t in c.get("tests", []) if t != "unique"]}
        if c.get("name") == "uid"
        else c
        for c in model.spec.get("columns", [])
    ]
    return replace(model, spec={**model.spec, "columns": columns})


def subset_decisions_view(conn, files: list[str], name: str = "subset_decisions") -> None:
    """Every subset's decisions.parquet (``files``: Lake.asset_files("subset", ...)) as one
    relation ``name`` with the strategy taken from its folder; an empty one (uid, keep, reason,
    strategy) when no subset exists yet."""
    if files:
        conn.sql(
            "SELECT *, regexp_extract(filename, '/subset/([^/]+)/decisions.parquet$', 1) "
            "AS strategy FROM read_parquet($files, filename = true)",
            params={"files": files},
        ).create_view(name)
    else:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} "
            "(uid VARCHAR, keep BOOLEAN, reason VARCHAR, strategy VARCHAR)"
        )
