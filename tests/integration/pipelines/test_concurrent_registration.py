"""Two processes registering the same source's files at the same moment both succeed and agree on
pool order (one used to crash on the partitions table's UNIQUE constraint)."""

import json
import os
import subprocess
import sys
import textwrap
import time

import dagster as dg
from poolsieve.pipelines.partitions import SHARDS

from poolsieve.lake import Lake
from poolsieve.pool import registry
from tests.repo import REPO_ROOT

KEYS = [f"part-{i:04d}.parquet" for i in range(200)]

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    import dagster as dg
    from poolsieve.pipelines.partitions import add_partitions, register_shards
    from poolsieve.pipelines.resources import resources_from_env

    lake_dir, source, go = sys.argv[1:4]
    keys = json.loads(sys.argv[4])
    res = resources_from_env(env={}, lake={"lake_dir": lake_dir, "source": source})
    instance = dg.DagsterInstance.get()
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.001)
    if sys.argv[5] == "partitions":  # the instance's part alone, without the lake's lock around it
        for key in keys:  # one at a time: 200 chances to meet inside one add
            add_partitions(instance, [key])
        print("{}")
    else:
        print(json.dumps(register_shards(instance, res.lake, keys)))
    """
)


def _register_at_once(tmp_path, round_: int, what: str) -> list[subprocess.CompletedProcess]:
    home, lake, source = (tmp_path / f"{n}{round_}" for n in ("home", "lake", "source"))
    for folder in (home, lake, source):
        folder.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with dg.DagsterInstance.from_config(str(home)):
        pass  # the instance's storage exists: first use of a home is another test's subject
    go = tmp_path / f"go{round_}"
    args = [sys.executable, "-c", CHILD, str(lake), str(source), str(go), json.dumps(KEYS), what]
    procs = [
        subprocess.Popen(
            args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    time.sleep(4)  # both imported dagster and wait on the start file
    go.touch()
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


def test_concurrent_partition_adds_of_the_same_keys_both_succeed(tmp_path):
    for round_ in range(2):
        for proc in _register_at_once(tmp_path, round_, "partitions"):
            assert proc.returncode == 0, proc.stderr.decode()[-3000:]
        with dg.DagsterInstance.from_config(str(tmp_path / f"home{round_}")) as instance:
            assert instance.get_dynamic_partitions(SHARDS.name) == KEYS


def test_concurrent_registration_of_the_same_files_succeeds_with_one_pool_order(tmp_path):
    for round_ in range(2):
        procs = _register_at_once(tmp_path, round_, "shards")
        for proc in procs:
            assert proc.returncode == 0, proc.stderr.decode()[-3000:]
        seqs = [json.loads(proc.stdout.decode().strip().splitlines()[-1]) for proc in procs]
        assert seqs[0] == seqs[1] == {key: i for i, key in enumerate(KEYS)}
        with dg.DagsterInstance.from_config(str(tmp_path / f"home{round_}")) as instance:
            assert instance.get_dynamic_partitions(SHARDS.name) == KEYS
        assert registry.pool_order(Lake(tmp_path / f"lake{round_}")) == KEYS
