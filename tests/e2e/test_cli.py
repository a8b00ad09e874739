"""The console script, as a user runs it (a subprocess with its own DAGSTER_HOME)."""

import errno
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from poolsieve.curate.strategies import strategy_names
from poolsieve_demo.server import DEFAULT_PORT, free_port, health
from tests.conftest import row, write_datacomp

POOLSIEVE = str(Path(sys.executable).parent / "poolsieve")


def _run(args, tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    return subprocess.run([POOLSIEVE, *args], env=env, capture_output=True, text=True, timeout=1100)


INGEST = ["--job", "ingest_job"]


def test_run_ingests_and_summarizes(tmp_path, source_dir):
    write_datacomp(source_dir / "a.parquet", [row(1), row(2, url="ftp://x.org/y.jpg"), row(3)])
    write_datacomp(source_dir / "b.parquet", [row(10, url="HTTP://IMG.example.com/1.jpg"), row(11)])
    proc = _run(
        ["run", "--source", str(source_dir), "--lake", str(tmp_path / "lake"), *INGEST], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "2 shards" in out
    for label, n in [
        ("rows read", 5),
        ("url_scheme", 1),
        ("duplicate_url", 1),
        (r"kept \(unique URLs\)", 3),
    ]:
        assert re.search(rf"{label}\s+{n}\n", out), out


def test_run_reports_a_bad_shard_and_exits_nonzero(tmp_path, source_dir):
    write_datacomp(source_dir / "a.parquet", [row(1)])
    (source_dir / "z.parquet").write_text("garbage")
    proc = _run(
        ["run", "--source", str(source_dir), "--lake", str(tmp_path / "lake"), *INGEST], tmp_path
    )
    assert proc.returncode == 1
    assert "z.parquet: not a readable parquet file" in proc.stderr
    assert re.search(r"kept \(unique URLs\)\s+1\n", proc.stdout)


@pytest.mark.parametrize("kind", ["one file", "empty folder", "missing"])
def test_run_on_a_source_it_cannot_use_says_why_and_exits_nonzero(tmp_path, source_dir, kind):
    one = write_datacomp(source_dir / "a.parquet", [row(1)])
    source = {"one file": one, "empty folder": tmp_path / "empty", "missing": tmp_path / "nope"}
    (tmp_path / "empty").mkdir()
    args = ["run", "--source", str(source[kind]), "--lake", str(tmp_path / "lake"), *INGEST]
    proc = _run(args, tmp_path)
    assert proc.returncode == 1, proc.stdout
    expected = {
        "one file": "is a file",
        "empty folder": "no *.parquet",
        "missing": "does not exist",
    }
    assert expected[kind] in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_normalize_url_command(tmp_path):
    proc = _run(["normalize-url", "HTTP://A.com:80/x/?utm_source=1", "nope"], tmp_path)
    assert proc.stdout.splitlines() == [
        "HTTP://A.com:80/x/?utm_source=1\thttp://a.com/x",
        "nope\t<unparseable>",
    ]


@pytest.fixture
def default_port_busy():
    """127.0.0.1:8808, the demo's default port, held by the test (as another demo world's server
    would hold it); when something else already holds it, it is busy anyway."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", DEFAULT_PORT))
            sock.listen()
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
        yield DEFAULT_PORT


def test_demo_on_a_busy_default_port_says_which_port_and_how_to_change_it(
    tmp_path, default_port_busy
):
    lake = tmp_path / "lake"
    proc = _run(["demo", "--lake", str(lake), "--job", "ingest_job", "--shards", "1"], tmp_path)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert f"port {default_port_busy}" in proc.stderr and "--port N" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (lake / "demo").exists()  # refused before any work


def test_demo_world_on_another_port_while_the_default_is_busy(tmp_path, default_port_busy):
    from poolsieve_demo.resources import demo_resources
    from poolsieve_demo.world import load_demo_world

    lake, port = tmp_path / "lake", free_port()
    args = ["demo", "--lake", str(lake), "--job", "ingest_job", "--shards", "1"]
    proc = _run([*args, "--rows-per-shard", "40", "--port", str(port)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    world = load_demo_world(lake / "demo" / "world")
    assert world.base_url == f"http://127.0.0.1:{port}"
    urls = pq.read_table(world.shard_paths[0], columns=["url"]).column("url").to_pylist()
    urls = [u for u in urls if u]  # planted problems include missing URLs
    assert sum(f":{port}/" in u for u in urls) > 30
    assert not any(f":{default_port_busy}/" in u for u in urls)
    with demo_resources(lake, env={}).downloader.hosts_up():  # the server runs on the new port
        assert health(world.base_url)["root"] == str(world.root.resolve())
    other = _run([*args, "--port", str(free_port())], tmp_path)  # the URLs cannot change now
    assert other.returncode == 1 and "--port applies to a new world" in other.stderr


# the whole graph at reduced size: 2 shards of 150 rows, each strategy's CLIP sees 256 samples
# (the scorer keeps its default budget: the demo's fixed CLIP-score thresholds assume it)
SMALL_DEMO = ["--shards", "2", "--rows-per-shard", "150", "--train-samples", "256"]


@pytest.mark.slow
@pytest.mark.timeout(1200)  # ~4 min alone on 2 cores: 8 strategies are trained and evaluated
def test_demo_main_job_runs_the_whole_graph_and_prints_the_leaderboard(tmp_path, default_port_busy):
    """On a free port of its own: the default one is held meanwhile (tests never depend on it)."""
    port = ["--port", str(free_port())]
    proc = _run(["demo", "--lake", str(tmp_path / "lake"), *SMALL_DEMO, *port], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "demo ground truth: all counts match" in out
    assert "scorer_job" in out and "no scorer yet" in out
    downloaded = int(re.search(r"downloaded\s+(\d+)\n", out).group(1))
    assert downloaded > 0 and re.search(rf"embedded\s+{downloaded}\n", out)
    assert re.search(r"eval near-duplicates: 100.0% of \d+ planted flagged", out), out
    _every_planted_one_found(out)
    board = out.split("leaderboard (same samples seen and seed for every strategy)")[1]
    rows = [line for line in board.splitlines() if line.startswith("| ") and "strategy" not in line]
    strategies = {r.split("|")[1].strip() for r in rows}
    assert strategies == set(strategy_names())
    assert all(r.split("|")[3].strip() == "256" for r in rows)  # same samples seen for every one
    assert (tmp_path / "lake" / "leaderboard" / "accuracy_vs_size.png").stat().st_size > 1000
    assert (tmp_path / "home" / "dagster.yaml").exists()
    _audit_commands_answer(tmp_path)
    again = _run(["demo", "--lake", str(tmp_path / "lake"), "--job", "shard_job"], tmp_path)
    assert again.returncode == 0 and "all counts match" in again.stdout  # re-run: idempotent
    assert "no scorer yet" not in again.stdout  # the scorer is reused


def _every_planted_one_found(out: str) -> None:
    """The summary's opt-out and aging lines: every planted signal and aged row found, every
    control kept, no false alarm."""
    optouts = re.search(r"opt-out signals: (.*)", out).group(1)
    pairs = re.findall(r"(\w+) (\d+)/(\d+)", optouts)
    assert len(pairs) == 6 and all(found == planted for _, found, planted in pairs), optouts
    assert "0 other rows opted out" in optouts
    aging = re.search(r"pool aging: (.*)", out).group(1)
    pairs = re.findall(r"(\w+) (\d+)/(\d+) found", aging)
    assert len(pairs) == 3 and all(f == p and int(p) > 0 for _, f, p in pairs), aging
    assert "; 0 false alarms" in aging
    assert "pool health: " in out and "still downloadable" in out


def _audit_commands_answer(tmp_path):
    """`poolsieve why` on a 404 row and a kept row; `poolsieve lineage` on a strategy."""
    lake = tmp_path / "lake"
    truth = json.loads((lake / "demo" / "world" / "world_truth.json").read_text())
    dead = next(p["uid"] for p in truth["problems"] if p["kind"] == "http_404")
    why = _run(["why", dead, "--lake", str(lake)], tmp_path)
    assert why.returncode == 0, why.stderr[-2000:]
    assert "download: failed (http_404" in why.stdout
    assert "strategy no_filter: dropped: download_failed" in why.stdout
    assert "decided by shard_images[" in why.stdout
    kept = pq.read_table(lake / "subset" / "no_filter" / "decisions.parquet").to_pylist()
    uid = next(r["uid"] for r in kept if r["keep"])
    one = _run(["why", uid, "--lake", str(lake), "--strategy", "no_filter"], tmp_path)
    assert "strategy no_filter: KEPT" in one.stdout and "strategy basic" not in one.stdout
    assert _run(["why", "f" * 32, "--lake", str(lake)], tmp_path).returncode == 1
    lineage = _run(["lineage", "no_filter"], tmp_path)
    assert lineage.returncode == 0, lineage.stderr[-2000:]
    for step in ("evaluation", "clip_model", "subset", "pool_features", "scorer"):
        assert f"  {step}: run " in lineage.stdout
    assert "samples_seen=256" in lineage.stdout and "sql_hash=" in lineage.stdout
    assert lineage.stdout.count("clip_embeddings[shard_") == 2
    as_json = _run(["lineage", "no_filter", "--json"], tmp_path)
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    assert json.loads(as_json.stdout)["steps"]["clip_model"]["metadata"]["samples_seen"] == 256
    # observes the filters first, with the parameter profile the demo's runs used
    stale = _run(["stale", "--lake", str(lake), "--profile", "tiny-cpu"], tmp_path)
    assert stale.returncode == 0, stale.stderr[-2000:]
    assert "nothing is stale" in stale.stdout, stale.stdout
    import dagster as dg

    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("leaderboard"))
        links = event.asset_materialization.metadata["lineage"].value
    assert "`poolsieve lineage no_filter`" in links and "| no_filter | " in links


def test_main_job_without_a_scorer_stops_with_a_clear_message(tmp_path, source_dir):
    write_datacomp(source_dir / "a.parquet", [row(1), row(2)])
    proc = _run(["run", "--source", str(source_dir), "--lake", str(tmp_path / "lake")], tmp_path)
    assert proc.returncode == 1
    assert "no scorer configured" in proc.stderr
    assert "a.parquet" not in proc.stdout.split("scorer_job")[-1]  # no shard ran


def test_progress_bar_fills_with_the_work_done():
    from poolsieve.pipelines.runner import progress_bar

    assert progress_bar(0, 8) == "[" + "-" * 20 + "]"
    assert progress_bar(2, 8) == "[" + "#" * 5 + "-" * 15 + "]"
    assert progress_bar(8, 8) == "[" + "#" * 20 + "]"


def test_other_packages_add_commands_through_entry_points():
    """`poolsieve demo` comes from poolsieve_demo's entry point; the CLI itself does not know it."""
    from importlib.metadata import entry_points

    from poolsieve.cli import COMMANDS_GROUP, build_parser
    from poolsieve_demo.command import run_demo

    (entry,) = [e for e in entry_points(group=COMMANDS_GROUP) if e.name == "demo"]
    assert entry.value == "poolsieve_demo.command:add_command"
    args = build_parser().parse_args(["demo", "--lake", "L", "--shards", "2"])
    assert args.fn is run_demo and (args.lake, args.shards, args.job) == ("L", 2, "all")
    assert "demo" not in Path(build_parser.__code__.co_filename).read_text().lower()
