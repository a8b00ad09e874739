"""The lake's paths: literal file names for DuckDB, partitions without a crash's leftovers."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poolsieve.audit.report import lake_counts
from poolsieve.lake import Lake, literal_path


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("/lake/a.parquet", "/lake/a.parquet"),
        ("/src/part-*.parquet", "/src/part-[*].parquet"),
        ("/src/a?b[1].parquet", "/src/a[?]b[[]1].parquet"),
        ("s3://bucket/d{1,2}.parquet", "s3://bucket/d{1,2}.parquet"),
    ],
)
def test_literal_path_escapes_exactly_the_glob_characters(path, pattern):
    assert literal_path(path) == pattern


def _write(path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table({"reason": [None] * rows}, schema=pa.schema([("reason", pa.string())])), path
    )


def test_hidden_temporary_folders_are_not_partitions(tmp_path):
    lake = Lake(tmp_path / "lake[1]")  # a glob character in the lake's own path, too
    _write(lake.partition_dir("pool_shard", "s0.parquet") / "rows.parquet", 3)
    _write(lake.root / "pool_shard" / ".s0.parquet.0123abcd.tmp" / "rows.parquet", 5)
    files = lake.asset_files("pool_shard", "rows.parquet")
    assert len(files) == 1
    assert duckdb.sql("SELECT count(*) FROM read_parquet($p)", params={"p": files}).fetchall() == [
        (3,)
    ]
    assert lake_counts(lake.root)["dedup"]["keep"] == 3
    assert lake.asset_files("url_dedup", "decisions.parquet") == []


def _dead_pid() -> int:
    """A pid no process has (pids above the kernel's pid_max are never handed out)."""
    return int(open("/proc/sys/kernel/pid_max").read()) + 1


def test_sweep_removes_temporaries_of_gone_writers_and_keeps_live_ones(tmp_path):
    import os
    import time

    from poolsieve.lake import _host_tag, sweep_temporaries, tmp_path_for

    lake = Lake(tmp_path / "lake")
    final = lake.partition_dir("shard_images", "s.parquet")
    live = tmp_path_for(final)  # this process: alive
    live.mkdir(parents=True)
    dead = final.with_name(f".s.parquet.{_host_tag()}-{_dead_pid()}.{'a' * 32}.tmp")
    (dead / "00000").mkdir(parents=True)
    dead_file = (
        lake.partition_dir("url_dedup", "s.parquet")
        / f".d.parquet.{_host_tag()}-{_dead_pid()}.{'b' * 32}.tmp"
    )
    dead_file.parent.mkdir(parents=True)
    dead_file.write_bytes(b"half")
    old_unnamed = final.with_name(f".s.parquet.{'c' * 32}.tmp")  # a name from before writers
    old_unnamed.mkdir()
    hour_ago = time.time() - 7 * 3600
    os.utime(old_unnamed, (hour_ago, hour_ago))
    young_other_host = final.with_name(f".s.parquet.ffffffff-1.{'d' * 32}.tmp")
    young_other_host.mkdir()
    removed = sweep_temporaries(lake.root)
    assert sorted(removed) == sorted([dead, dead_file, old_unnamed])
    assert live.exists() and young_other_host.exists() and not dead.exists()


def test_selection_summary_counts_the_selection_downloads_by_outcome(tmp_path):
    from poolsieve.audit.report import selection_summary
    from poolsieve.images.status import STATUS_FILE

    lake = Lake(tmp_path)
    for shard, errors in [("a.parquet", [None, None, "http_404"]), ("b.parquet", ["timeout"])]:
        folder = lake.partition_dir("selected_images", shard)
        folder.mkdir(parents=True)
        table = pa.table(
            {
                "uid": [f"{shard}{i}" for i in range(len(errors))],
                "error_category": pa.array(errors, pa.string()),
            }
        )
        pq.write_table(table, folder / STATUS_FILE)
    lines = [line.split() for line in selection_summary(lake.root).splitlines() if line.strip()]
    assert ["selected", "4"] in lines and ["downloaded", "2"] in lines
    assert ["download", "failed", "2"] in lines and ["http_404", "1"] in lines
