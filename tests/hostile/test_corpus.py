"""The hostile corpus through ingest and dedup, the real Dagster path (``run_main_job``, the
function behind ``poolsieve run --job ingest_job``), once over one mixed source folder and once
over the good files alone.

For every file: each row read is kept, dropped or quarantined, exactly as the corpus says (so
kept + dropped + quarantined = read), or the file fails its shard with a message naming the file
and the column; the good files' outputs are byte-identical with and without the bad files.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from poolsieve.lake import Lake
from poolsieve.pool.ingest import QUARANTINE_REASONS
from tests.hostile.corpus import KEEP, NOT_SHARDS, corpus, write_corpus

#: one Dagster run per file, two sources: about a minute on 2 free cores, more on a busy machine
pytestmark = pytest.mark.timeout(900)

CORPUS = corpus()
BY_KEY = {f.key: f for f in CORPUS}
KINDS = {kind: f for f in CORPUS for kind in f.kinds}
GOOD = [f.key for f in CORPUS if f.good]
SHARD_FILES = {"pool_shard": ["rows", "quarantine"], "url_dedup": ["decisions"]}


@dataclass
class Run:
    source: Path
    lake: Lake
    home: Path
    status: int
    counts: dict
    stdout: str
    stderr: str

    def files(self, key: str) -> dict[str, Path]:
        return {
            name: self.lake.partition_dir(asset, key) / f"{name}.parquet"
            for asset, names in SHARD_FILES.items()
            for name in names
        }

    def failure_messages(self, key: str) -> list[str]:
        """The step failure messages of ``key``'s runs, from the Dagster instance's event log."""
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}))
            return [
                record.dagster_event.step_failure_data.error.message
                for run in runs
                for record in instance.all_logs(
                    run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
                )
            ]


def _run(root: Path, good_only: bool) -> Run:
    from poolsieve.pipelines.resources import resources_from_env
    from poolsieve.pipelines.runner import run_main_job

    source, lake, home = root / "source", root / "lake", root / "home"
    for folder in (source, home):
        folder.mkdir(parents=True)
    write_corpus(source, good_only)
    fields = {"lake_dir": str(lake), "source": str(source), "duckdb_threads": 2}
    resources = resources_from_env(env={}, lake=fields)
    out, err = io.StringIO(), io.StringIO()
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        patch.setenv("DAGSTER_HOME", str(home))
        status, counts = run_main_job(resources, job_name="ingest_job")
    return Run(source, Lake(lake), home, status, counts, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Run:
    return _run(tmp_path_factory.mktemp("mixed"), good_only=False)


@pytest.fixture(scope="module")
def good_only(tmp_path_factory) -> Run:
    return _run(tmp_path_factory.mktemp("good"), good_only=True)


def _outcomes(run: Run, key: str) -> dict[int, str]:
    """row_idx -> keep / quarantine reason / dedup reason, each row counted once per file."""
    files = run.files(key)
    query = """
        SELECT row_idx, reason FROM read_parquet($q)
        UNION ALL
        SELECT row_idx, coalesce(reason, $keep) FROM read_parquet($d)
    """
    params = {"q": [str(files["quarantine"])], "d": [str(files["decisions"])], "keep": KEEP}
    rows = duckdb.sql(query, params=params).fetchall()
    outcomes = dict(rows)
    assert len(outcomes) == len(rows), f"{key}: a row is both quarantined and decided"
    return outcomes


def test_the_corpus_has_at_least_50_kinds():
    assert len(KINDS) >= 50, sorted(KINDS)
    assert sum(f.fails is not None for f in CORPUS) >= 15
    assert len(GOOD) >= 3


def test_the_run_reports_the_failed_shards_and_counts_every_ingested_row(mixed):
    failed = [f.key for f in CORPUS if f.fails is not None]
    assert mixed.status == 1
    assert f"{len(CORPUS)} shards in" in mixed.stdout  # Spark markers and notes are not shards
    assert f"{len(failed)} shard(s) failed" in mixed.stderr
    ingested = [f for f in CORPUS if f.fails is None]
    quarantined = sum(1 for f in ingested for e in f.expect if e in QUARANTINE_REASONS)
    assert sum(mixed.counts["quarantine"].values()) == quarantined
    assert sum(mixed.counts["dedup"].values()) + quarantined == sum(f.read for f in ingested)
    for name in NOT_SHARDS:
        assert not mixed.lake.partition_dir("pool_shard", name).exists()


@pytest.mark.parametrize("key", [f.key for f in CORPUS])
def test_every_file_is_accounted_for_or_fails_naming_itself(mixed, key):
    source = BY_KEY[key]
    path = str(mixed.source / key)
    if source.fails is not None:
        _assert_failed(mixed, key, path, source.fails)
        return
    outcomes = _outcomes(mixed, key)
    assert sorted(outcomes) == list(range(source.read)), key  # kept + dropped + quarantined = read
    assert [outcomes[i] for i in range(source.read)] == source.expect
    normalized = [e for e in source.expect if e not in QUARANTINE_REASONS]
    assert pq.read_metadata(mixed.files(key)["rows"]).num_rows == len(normalized)
    _assert_values_are_the_sources(mixed, key, path)


def _assert_failed(run: Run, key: str, path: str, column: str):
    assert not run.files(key)["rows"].exists() and not run.files(key)["decisions"].exists()
    messages = run.failure_messages(key)
    assert messages, f"{key}: no step failure recorded"
    named = [
        m
        for m in messages
        if path in m and (not column or f"column {column!r}" in m or f"'{column}'" in m)
    ]
    assert named, (key, messages)
    assert path in run.stderr


def _assert_values_are_the_sources(run: Run, key: str, path: str):
    """Each row's url and text are its own source row's (no look-alike column read instead)."""
    table = pq.ParquetFile(path).read()
    url, text = ("url", "text") if "url" in table.column_names else ("URL", "TEXT")
    source = list(zip(table.column(url).to_pylist(), table.column(text).to_pylist(), strict=True))
    files = run.files(key)
    query = "SELECT row_idx, url, text FROM read_parquet($f) ORDER BY row_idx"
    got = {}
    for name in ("rows", "quarantine"):
        for i, u, t in duckdb.sql(query, params={"f": [str(files[name])]}).fetchall():
            got[i] = (u, t)
    assert [got[i] for i in range(len(source))] == source


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_ends_as_expected(mixed, kind):
    source = KINDS[kind]
    if source.fails is not None:
        _assert_failed(mixed, source.key, str(mixed.source / source.key), source.fails)
        return
    outcomes = _outcomes(mixed, source.key)
    rows = source.kinds[kind]
    assert [outcomes[i] for i in rows] == [source.expect[i] for i in rows]


@pytest.mark.parametrize("key", GOOD)
def test_good_files_outputs_are_byte_identical_without_the_bad_files(mixed, good_only, key):
    assert good_only.status == 0, good_only.stderr
    for name, path in good_only.files(key).items():
        assert mixed.files(key)[name].read_bytes() == path.read_bytes(), (key, name)


def test_no_temporaries_are_left_in_the_lake(mixed):
    leftovers = [p for p in mixed.lake.root.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
