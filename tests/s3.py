"""An S3 API on 127.0.0.1 for the object-storage lake's tests: moto in server mode, a real HTTP
server that s3fs talks to as it would to AWS (no client mock). Started and stopped by the test,
by PID; every wait is bounded."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from poolsieve_demo.server import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "poolsieve-test",
    "AWS_SECRET_ACCESS_KEY": "poolsieve-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    pid: int

    @property
    def options(self) -> dict:
        """fsspec storage options for this server (what POOLSIEVE_LAKE_OPTIONS would hold)."""
        return {
            "endpoint_url": self.endpoint,
            "key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "secret": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        }

    @property
    def env(self) -> dict:
        """The standard AWS variables that point boto (and s3fs) at this server."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def bucket(self) -> str:
        """A new empty bucket; its name."""
        import s3fs

        name = f"lake-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(**self.options, skip_instance_cache=True).mkdir(name)
        return name


@contextlib.contextmanager
def moto_server(log_dir: Path, ready_s: float = 60.0) -> Iterator[S3Server]:
    """moto's S3 server on a free port of 127.0.0.1 for the block's duration."""
    port = free_port()
    log = open(Path(log_dir) / "moto.log", "wb")  # noqa: SIM115 - closed below
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **CREDENTIALS},
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait_ready(endpoint, proc, ready_s)
        yield S3Server(endpoint, proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        log.close()


def _wait_ready(endpoint: str, proc: subprocess.Popen, ready_s: float) -> None:
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"moto_server did not answer on {endpoint} within {ready_s} s")
