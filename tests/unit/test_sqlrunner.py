"""The dbt-like runner: ordering by refs, errors, bound parameters, YAML column tests."""

import duckdb
import pyarrow as pa
import pytest

from poolsieve.images.download import kept_rows
from poolsieve.pool.dedup import dedup_shards
from poolsieve.pool.ingest import ingest_shard
from poolsieve.sqlrunner import (
    SqlProject,
    SqlProjectError,
    column_test_failures,
    file_test_failures,
)
from tests.conftest import row, uid, write_datacomp


def _project(tmp_path, files: dict[str, str]) -> SqlProject:
    for name, text in files.items():
        path = tmp_path / "sql" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return SqlProject(tmp_path / "sql")


def test_models_run_in_ref_order_with_bound_params(tmp_path):
    project = _project(
        tmp_path,
        {
            "marts/c.sql": "SELECT x * 2 AS y FROM {{ ref('b') }}",
            "staging/b.sql": "SELECT x FROM {{ source('raw') }} WHERE x > $min_x",
            "staging/b.yml": "columns:\n  - name: x\n    tests: [unique, not_null]\n",
        },
    )
    conn = duckdb.connect()
    conn.execute("CREATE TABLE raw_numbers AS SELECT * FROM range(5) t(x)")
    built = project.run(conn, ["c"], {"raw": "raw_numbers"}, {"min_x": 2})
    assert built == ["b", "c"]
    assert conn.execute('SELECT y FROM "c" ORDER BY y').fetchall() == [(6,), (8,)]
    assert project.model("b").layer == "staging" and project.model("b").params == ("min_x",)
    assert column_test_failures(conn, project.model("b"), "b") == []


def test_parameter_text_is_never_pasted(tmp_path):
    project = _project(tmp_path, {"a.sql": "SELECT $name AS n"})
    conn = duckdb.connect()
    project.run(conn, ["a"], {}, {"name": "x'; DROP TABLE t; --"})
    assert conn.execute('SELECT n FROM "a"').fetchall() == [("x'; DROP TABLE t; --",)]


@pytest.mark.parametrize(
    ("files", "target", "message"),
    [
        (
            {"a.sql": "SELECT * FROM {{ ref('b') }}", "b.sql": "SELECT * FROM {{ ref('a') }}"},
            "a",
            "ref cycle: a -> b -> a",
        ),
        ({"a.sql": "SELECT * FROM {{ ref('nope') }}"}, "a", "unknown model 'nope'"),
        ({"a.sql": "SELECT * FROM {{ source('raw') }}"}, "a", "needs source 'raw'"),
        ({"a.sql": "SELECT $p"}, "a", "needs parameters ['p']"),
    ],
)
def test_errors_are_clear(tmp_path, files, target, message):
    with pytest.raises(SqlProjectError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _project(tmp_path, files).run(duckdb.connect(), [target], {}, {})


def test_code_version_changes_with_sql_and_params(tmp_path):
    project = _project(
        tmp_path, {"a.sql": "SELECT 1 AS x", "b.sql": "SELECT x FROM {{ ref('a') }}"}
    )
    base = project.code_version(["b"])
    assert project.code_version(["b"], {"t": 0.3}) != base
    (tmp_path / "sql" / "a.sql").write_text("SELECT 2 AS x")
    assert SqlProject(tmp_path / "sql").code_version(["b"]) != base


def test_failing_column_tests_are_reported(tmp_path):
    project = _project(
        tmp_path,
        {
            "a.sql": "SELECT * FROM (VALUES (1, 'x'), (1, NULL), (2, 'bad')) t(id, kind)",
            "a.yml": "columns:\n  - name: id\n    tests: [unique]\n  - name: kind\n    tests:\n"
            "      - not_null\n      - accepted_values: {values: [x]}\n",
        },
    )
    conn = duckdb.connect()
    project.run(conn, ["a"], {}, {})
    assert column_test_failures(conn, project.model("a"), "a") == [
        "a.id: unique failed for 1 rows",
        "a.kind: not_null failed for 1 rows",
        "a.kind: accepted_values failed for 1 rows",
    ]


def test_every_project_model_has_yaml_with_grain():
    project = SqlProject()
    assert project.models, "no models found"
    for model in project.models.values():
        assert model.spec.get("grain"), f"{model.path} has no YAML grain"
        assert model.sql.lstrip().upper().startswith(("SELECT", "WITH", "--")), model.path
        assert model.sql.upper().count("SELECT") >= 1


def test_project_models_pass_their_yaml_tests_on_real_output(tmp_path, conn, lake):
    """Run staging + dedup on a pool with every kind of row, then each model's column tests."""
    rows = [
        row(1),
        row(2, url="ftp://x/a"),
        row(3, uid=None),
        row(4, url="http://img.example.com/1.jpg/"),
    ]
    a = write_datacomp(tmp_path / "a.parquet", rows)
    b = write_datacomp(tmp_path / "b.parquet", [row(1), row(9)])
    ingest_shard(conn, lake, "a", 0, str(a))
    dedup_shards(conn, lake, ["a"])
    ingest_shard(conn, lake, "b", 1, str(b))
    dedup_shards(conn, lake, ["a", "b"])
    project = SqlProject()
    assert kept_rows(conn, lake, "a", project).column("uid").to_pylist() == [uid(1)]  # 4: dup URL
    conn.read_parquet(lake.asset_files("url_dedup", "decisions.parquet")).create_view("decided")
    conn.register("chosen", pa.table({"uid": [uid(1), uid(9)], "strategy": ["s", "t"]}))
    sources = {"decisions": "decided", "subset_uids": "chosen"}
    project.run(conn, ["download_selection"], sources, {"everything": False})
    failures = []
    for name, model in project.models.items():
        if model.layer in (
            "features",
            "filters",
            "subsets",
            "audit",
            "near_duplicates",
            "takedown",
            "health",
        ):  # test_image_assets.py, test_filters.py, test_near_duplicates.py, test_takedown.py,
            # test_pool_health.py (subset_health's check)
            continue
        failures += column_test_failures(conn, model, name)
    assert failures == []


def test_view_materialization_and_its_limits(tmp_path):
    project = _project(
        tmp_path,
        {
            "a.sql": "SELECT 1 AS x",
            "a.yml": "materialized: view\n",
            "b.sql": "SELECT $p AS x",
            "b.yml": "materialized: view\n",
        },
    )
    conn = duckdb.connect()
    project.run(conn, ["a"], {}, {})
    kind = conn.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 'a'")
    assert kind.fetchall() == [("VIEW",)]
    with pytest.raises(SqlProjectError, match="is a view but uses parameters"):
        project.run(conn, ["b"], {}, {"p": 1})


def test_yaml_tests_run_on_the_parquet_a_model_was_written_to(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = tmp_path / "rows.parquet"
    table = {
        "uid": ["a", "a", None],
        "row_idx": [0, 1, 2],
        "url": ["u", "v", "w"],
        "url_norm": ["u", "v", "w"],
    }
    pq.write_table(pa.table(table), rows)
    with duckdb.connect() as conn:
        failures = file_test_failures(conn, SqlProject(), {"pool_shard_rows": rows})
    assert any("uid" in f and "unique" in f for f in failures), failures
    assert any("uid" in f and "not_null" in f for f in failures), failures
    assert not [f for f in failures if "row_idx" in f or "url" in f]


def test_yaml_tests_on_files_leave_the_catalog_and_the_models_relations_alone(tmp_path):
    """On the lake's catalog, beside the model's own TEMP view: no view is written into the
    catalog, the model's relation stays, and failures name the model."""
    rows = tmp_path / "rows.parquet"
    table = {"uid": ["a", "a"], "row_idx": [0, 1], "url": ["u", "v"], "url_norm": ["u", "v"]}
    duckdb.from_arrow(pa.table(table)).write_parquet(str(rows))
    with duckdb.connect(str(tmp_path / "catalog.duckdb")) as conn:
        conn.execute("CREATE TEMP VIEW pool_shard_rows AS SELECT 1 AS model_view")
        failures = file_test_failures(conn, SqlProject(), {"pool_shard_rows": rows})
        assert failures == ["pool_shard_rows.uid: unique failed for 1 rows"]
        assert conn.execute("SELECT * FROM pool_shard_rows").fetchall() == [(1,)]
        stored = conn.execute("SELECT view_name FROM duckdb_views() WHERE NOT temporary").fetchall()
        assert [v for (v,) in stored if "pool_shard" in v or "file_test" in v] == []
