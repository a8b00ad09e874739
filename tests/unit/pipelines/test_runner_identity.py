"""`poolsieve run` (run_main_job, in process) on a lake that knows its shards from elsewhere."""

import pytest
from poolsieve.pipelines.resources import resources_from_env
from poolsieve.pipelines.runner import run_main_job

from tests.conftest import row, write_datacomp


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))


def _run(lake, source, **kwargs) -> int:
    fields = {"lake_dir": str(lake.root), "source": str(source), "duckdb_threads": 2}
    return run_main_job(resources_from_env(env={}, lake=fields), "ingest_job", **kwargs)[0]


def test_a_second_source_with_the_same_names_exits_1_naming_both(home, lake, tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    write_datacomp(first / "part-0.parquet", [row(1)])
    write_datacomp(second / "part-0.parquet", [row(2)])
    assert _run(lake, first) == 0
    assert _run(lake, second) == 1
    err = capsys.readouterr().err
    assert "part-0.parquet" in err and str(first) in err and str(second) in err


def test_a_changed_file_fails_its_shard_until_replace_changed(home, lake, source_dir, capsys):
    path = write_datacomp(source_dir / "s.parquet", [row(1)])
    assert _run(lake, source_dir) == 0
    write_datacomp(path, [row(1), row(2)])
    assert _run(lake, source_dir) == 1
    assert "content changed" in capsys.readouterr().err
    assert _run(lake, source_dir, replace_changed=True) == 0
