"""Adding a filter file adds a strategy, seen by a fresh process (a real subprocess)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from poolsieve.sqlrunner import SqlProject
from tests.repo import REPO_ROOT
from tests.unit.curate.test_strategies import _decide


def test_a_new_filter_file_is_a_new_strategy(tmp_path):
    """Copy the SQL project, add one filter (SQL + YAML), and load the code location on it."""
    sql_dir = tmp_path / "sql"
    shutil.copytree(REPO_ROOT / "dbt_like_sql", sql_dir)
    (sql_dir / "filters" / "long_captions.sql").write_text(
        "SELECT uid, reason IS NULL AS keep, reason FROM (SELECT uid, CASE WHEN "
        "ineligible_reason IS NOT NULL THEN ineligible_reason WHEN caption_words < $min_words "
        "THEN 'caption_too_short' END AS reason FROM {{ source('pool_features') }})\n"
    )
    (sql_dir / "filters" / "long_captions.yml").write_text("params:\n  min_words: 6\n")
    code = (
        "from poolsieve.pipelines.partitions import STRATEGIES; from poolsieve.pipelines.definitions import defs;"
        "print(STRATEGIES.get_partition_keys());"
        "print(defs.resolve_assets_def('subset').partitions_def.get_partition_keys())"
    )
    env = {**os.environ, "POOLSIEVE_SQL_DIR": str(sql_dir)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("'long_captions'") == 2
    project = SqlProject(sql_dir)
    decided = _decide(tmp_path, "long_captions", project=project)
    assert decided[1] is None and decided[10] == "caption_too_short"
