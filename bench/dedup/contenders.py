"""One benchmark contender per process: ``python contenders.py NAME CONFIG.json``.

run.py starts this script once per contender (so each gets its own peak RSS) and reads the JSON
result it writes to ``config["result_path"]``. ``window`` is the timed part as epoch seconds, so
the parent can tell the RSS samples of the timed part from those of an untimed setup; the
child also reports its own peak RSS (``VmHWM``; incremental resets it after its setup).
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path


class Profile:
    """Wall time per phase, and per (phase, step) inside it; a step inside a step is not counted
    again (the outer one holds its time), so the steps of a phase never sum to more than it."""

    def __init__(self):
        self.phases: dict[str, float] = {}
        self.steps: dict[str, list] = {}
        self.current, self._in_step = "-", False

    @contextmanager
    def phase(self, name: str):
        self.current, started = name, time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - started

    @contextmanager
    def step(self, label: str):
        if self._in_step:
            yield
            return
        self._in_step, started = True, time.perf_counter()
        try:
            yield
        finally:
            self._in_step = False
            entry = self.steps.setdefault(f"{self.current}: {label}", [0.0, 0])
            entry[0] += time.perf_counter() - started
            entry[1] += 1

    def as_dict(self) -> dict:
        steps = {k: {"s": round(v[0], 3), "calls": v[1]} for k, v in self.steps.items()}
        for phase, total in self.phases.items():
            inside = [v[0] for k, v in self.steps.items() if k.startswith(f"{phase}: ")]
            if inside:
                rest = round(total - sum(inside), 3)
                steps[f"{phase}: (not in a timed step)"] = {"s": rest, "calls": 1}
        return {"phases": {k: round(v, 3) for k, v in self.phases.items()}, "steps": steps}


# Step labels are best effort: poolsieve's statements change; unknown ones show their first words.
_MODEL = re.compile(r'^\s*CREATE OR REPLACE TEMP (TABLE|VIEW) "([^"]+)"')
_COPY = re.compile(r'^\s*COPY \(.*?FROM "([^"]+)"', re.DOTALL)
_LABELS = [
    # the bucket-partitioned registry (poolsieve/pool/registry.py, poolsieve/pool/dedup.py)
    ('SELECT DISTINCT uid_group FROM "dedup_url_rows_all"', "uid groups to read"),
    ("SELECT DISTINCT url_group", "registry groups of the shard"),
    ("SELECT DISTINCT uid_group", "registry groups of the shard"),
    ('SELECT count(*) FROM "registry_entries"', "registry count"),
    ('INSERT INTO "dedup_url_rows_all"', "collect url rows"),
    ('INSERT INTO "dedup_uid_repeats_all"', "collect uid repeats"),
    # the single-file registry (tests/integration/pool/single_file_registry.py)
    ("INSERT INTO url_registry", "registry insert"),
    ("CREATE TABLE url_registry", "registry ddl"),
    ("SELECT count(*) FROM duckdb_tables()", "registry table check"),
    ("CREATE OR REPLACE TEMP TABLE decided", "build decided (single-file SQL)"),
    ("COPY (SELECT * FROM decided", "write decisions.parquet"),
    # both
    ("-- normalize_url", "define macros (each project.run)"),
    ("INSERT INTO ", "collect group rows"),
    ("COPY (SELECT ", "write registry bucket file"),
    ('SELECT count(*) FROM "', "row counts"),
    ("SELECT reason", "quarantine reason counts"),
    ("SELECT shard, coalesce(reason", "decision counts"),
]


def _label(sql: str) -> str:
    match = _MODEL.match(sql)
    if match:
        kind, name = match.groups()
        return f"build {name}" if kind == "TABLE" else f"define view {name}"
    match = _COPY.match(sql)
    if match:
        return f"COPY {match.group(1)} to parquet"
    text = " ".join(sql.split())
    return next((label for prefix, label in _LABELS if text.startswith(prefix)), text[:30])


class TimedConnection:
    """A DuckDB connection whose execute() calls are timed per statement kind (rest passes on)."""

    def __init__(self, conn, profile: Profile):
        self._conn, self._profile = conn, profile

    def execute(self, sql, *args, **kwargs):
        with self._profile.step(_label(sql)):
            return self._conn.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._conn, name)


# poolsieve helpers timed as one step each, where they exist: (module, function, label of args)
_TIMED_HELPERS = [
    ("poolsieve.pool.ingest", "_write_parquet", lambda args: f"write {args[1]}.parquet"),
    ("poolsieve.pool.dedup", "_write_parquet", lambda args: f"write {args[1]}.parquet"),
    ("poolsieve.pool.dedup", "_write_shard_decisions", lambda args: "write decisions.parquet"),
    ("poolsieve.pool.ingest", "write_parquet", lambda args: f"write {Path(args[2]).name}"),
    ("poolsieve.pool.dedup", "write_parquet", lambda args: f"write {Path(args[2]).name}"),
    ("poolsieve.pool.registry", "_commit_shard", lambda args: "registry commit (files, record)"),
]


def _instrument(profile: Profile) -> None:
    """Wrap the helpers of _TIMED_HELPERS (module attributes) so each call is a profile step."""
    for module_name, func_name, label in _TIMED_HELPERS:
        module = importlib.import_module(module_name)
        original = getattr(module, func_name, None)
        if original is not None:
            setattr(module, func_name, _timed(original, label, profile))


def _timed(func, label, profile: Profile):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with profile.step(label(args)):
            return func(*args, **kwargs)

    return wrapper


def _clock() -> tuple[float, float]:
    """(epoch seconds, CPU seconds of this process, all threads) at the start of a timed part."""
    return time.time(), time.process_time()


def _elapsed(started: tuple[float, float]) -> dict:
    return {
        "window": [started[0], time.time()],
        "cpu_s": round(time.process_time() - started[1], 2),
    }


def _fresh_dir(path: str) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    (Path(path) / "lake").mkdir(parents=True)
    return Path(path)


def _set_partitions(cfg: dict) -> None:
    """A new lake's registry with ``cfg["registry_partitions"]`` bucket groups (None: default)."""
    from poolsieve.lake import Lake
    from poolsieve.pool import registry

    registry.check_layout(Lake(Path(cfg["work_dir"]) / "lake"), cfg.get("registry_partitions"))


def peak_rss_mb() -> int:
    """This process's peak RSS since exec (or since reset_peak_rss), from /proc (Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) // 1024


def reset_peak_rss() -> None:
    """Start a new peak-RSS measurement (writes '5' to /proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def _connect(cfg: dict, database):
    from poolsieve.duck import DuckSettings, connect

    settings = DuckSettings(
        memory_limit=cfg["memory_limit"],
        threads=cfg["threads"],
        temp_directory=str(Path(cfg["work_dir"]) / "duckdb_tmp"),
    )
    return connect(database, settings)


def _poolsieve_run(cfg: dict, shards: list[dict], first_seq: int, profile: Profile) -> dict:
    """connect, ingest ``shards`` (seq from ``first_seq``), decide them, close; phases timed."""
    from poolsieve.lake import Lake
    from poolsieve.pool.dedup import dedup_shards
    from poolsieve.pool.ingest import ingest_shard
    from poolsieve.sqlrunner import SqlProject

    lake, project = Lake(Path(cfg["work_dir"]) / "lake"), SqlProject()
    with profile.phase("connect"):
        conn = TimedConnection(_connect(cfg, lake.catalog), profile)
    with profile.phase("ingest"):
        ingested = [
            ingest_shard(conn, lake, s["key"], first_seq + n, s["path"], project=project)
            for n, s in enumerate(shards)
        ]
    with profile.phase("decide"):
        decided = dedup_shards(conn, lake, [s["key"] for s in shards], project)
    with profile.phase("close"):
        conn.close()
    return {
        "poolsieve_from": str(Path(sys.modules["poolsieve"].__file__).parent),
        "quarantined": sum(r.rows_quarantined for r in ingested),
        "kept": sum(r.rows_kept for r in decided.values()),
        "kept_per_shard": {k: r.rows_kept for k, r in decided.items()},
        "dropped": _sum_reasons(decided.values()),
    }


def _sum_reasons(results) -> dict:
    total: dict[str, int] = {}
    for result in results:
        for reason, count in result.reasons.items():
            total[reason] = total.get(reason, 0) + count
    return total


def _poolsieve_setup(cfg: dict, shards: list[dict]) -> None:
    """Untimed: a registry holding ``shards`` (ingested as by earlier runs; not decided)."""
    from poolsieve.lake import Lake
    from poolsieve.pool.ingest import ingest_shard
    from poolsieve.sqlrunner import SqlProject

    lake, project = Lake(Path(cfg["work_dir"]) / "lake"), SqlProject()
    conn = _connect(cfg, lake.catalog)
    for seq, shard in enumerate(shards):
        ingest_shard(conn, lake, shard["key"], seq, shard["path"], project=project)
    conn.close()


def run_poolsieve(cfg: dict) -> dict:
    """From scratch: ingest every shard, then decide all of them."""
    _fresh_dir(cfg["work_dir"])
    _set_partitions(cfg)
    profile = Profile()
    _instrument(profile)
    started = _clock()
    out = _poolsieve_run(cfg, cfg["shards"], 0, profile)
    return {
        **out,
        **_elapsed(started),
        **profile.as_dict(),
        "rows": sum(s["rows"] for s in cfg["shards"]),
    }


def run_incremental(cfg: dict) -> dict:
    """One new shard against a registry holding all the others; only the new shard is timed."""
    _fresh_dir(cfg["work_dir"])
    _set_partitions(cfg)
    *old, new = cfg["shards"]
    setup_started = time.perf_counter()
    _poolsieve_setup(cfg, old)
    setup_s, setup_peak = time.perf_counter() - setup_started, peak_rss_mb()
    reset_peak_rss()
    profile = Profile()
    _instrument(profile)
    started = _clock()
    out = _poolsieve_run(cfg, [new], len(old), profile)
    return {
        **out,
        **_elapsed(started),
        **profile.as_dict(),
        "rows": new["rows"],
        "setup_s": round(setup_s, 3),
        "setup_peak_rss_mb": setup_peak,
        "registry_rows_before": sum(s["rows"] for s in old),
    }


def run_polars(cfg: dict) -> dict:
    import polars as pl
    from urlnorm_df import polars_with_normalized

    started = _clock()
    kept = (
        polars_with_normalized(pl.scan_parquet([s["path"] for s in cfg["shards"]]))
        .filter(pl.col("url_norm").is_not_null())
        .unique(subset="url_norm", keep="first", maintain_order=False)
        .collect(engine="streaming")
    )
    return {
        "kept": kept.height,
        **_elapsed(started),
        "rows": sum(s["rows"] for s in cfg["shards"]),
    }


def run_pandas(cfg: dict) -> dict:
    import pandas as pd
    from urlnorm_df import pandas_normalize

    profile, started = Profile(), _clock()
    with profile.phase("read"):
        df = pd.read_parquet([s["path"] for s in cfg["shards"]], dtype_backend="pyarrow")
    with profile.phase("normalize"):
        df["url_norm"] = pandas_normalize(df["url"])
    with profile.phase("drop_duplicates"):
        kept = df.dropna(subset=["url_norm"]).drop_duplicates(subset="url_norm", keep="first")
    return {
        "kept": len(kept),
        **_elapsed(started),
        **profile.as_dict(),
        "rows": len(df),
    }


def run_scan(cfg: dict) -> dict:
    _fresh_dir(cfg["work_dir"])
    conn = _connect(cfg, ":memory:")
    started = _clock()
    count = conn.execute(
        "SELECT count(url) FROM read_parquet($p)", {"p": [s["path"] for s in cfg["shards"]]}
    ).fetchone()[0]
    return {
        "kept": None,
        "urls_read": count,
        **_elapsed(started),
        "rows": sum(s["rows"] for s in cfg["shards"]),
    }


# ---------------------------------------------------------------- the single-file registry
# The registry before commit 192bb1d: one DuckDB table of every registered row in the lake's
# catalog, and one dedup statement over it. Both come from the test reference
# tests/integration/pool/single_file_registry.py (imported, not copied); staging (normalize,
# validate, rows.parquet) is poolsieve's own, so only the registry and dedup differ.


def _single_file_module():
    """The test reference module (the repo root on sys.path after the code snapshot)."""
    repo = str(Path(__file__).resolve().parents[2])
    if repo not in sys.path:
        sys.path.append(repo)
    return importlib.import_module("tests.integration.pool.single_file_registry")


class _ExistingTable:
    """A connection for fill_from_lake that skips its CREATE TABLE once the table exists (it
    creates the table on every call; a later shard is added to the same table)."""

    def __init__(self, conn, ddl: str):
        self._conn, self._ddl = conn, ddl

    def execute(self, sql, *args, **kwargs):
        if sql == self._ddl and self._has_table():
            return None
        return self._conn.execute(sql, *args, **kwargs)

    def _has_table(self) -> bool:
        query = "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'url_registry'"
        return self._conn.execute(query).fetchone()[0] > 0


def _single_file_ingest(conn, lake, shards: list[dict], first_seq: int, project, ref) -> int:
    """Stage each shard as poolsieve does, then register its rows in the one table."""
    import pyarrow.parquet as pq

    from poolsieve.pool.ingest import IngestParams, _stage, read_layout

    quarantined = 0
    for n, shard in enumerate(shards):
        layout = read_layout(shard["path"])
        files = _stage(conn, lake, shard["key"], shard["path"], layout, IngestParams(), project)
        quarantined += pq.read_metadata(files["quarantine"]).num_rows
        ref.fill_from_lake(
            _ExistingTable(conn, ref.REGISTRY_DDL), lake, {shard["key"]: first_seq + n}
        )
    return quarantined


def _single_file_run(cfg: dict, shards: list[dict], first_seq: int, profile: Profile) -> dict:
    """connect, ingest ``shards`` into the one table, decide them, close; phases timed."""
    from poolsieve.lake import Lake
    from poolsieve.sqlrunner import SqlProject

    ref = _single_file_module()
    lake, project = Lake(Path(cfg["work_dir"]) / "lake"), SqlProject()
    with profile.phase("connect"):
        conn = TimedConnection(_connect(cfg, lake.catalog), profile)
    with profile.phase("ingest"):
        quarantined = _single_file_ingest(conn, lake, shards, first_seq, project, ref)
    keys = [s["key"] for s in shards]
    with profile.phase("decide"):
        paths = ref.reference_decisions(conn, keys, Path(cfg["work_dir"]) / "decisions")
        counts = conn.execute(
            "SELECT shard, coalesce(reason, 'keep'), count(*) FROM decided GROUP BY ALL"
        ).fetchall()
    with profile.phase("close"):
        conn.close()
    kept_per_shard = {k: 0 for k in keys}
    dropped: dict[str, int] = {}
    for shard, reason, n in counts:
        if reason == "keep":
            kept_per_shard[shard] += n
        else:
            dropped[reason] = dropped.get(reason, 0) + n
    return {
        "quarantined": quarantined,
        "kept": sum(kept_per_shard.values()),
        "kept_per_shard": kept_per_shard,
        "dropped": dropped,
        "decision_files": len(paths),
    }


def run_single_file(cfg: dict) -> dict:
    """From scratch, the single-file registry: ingest every shard, then decide all of them."""
    _fresh_dir(cfg["work_dir"])
    profile = Profile()
    _instrument(profile)
    started = _clock()
    out = _single_file_run(cfg, cfg["shards"], 0, profile)
    return {
        **out,
        **_elapsed(started),
        **profile.as_dict(),
        "rows": sum(s["rows"] for s in cfg["shards"]),
    }


def run_single_file_incremental(cfg: dict) -> dict:
    """One new shard against a single-file registry holding all the others (untimed setup)."""
    _fresh_dir(cfg["work_dir"])
    *old, new = cfg["shards"]
    setup_started = time.perf_counter()
    _single_file_setup(cfg, old)
    setup_s, setup_peak = time.perf_counter() - setup_started, peak_rss_mb()
    reset_peak_rss()
    profile = Profile()
    _instrument(profile)
    started = _clock()
    out = _single_file_run(cfg, [new], len(old), profile)
    return {
        **out,
        **_elapsed(started),
        **profile.as_dict(),
        "rows": new["rows"],
        "setup_s": round(setup_s, 3),
        "setup_peak_rss_mb": setup_peak,
        "registry_rows_before": sum(s["rows"] for s in old),
    }


def _single_file_setup(cfg: dict, shards: list[dict]) -> None:
    """Untimed: a single-file registry holding ``shards`` (ingested, not decided)."""
    from poolsieve.lake import Lake
    from poolsieve.sqlrunner import SqlProject

    lake = Lake(Path(cfg["work_dir"]) / "lake")
    conn = _connect(cfg, lake.catalog)
    _single_file_ingest(conn, lake, shards, 0, SqlProject(), _single_file_module())
    conn.close()


CONTENDERS = {
    "poolsieve": run_poolsieve,
    "polars": run_polars,
    "pandas": run_pandas,
    "scan": run_scan,
    "incremental": run_incremental,
    "single_file": run_single_file,
    "single_file_incremental": run_single_file_incremental,
}


def main(argv: list[str]) -> None:
    name, config_path = argv
    cfg = json.loads(Path(config_path).read_text())
    result = CONTENDERS[name.split("@")[0]](cfg)  # "incremental@16": 16 registry groups
    result["wall_s"] = round(result["window"][1] - result["window"][0], 3)
    result["vm_hwm_mb"] = peak_rss_mb()  # for incremental: since the reset before the timed part
    Path(cfg["result_path"]).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
