"""The demo's shard graph and subsets on a real local Ray cluster give the in-process run's bytes.

The test starts a Ray cluster on this machine: a head and one worker node (one CPU each), from
this virtualenv's ``ray``, and stops it by the PIDs of its processes. One small demo world
(2 shards) is copied into three lakes, each with its own Dagster instance; the two lakes the
cluster works on are on object storage (moto's S3 server on 127.0.0.1, tests/s3.py), read and
written by every step through its working copy:

- in process (no POOLSIEVE_RAY_ADDRESS): the scorer, ``poolsieve run --job shard_job``'s path
  (runner.run_main_job), then image clusters, pool_features and every strategy's subset;
- the same through Ray (POOLSIEVE_RAY_ADDRESS set): every step a Ray job on the cluster, each
  job's partitions submitted at once; the scorer is copied from the first lake (training it
  again on two shared cores costs minutes and is not a per-shard step);
- through Ray again, while the test SIGKILLs the process running a shard's clip_embeddings
  step mid-task: the step is retried (Dagster's retry after the executor's health check sees
  the Ray job failed) and the run succeeds.

Every subset .npy and decisions file, and every per-shard output, must be byte-identical
across the three lakes (the S3 lakes read back through a fresh working copy); eval_decontamination's similarities (torch float32 sums, whose last bits
follow the thread count) to 1e-6, its flags exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
from poolsieve.pipelines import runner
from poolsieve.pipelines.definitions import build_defs
from poolsieve.pipelines.execution import Execution
from poolsieve.pipelines.instance import get_instance
from poolsieve.pipelines.partitions import STRATEGIES

from poolsieve.audit.dagster_private import backfill_statuses
from poolsieve.clip.scorer import scorer_path
from poolsieve.lake import Lake, commit, tmp_path_for
from poolsieve_demo import write_demo_world
from poolsieve_demo.resources import world_dir
from poolsieve_demo.server import free_port
from tests.image_world import TINY_CONFIG, make_resources

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

RAY = str(Path(sys.executable).parent / "ray")
SHARDS_N, ROWS = 2, 60
#: what must be byte-identical: per shard, and per strategy (subset.npy, decisions.parquet)
COMPARED = ["url_dedup", "shard_features", "subset"]
#: torch's float32 sums have last bits that depend on its thread count (Ray gives a step
#: OMP_NUM_THREADS = its CPUs, 1 here; in process torch takes every core): eval_decontamination's
#: max_similarity and clip_embeddings' clip_score (the float32 cosine before the float16
#: embeddings are stored) are compared to 1e-6, every other column (the float16 embeddings, the
#: flags) exactly
DECONTAMINATION = "eval_decontamination"
EMBEDDINGS = "clip_embeddings"
KILLED_STEP = "clip_embeddings"
STATUS = backfill_statuses()


# --- the cluster ----------------------------------------------------------------------------


def _ray_start(args: list[str], env: dict) -> None:
    proc = subprocess.run(
        [RAY, "start", *args, "--disable-usage-stats"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _cluster_processes(marks: list[str]) -> list[psutil.Process]:
    """This user's processes whose command line names the cluster (its GCS address or temp
    folder), and their descendants (the steps' processes)."""
    found = {}
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.info["uids"].real == os.getuid() and any(m in cmdline for m in marks):
                found[proc.pid] = proc
                found.update({c.pid: c for c in proc.children(recursive=True)})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    found.pop(os.getpid(), None)
    return list(found.values())


def _stop_cluster(marks: list[str]) -> None:
    """SIGTERM every process of the cluster, then SIGKILL what is left after 15 s (by PID)."""
    procs = _cluster_processes(marks)
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=15)
    for proc in alive:
        _signal(proc, signal.SIGKILL)
    _, alive = psutil.wait_procs(alive, timeout=10)
    assert not alive, f"Ray processes still running: {[p.pid for p in alive]}"


def _signal(proc: psutil.Process, sig: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(sig)


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """A head (127.0.0.1, 1 CPU, the job server the executor submits to) and a worker node
    (1 CPU); its GCS address. Ray's job server is part of its dashboard, which needs
    ``ray[default]``'s packages."""
    try:
        import ray.dashboard.optional_deps  # noqa: F401
    except ImportError as err:  # ray[default] is a dependency: a setup fault, not a skip
        pytest.fail(
            f"Ray's job server needs ray[default] (dagster-ray submits steps as Ray jobs): {err}"
        )
    temp = tmp_path_factory.mktemp("ray")
    gcs = free_port()
    env = {**os.environ, "PATH": f"{Path(RAY).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    marks = [f"127.0.0.1:{gcs}", str(temp)]
    try:
        head = ["--head", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=1"]
        head += [f"--temp-dir={temp}", "--include-dashboard=true", "--dashboard-host=127.0.0.1"]
        head += [f"--dashboard-port={free_port()}", f"--ray-client-server-port={free_port()}"]
        _ray_start([*head, f"--dashboard-agent-listen-port={free_port()}"], env)
        # the worker declares one (logical) GPU: the embedding steps must be placed on it
        worker = [f"--address=127.0.0.1:{gcs}", "--node-ip-address=127.0.0.1", "--num-cpus=1"]
        worker.append("--num-gpus=1")
        _ray_start([*worker, f"--dashboard-agent-listen-port={free_port()}"], env)
        yield f"127.0.0.1:{gcs}"
    finally:
        _stop_cluster(marks)


# --- the runs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The world run in process: its lake (the other lakes copy its world and scorer)."""
    lake = tmp_path_factory.mktemp("inprocess") / "lake"
    write_demo_world(
        world_dir(lake),
        seed=4,
        base_url=f"http://127.0.0.1:{free_port()}",
        n_shards=SHARDS_N,
        rows_per_shard=ROWS,
        config=TINY_CONFIG,
    )
    with _env(DAGSTER_HOME=str(lake.parent / "home"), POOLSIEVE_RAY_ADDRESS=None):
        _run_to_subsets(_resources(lake))
    return lake


def _resources(location, cache: Path | None = None, options: dict | None = None):
    """The demo's resources on ``location`` (a folder, or an S3 URL with its working copy)."""
    lake = {} if cache is None else {"lake_cache": str(cache), "lake_options": json.dumps(options)}
    return make_resources(location, lake=lake, embedding={"batch_size": 32, "workers": 1})


def _run_to_subsets(resources) -> None:
    """The CLI's path for the shards (the scorer first unless the lake has it), then the image
    clusters, pool_features and every subset through the runner's Session, as ``poolsieve
    run`` does before training."""
    status, _ = runner.run_main_job(resources, "shard_job", force=True)
    assert status == 0
    execution = Execution.from_env()
    ray = runner.RayRuns(execution, resources) if execution.on_ray else None
    defs = build_defs(resources, execution)
    session = runner.Session(defs, get_instance(), resources.lake.store, ray=ray)
    assert runner._clusters(session) == []
    assert session.one("features_job")
    assert session.each("subset_job", STRATEGIES.get_partition_keys()) == []
    _assert_backfills(session.instance, execution.on_ray)


def _assert_backfills(instance, on_ray: bool) -> None:
    """Each job launched over partitions was one backfill that completed: on Ray the shard job
    as its two phases."""
    newest_last = reversed(instance.get_backfills())
    ended = {b.partition_set_origin.partition_set_name: b.status for b in newest_last}
    phases = ["pool_shard_job", "shard_steps_job"] if on_ray else ["shard_job"]
    for job in [*phases, "subset_job"]:
        assert ended.get(f"{job}_partition_set") == STATUS.COMPLETED_SUCCESS, ended


def _s3_lake(tmp_path: Path, s3_server, reference: Path):
    """A new lake in a new bucket of the loopback S3 server, with the reference's world in its
    working copy and its scorer uploaded; (resources, a Lake that reads it afresh)."""
    url, cache = f"s3://{s3_server.bucket()}/lake", tmp_path / "cache"
    shutil.copytree(world_dir(reference), world_dir(url, cache))
    lake = Lake.at(url, cache, s3_server.options)
    scorer = scorer_path(Lake(reference)).parent
    for src in (p for p in scorer.rglob("*") if p.is_file()):
        final = lake.root / "scorer" / src.relative_to(scorer)
        tmp = tmp_path_for(final)
        shutil.copyfile(src, tmp)
        commit(tmp, final)  # uploaded
    fresh = Lake.at(url, tmp_path / "check", s3_server.options)
    return _resources(url, cache, s3_server.options), fresh


class _env:
    """Set (value) or unset (None) environment variables for a block."""

    def __init__(self, **values):
        self.values, self.saved = values, {}

    def __enter__(self):
        for key, value in self.values.items():
            self.saved[key] = os.environ.get(key)
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def __exit__(self, *exc):
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _ray_env(home: Path, address: str) -> _env:
    return _env(
        DAGSTER_HOME=str(home),
        POOLSIEVE_RAY_ADDRESS=address,
        POOLSIEVE_RAY_MAX_RUNS="2",
        POOLSIEVE_RAY_MAX_RETRIES="2",
    )


def _digests(lake: Lake) -> dict[str, str]:
    return {
        p.relative_to(lake.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for asset in COMPARED
        for p in lake.glob(f"{asset}/**/*")
        if p.is_file() and p.name != "summary.json"  # a subset's summary names its lake's paths
    }


def _assert_identical(reference: Path, lake: Lake) -> None:
    expected, got = _digests(Lake(reference)), _digests(lake)
    for strategy in STRATEGIES.get_partition_keys():
        assert f"subset/{strategy}/subset.npy" in expected
        assert f"subset/{strategy}/decisions.parquet" in expected
    assert got.keys() == expected.keys()
    differ = sorted(name for name in expected if expected[name] != got[name])
    assert not differ, f"files that differ between the in-process and the Ray run: {differ}"
    _assert_close(reference, lake, DECONTAMINATION, "decontamination.parquet", "max_similarity")
    _assert_close(reference, lake, EMBEDDINGS, "embeddings.parquet", "clip_score")
    _assert_close_npz(reference, lake)


def _assert_close(reference: Path, lake: Lake, asset: str, file: str, column: str) -> None:
    """Each shard's ``file`` of ``asset``: ``column`` to 1e-6, every other column exactly."""
    files = sorted(p.relative_to(reference) for p in (reference / asset).rglob(file))
    assert len(files) == SHARDS_N, files
    for name in files:
        expected, got = pq.read_table(reference / name), pq.read_table(lake.path(str(name)))
        assert got.schema == expected.schema, name
        values = [np.asarray(t.column(column).to_numpy()) for t in (expected, got)]
        assert np.allclose(values[0], values[1], rtol=0, atol=1e-6, equal_nan=True), name
        others = [t.drop_columns([column]) for t in (expected, got)]
        assert others[1].equals(others[0]), name


def _assert_close_npz(reference: Path, lake: Lake) -> None:
    """embeddings.npz: the float16 embeddings exactly, the scores to 1e-6 (NaN where no image)."""
    files = sorted(p.relative_to(reference) for p in (reference / EMBEDDINGS).rglob("*.npz"))
    assert len(files) == SHARDS_N, files
    for name in files:
        with np.load(reference / name) as expected, np.load(lake.path(str(name))) as got:
            assert sorted(got.files) == sorted(expected.files), name
            for key in expected.files:
                a, b = expected[key], got[key]
                if key.endswith("_score"):
                    assert np.allclose(a, b, rtol=0, atol=1e-6, equal_nan=True), (name, key)
                else:
                    assert np.array_equal(a, b), (name, key)


# --- the tests ------------------------------------------------------------------------------


def test_the_shard_graph_and_subsets_on_ray_give_the_in_process_bytes(
    ray_address, reference, tmp_path, s3_server
):
    resources, lake = _s3_lake(tmp_path, s3_server, reference)
    with _ray_env(tmp_path / "home", ray_address):
        _run_to_subsets(resources)
        launched = _logged(get_instance(), dg.DagsterEventType.STEP_WORKER_STARTING)
    _assert_identical(reference, lake)
    jobs = _ray_jobs(ray_address, [e.dagster_event.message for e in launched])
    assert jobs and all(job.status == "SUCCEEDED" for job in jobs), jobs
    nodes = {job.driver_node_id for job in jobs}
    assert len(nodes) == 2, f"the steps ran on {len(nodes)} node(s), not the head and the worker"
    _assert_embedding_on_the_gpu_node(ray_address, launched)


def _assert_embedding_on_the_gpu_node(address: str, launched: list) -> None:
    """POOLSIEVE_RAY_GPUS_PER_EMBED unset: the cluster has a GPU, so every clip_embeddings step
    asked for one and ran on the worker (the only node with a GPU)."""
    from poolsieve.pipelines.execution import submission_address
    from ray.util.state import list_nodes

    gpu_nodes = {
        n.node_id
        for n in list_nodes(address=submission_address(address))
        if "GPU" in n.resources_total
    }
    steps = {e.dagster_event.message.rsplit(" ", 1)[-1].rstrip("."): e.step_key for e in launched}
    jobs = _ray_jobs(address, [e.dagster_event.message for e in launched])
    embed = [j for j in jobs if steps[j.submission_id] == KILLED_STEP]
    assert len(embed) == SHARDS_N, embed
    assert all(j.driver_node_id in gpu_nodes for j in embed), (embed, gpu_nodes)


def _logged(instance, kind: dg.DagsterEventType) -> list:
    """Every event of ``kind`` in the instance's runs."""
    return [e for run in instance.get_runs() for e in instance.all_logs(run.run_id, of_type=kind)]


def _ray_jobs(address: str, messages: list[str]) -> list:
    """The Ray jobs the executor's messages name ('Executing step "x" in Ray job <id>.')."""
    from poolsieve.pipelines.execution import submission_address
    from ray.job_submission import JobSubmissionClient

    ids = {m.rsplit(" ", 1)[-1].rstrip(".") for m in messages}
    jobs = JobSubmissionClient(submission_address(address)).list_jobs()
    return [job for job in jobs if job.submission_id in ids]


def test_a_step_whose_worker_is_killed_mid_task_is_retried_and_the_bytes_are_the_same(
    ray_address, reference, tmp_path, s3_server
):
    resources, lake = _s3_lake(tmp_path, s3_server, reference)
    killer = _Killer(KILLED_STEP)
    with _ray_env(tmp_path / "home", ray_address):
        killer.start()
        try:
            _run_to_subsets(resources)
        finally:
            killer.stop()
        retried = _logged(get_instance(), dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert killer.killed, f"no {KILLED_STEP} step was seen running"
    assert [e.step_key for e in retried] == [KILLED_STEP], retried
    assert "failed health check" in retried[0].dagster_event.step_retry_data.error.message
    _assert_identical(reference, lake)


class _Killer:
    """A thread that SIGKILLs the first process running ``step`` (its Ray job's entrypoint,
    ``dagster api execute_step``, whose environment names the step) once the step has started
    (its STEP_START is in the instance at $DAGSTER_HOME): mid-task."""

    def __init__(self, step: str):
        import threading

        self.step, self.killed = step, []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=30)

    def _watch(self) -> None:
        deadline = time.monotonic() + 1800
        with get_instance() as instance:  # creates $DAGSTER_HOME if the run has not yet
            while not self.done.is_set() and not self.killed and time.monotonic() < deadline:
                if self._started(instance):
                    for proc in psutil.process_iter(["cmdline"]):
                        if self._running_step(proc):
                            proc.kill()
                            self.killed.append(proc.pid)
                            break
                time.sleep(0.2)

    def _started(self, instance) -> bool:
        running = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        kind = dg.DagsterEventType.STEP_START
        return any(
            e.step_key == self.step
            for r in running
            for e in instance.all_logs(r.run_id, of_type=kind)
        )

    def _running_step(self, proc: psutil.Process) -> bool:
        try:
            # the Python process itself, not the shell that Ray's job supervisor started it with
            # (whose one argument is the whole command line)
            if "execute_step" not in (proc.info["cmdline"] or []):
                return False
            return proc.environ().get("DAGSTER_RUN_STEP_KEY") == self.step
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False
