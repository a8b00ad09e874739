"""SIGKILL during training, download and embedding, then re-runs: the outputs of a clean run, and
nothing left behind.

One small demo world (1 shard of 60 rows, a few slow images, a 256-sample scorer, 64 samples per
strategy) is copied into two lakes. The clean lake gets one ``poolsieve demo`` run, the whole graph
to the leaderboard. On the faulted lake the CLI is SIGKILLed, its own pid only, as the OOM killer
would: while the scorer trains (its trainer subprocess is running), while img2dataset downloads
(its worker writes the shard's tar under the step's ``.…tmp`` folder) and as ``clip_embeddings``
starts (its STEP_START in the run's event log); each kill is followed by a re-run, and the last
one completes. Then:

- **no orphan**: no child of a killed CLI outlives it (bounded wait), and nothing in the lake
  changes after the kill: a trainer or img2dataset worker left running would keep writing into
  the lake while the re-run starts over (poolsieve/parent_death.py);
- **no leftovers**: no temporary anywhere in the faulted lake, the same files as the clean lake,
  every killed run FAILURE in its instance and none unfinished, the demo server stopped;
- **the same outputs**: byte for byte wherever a seeded run is deterministic (files that name
  their lake compare with its path masked; the two lakes' paths have one length). What is not
  deterministic is compared otherwise: img2dataset's tar, parquet and stats (members in download
  order, file times, durations: compared as sets of members and rows, stats without times), the
  DuckDB catalog (its tables' rows), training durations (out.log; "seconds" in scorer.json and
  model.json), and the strategies' train shards, whose samples come in download order (compared
  as sets of members). So the strategies' CLIPs see their samples in another order and their
  checkpoints, metrics and leaderboard differ between two clean runs too: they are compared byte
  for byte only when the train shards are identical. The scorer, trained on the fixed trusted
  set, is compared byte for byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from poolsieve_demo import write_demo_world
from poolsieve_demo.resources import world_dir
from poolsieve_demo.server import free_port, health
from tests.image_world import TINY_CONFIG
from tests.integration.faults import digests, kill_when, runs_program, temporaries

POOLSIEVE = str(Path(sys.executable).parent / "poolsieve")
# a few slow images (the downloader times out after 5 s): a download that lasts long enough to
# be killed in the middle, and that a surviving img2dataset worker would finish after the kill
WORLD = dict(seed=11, n_shards=1, rows_per_shard=60)
RATES = {**TINY_CONFIG.rates, "slow_response": 0.05}  # a 60-row world: TINY_CONFIG
DEMO = ["--scorer-samples", "256", "--train-samples", "64"]
SHARD = "shard_00000.parquet"
#: compared otherwise than byte for byte (see the module doc); everything else must be identical
NOT_BYTES = (
    "catalog.duckdb",
    f"shard_images/{SHARD}/00000000.tar",
    f"shard_images/{SHARD}/00000000.parquet",
    f"shard_images/{SHARD}/00000000_stats.json",
    "scorer/scorer.json",
    "scorer/trained/out.log",
)
#: parquet files that record when something was seen: compared without those columns
TIMED = {
    f"host_signals/{SHARD}.parquet": "fetched_at",
    f"shard_images/{SHARD}/optout_signals.parquet": "seen_at",
    f"pool_health/{SHARD}/checks.parquet": "checked_at",
    "subset_health/subset_health.parquet": "checked_at",
}
#: pool health's history: one row per check, and a re-run demo checks again
HISTORY = f"pool_health/{SHARD}/history.parquet"
#: its plots draw the checks' times: present in both lakes (the keys), not compared
PLOTS = (f"pool_health/{SHARD}/history.png", "subset_health/health_per_shard.png")
#: what the strategies' CLIPs make: compared once their train shards are identical
TRAINED = ("clip_model/", "evaluation/", "leaderboard/")


def _cli(lake: Path, home: Path) -> tuple[list[str], dict]:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return [POOLSIEVE, "demo", "--lake", str(lake), *DEMO], env


def _complete(lake: Path, home: Path, log: Path) -> None:
    argv, env = _cli(lake, home)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    log.write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "demo ground truth: all counts match" in proc.stdout, proc.stdout[-2000:]


def _training(cli) -> bool:
    """The scorer's trainer subprocess is running."""
    return runs_program(cli, "poolsieve.clip.run_trainer")


def _downloading(lake: Path):
    """img2dataset's worker has opened the shard's tar in the step's temporary folder."""
    return lambda cli: (
        any(lake.glob(f"shard_images/.{SHARD}.*.tmp/images/00000000.tar"))
        and runs_program(cli, "spawn_main")
    )


def _embedding(home: Path):
    def started(cli) -> bool:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(limit=1)
            return bool(runs) and "clip_embeddings" in _steps(instance, runs[0].run_id)[0]

    return started


def _steps(instance, run_id: str) -> tuple[list[str], list[str]]:
    """The steps a run started and those that succeeded."""
    types = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
    logs = instance.all_logs(run_id, of_type=types)
    started = [e.step_key for e in logs if e.dagster_event.is_step_start]
    return started, [e.step_key for e in logs if e.dagster_event.is_step_success]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_sigkill_during_training_download_and_embedding_then_rerun_gives_the_clean_outputs(
    tmp_path,
):
    # paths of one length: files that name their lake compare equal once it is masked (digests)
    clean, faulted = tmp_path / "clean" / "lake", tmp_path / "fault" / "lake"
    world = write_demo_world(
        world_dir(clean),
        base_url=f"http://127.0.0.1:{free_port()}",  # both lakes: the same URLs and uids
        config=dataclasses.replace(TINY_CONFIG, rates=RATES, slow_seconds=10.0),
        **WORLD,
    )
    shutil.copytree(world.root, world_dir(faulted))
    _complete(clean, tmp_path / "clean" / "home", tmp_path / "clean.log")

    home = tmp_path / "fault" / "home"
    argv, env = _cli(faulted, home)
    moments = {"scorer": _training, "shard_images": _downloading(faulted)}
    moments["clip_embeddings"] = _embedding(home)
    kills = {}
    for step, moment in moments.items():
        kills[step] = kill_when(argv, env, moment, faulted, tmp_path / f"killed-{step}.log")
    _complete(faulted, home, tmp_path / "rerun.log")

    assert {step: kill.returncode for step, kill in kills.items()} == dict.fromkeys(kills, -9)
    orphans = {
        step: {"outlived it": k.survivors, "lake changed after it": k.lake_changed_after_kill}
        for step, k in kills.items()
        if k.survivors or k.lake_changed_after_kill
    }
    assert not orphans, f"what the CLI killed during each step left running: {orphans}"
    assert "temporaries left by crashed runs" in kills["clip_embeddings"].output  # the download's
    _assert_runs_ended(home, kills)
    assert health(world.base_url) is None  # the shared demo server left with its last user
    assert not temporaries(faulted)
    _assert_same_outputs(clean, faulted)


def _assert_runs_ended(home: Path, kills: dict) -> None:
    """Each killed run FAILURE, stopped in the step it was killed in; no run left unfinished."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        unfinished = [r.run_id for r in runs if not r.is_finished]
        assert not unfinished, unfinished
        failed = {int(r.tags["poolsieve/pid"]): r for r in runs if r.is_failure}
        assert set(failed) == {k.pid for k in kills.values()}, sorted(failed)
        for step, kill in kills.items():
            started, succeeded = _steps(instance, failed[kill.pid].run_id)
            assert step in started and step not in succeeded, (step, started, succeeded)


def _assert_same_outputs(clean: Path, faulted: Path) -> None:
    """Every output as the clean run's (see the module doc for what is compared how)."""
    first, second = digests(clean), digests(faulted)
    assert first.keys() == second.keys()  # nothing missing, nothing left over
    assert [n for n in first if n.startswith("clip_embeddings/")], sorted(first)
    trained = [n for n in first if n.startswith(TRAINED)]
    train_tars = [n for n in first if n.startswith("train_shards/") and n.endswith(".tar")]
    records = [n for n in first if n.startswith("pool_features/") and n.endswith(".json")]
    other = (*NOT_BYTES, *TIMED, HISTORY, *PLOTS, *trained, *train_tars, *records)
    exact = [n for n in first if n not in other]
    differ = [n for n in exact if first[n] != second[n]]
    images = f"shard_images/{SHARD}/00000000"
    unordered = {
        "catalog.duckdb": _catalog,
        f"{images}.tar": lambda lake: _tar_members(lake / f"{images}.tar"),
        f"{images}.parquet": lambda lake: _rows(lake / f"{images}.parquet"),
        f"{images}_stats.json": lambda lake: _stats(lake / f"{images}_stats.json"),
        "scorer/scorer.json": _untimed("scorer/scorer.json"),
        **{n: _members_of(n) for n in train_tars},
        **{n: _record_without_mtimes(n) for n in records},
        **{n: _without_column(n, column) for n, column in TIMED.items()},
        HISTORY: _last_checks,
    }
    differ += [name for name, read in unordered.items() if read(clean) != read(faulted)]
    if all(
        first[n] == second[n] for n in train_tars
    ):  # the same samples in the same order: the same models and metrics
        timed = [n for n in trained if n.endswith("model.json")]
        differ += [n for n in timed if _untimed(n)(clean) != _untimed(n)(faulted)]
        exact = [n for n in trained if n not in timed and not n.endswith("out.log")]
        differ += [n for n in exact if first[n] != second[n]]
    assert not differ, f"differ from the clean run's after SIGKILLs and re-runs: {sorted(differ)}"


def _record_without_mtimes(name: str):
    """A pool_features part's record (the inputs it was built from) without the inputs' mtimes:
    the faulted lake's files were written at other times, with the same bytes."""

    def read(lake: Path) -> dict:
        doc = json.loads((lake / name).read_text().replace(str(lake), "<lake>"))
        doc["inputs"] = {k: v[:2] for k, v in doc["inputs"].items()}  # [path, size]
        return doc

    return read


def _members_of(name: str):
    return lambda lake: _tar_members(lake / name)


def _catalog(lake: Path) -> dict[str, list]:
    """Every catalog table's rows, sorted, with the lake's own path made relative."""
    with duckdb.connect(str(lake / "catalog.duckdb"), read_only=True) as conn:
        tables = [t for (t,) in conn.sql("SELECT table_name FROM duckdb_tables()").fetchall()]
        rows = {t: sorted(map(repr, conn.sql(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
    return {t: [r.replace(str(lake), "<lake>") for r in v] for t, v in rows.items()}


def _tar_members(path: Path) -> list[tuple[str, str]]:
    with tarfile.open(path) as tar:
        return sorted(
            (m.name, hashlib.sha256(tar.extractfile(m).read()).hexdigest())
            for m in tar
            if m.isfile()
        )


def _rows(path: Path) -> list:
    return sorted(map(repr, pq.read_table(path).to_pylist()))


def _stats(path: Path) -> dict:
    doc = json.loads(path.read_text())
    return {k: v for k, v in doc.items() if k not in ("duration", "start_time", "end_time")}


def _without_column(name: str, column: str):
    """A reader of parquet file ``name`` of a lake without ``column`` (a time)."""
    return lambda lake: pq.read_table(lake / name).drop_columns([column]).to_pylist()


def _last_checks(lake: Path) -> list:
    """Pool health's last two checks (the demo's, before and after aging) without their time."""
    return pq.read_table(lake / HISTORY).drop_columns(["checked_at"]).to_pylist()[-2:]


def _untimed(name: str):
    """A reader of JSON file ``name`` of a lake without its durations ("seconds": a training's
    wall time) and with the lake's own path masked."""

    def read(lake: Path) -> dict:
        doc = json.loads((lake / name).read_text().replace(str(lake), "<lake>"))
        doc.pop("seconds", None)
        doc.get("training", {}).pop("seconds", None)
        return doc

    return read


# --- the mechanism on its own, in seconds: a parent SIGKILLed, its children checked ---

SLEEPER = "import time; time.sleep(60)"
ASKS = "import os; from poolsieve.parent_death import die_with_parent; "
ASKS += "die_with_parent(int(os.environ['PARENT_PID'])); "
# a parent that starts one child running argv[1], telling it its pid, and waits
PARENT = """
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1]], env={**os.environ, "PARENT_PID": str(os.getpid())})
time.sleep(60)
"""
# a parent that, as img2dataset.download does, starts img2dataset's logger process and its
# distributor's pool (2 workers, no task), inside children_die_with_caller ("hook") or not
IMG2DATASET = """
import contextlib, importlib, os, sys, time
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
from poolsieve.images.img2dataset_children import children_die_with_caller
main, distributor = (importlib.import_module(f"img2dataset.{m}") for m in ("main", "distributor"))
with children_die_with_caller() if sys.argv[1] == "hook" else contextlib.nullcontext():
    main.LoggerProcess(sys.argv[2], False, "", {}).start()
    pool = distributor.get_context("spawn").Pool(2, maxtasksperchild=5)
    time.sleep(60)
"""


def _children_after_parent_killed(argv: list[str], ready: int, wait_s: float) -> list[str]:
    """Start ``argv``, wait until it has ``ready`` children, SIGKILL it; the children still
    running ``wait_s`` later (killed then). A child still starting up when its parent dies
    notices it once started (spawned ones import img2dataset: seconds on a loaded machine)."""
    import psutil

    from tests.integration.faults import outlived

    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    while len(children := parent.children()) < ready and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.kill()
    proc.wait()
    return outlived(children, wait_s)


@pytest.mark.parametrize("asks", [True, False], ids=["dies-with-parent", "control"])
def test_a_child_that_asks_dies_with_its_parent_killed_by_sigkill(asks):
    survivors = _children_after_parent_killed(
        [sys.executable, "-c", PARENT, (ASKS if asks else "") + SLEEPER], ready=1, wait_s=5.0
    )
    assert bool(survivors) is not asks, survivors  # the control shows a child does outlive it


def test_a_child_whose_parent_died_before_it_asked_dies_at_once():
    code = "from poolsieve.parent_death import die_with_parent; die_with_parent(1); print('alive')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9 and "alive" not in proc.stdout, proc.stderr


@pytest.mark.parametrize("hook", ["hook", "bare"])
def test_img2dataset_processes_die_with_the_downloader(tmp_path, hook):
    """The logger would poll for ever, a pool worker finish its shard into the lake ("bare",
    the control, shows the logger outliving its caller)."""
    argv = [sys.executable, "-c", IMG2DATASET, hook, str(tmp_path)]
    # the logger, 2 workers and multiprocessing's resource tracker
    survivors = _children_after_parent_killed(argv, ready=4, wait_s=30.0)
    assert bool(survivors) is (hook == "bare"), survivors
