"""A Postgres-backed Dagster instance (poolsieve's settings with ``instance_settings(postgres=True)``)
records `poolsieve run`'s runs and materializations in a real PostgreSQL server, which this test
starts on 127.0.0.1 (Debian's ``postgresql`` package, installed by ``make setup``) and stops."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from poolsieve.paths import instance_settings
from tests.conftest import row, write_datacomp

POOLSIEVE = str(Path(sys.executable).parent / "poolsieve")
PG_USER = "poolsieve"


def _pg_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def _as_server_user() -> dict:
    """PostgreSQL refuses to run as root: as root, run it as Debian's ``postgres`` user."""
    if os.geteuid() != 0:
        return {}
    account = pwd.getpwnam("postgres")
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Server:
    port: int

    def connect(self, db: str = "postgres"):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname=db)


def _wait_ready(server: Server, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"postgres exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            server.connect().close()
            return
        except Exception:
            time.sleep(0.2)
    raise AssertionError(f"postgres did not accept connections in 60 s: {log.read_text()[-2000:]}")


@pytest.fixture
def postgres() -> Iterator[Server]:
    """A PostgreSQL server of its own: initdb into a temporary folder, on a free port of
    127.0.0.1 (its socket in that folder), stopped by its pid and removed afterwards."""
    pg_bin = _pg_bin()
    if pg_bin is None:
        reason = "PostgreSQL's server is not installed (/usr/lib/postgresql/N/bin; `make setup`)"
        if os.environ.get("CI"):
            pytest.fail(reason + ": CI must run this test")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="poolsieve-pg-"))
    who = _as_server_user()
    if who:
        os.chown(root, who["user"], who["group"])
    data, log = root / "data", root / "server.log"
    subprocess.run(
        [pg_bin / "initdb", "-D", data, "-U", PG_USER, "--auth=trust", "--no-locale", "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=120,
        **who,
    )
    server = Server(_free_port())
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [pg_bin / "postgres", "-D", data, "-h", "127.0.0.1", "-p", str(server.port)]
            + ["-k", str(root), "-c", "fsync=off"],
            stdout=out,
            stderr=subprocess.STDOUT,
            **who,
        )
    try:
        _wait_ready(server, proc, log)
        yield server
    finally:
        proc.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _create_database(server: Server, name: str) -> None:
    conn = server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def _query(server: Server, db: str, sql: str) -> list[tuple]:
    conn = server.connect(db)
    with conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
    conn.close()
    return rows


def test_poolsieve_run_records_its_runs_and_materializations_in_postgres(
    tmp_path, source_dir, postgres
):
    write_datacomp(source_dir / "a.parquet", [row(1), row(2), row(3)])
    write_datacomp(source_dir / "b.parquet", [row(10), row(11, url="http://img.example.com/1.jpg")])
    _create_database(postgres, "dagster")
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_settings(postgres=True))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_DB": "dagster",
        "DAGSTER_PG_USER": PG_USER,
        "DAGSTER_PG_PASSWORD": "unused (trust authentication)",
    }
    args = ["run", "--source", str(source_dir), "--lake", str(tmp_path / "lake")]
    proc = subprocess.run(
        [POOLSIEVE, *args, "--job", "ingest_job"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    runs = _query(postgres, "dagster", "SELECT status, partition FROM runs ORDER BY partition")
    assert runs == [("SUCCESS", "a.parquet"), ("SUCCESS", "b.parquet")]
    materialized = _query(
        postgres,
        "dagster",
        "SELECT asset_key, partition FROM event_logs "
        "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY asset_key, partition",
    )
    assert materialized == [
        ('["pool_shard"]', "a.parquet"),
        ('["pool_shard"]', "b.parquet"),
        ('["url_dedup"]', "a.parquet"),
        ('["url_dedup"]', "b.parquet"),
    ]
    # no SQLite storage in the home (it keeps compute logs only): the instance is the database
    assert not list(home.rglob("*.db")), sorted(home.rglob("*.db"))
