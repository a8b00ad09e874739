"""`dagster dev` on 127.0.0.1 for the browser test: started and stopped by PID, bounded waits.

It serves the demo's code location (``poolsieve_demo.definitions``, as ``make dev`` does) over
the lake at the environment's ``POOLSIEVE_LAKE``.

The server runs in its own session (process group) so that stopping it reaches the webserver,
the daemon and the code server it spawned: SIGINT first (dagster dev's own clean shutdown), then
SIGTERM and SIGKILL to the group only if it outlives its grace period.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.repo import REPO_ROOT

WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
RUN_QUERY = "query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }"""


# chromium as root, headless, offline: no sandbox, no background calls to Google's hosts
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def open_page(page, url: str, ready: str) -> None:
    """Go to a UI page, wait until ``ready`` shows, and dismiss Dagster's first-run dialog."""
    from playwright.sync_api import TimeoutError as NotShown

    page.goto(url)
    page.get_by_text(ready, exact=True).first.wait_for(timeout=60_000)
    skip = page.get_by_role("button", name="Skip").first
    with contextlib.suppress(NotShown):  # shown once per new instance, a moment after load
        skip.wait_for(timeout=3_000)
        skip.click()
    page.wait_for_timeout(1500)  # let the graph lay itself out before reading or shooting it


def show_markdown(page, key: str):
    """Open a markdown metadata entry's dialog; the first image inside it (a locator)."""
    page.locator("tr", has_text=key).get_by_text("[Show Markdown]").first.click()
    image = page.get_by_role("dialog").locator("img").first
    image.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)  # the dialog fades in
    return image


DEMO_LOCATION = "poolsieve_demo.definitions"


class DagsterDev:
    def __init__(
        self, home: Path, port: int, env: dict[str, str], log: Path, module: str = DEMO_LOCATION
    ):
        self.home, self.port, self.log, self.module = home, port, log, module
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        dagster = Path(sys.executable).with_name("dagster")
        cmd = [
            str(dagster),
            "dev",
            "-m",
            self.module,
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_default_signals,
            )

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["data"]

    def wait_loaded(self, timeout: float = 300) -> list[dict]:
        """Until every code location is loaded; raises with the log's tail if it never is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                entries = self.graphql(WORKSPACE_QUERY, timeout=10)["workspaceOrError"]
                entries = entries.get("locationEntries") or []
            except OSError:
                entries = []
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [
                    e
                    for e in entries
                    if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"
                ]
                if errors:
                    raise RuntimeError(f"code location failed to load: {errors}")
                return entries
            time.sleep(2)
        raise TimeoutError(f"dagster dev did not load in {timeout}s:\n{self.tail()}")

    def launch(self, job: str, partition: str, assets: list[str], location: str) -> str:
        params = {
            "selector": {
                "repositoryLocationName": location,
                "repositoryName": "__repository__",
                "jobName": job,
                "assetSelection": [{"path": [a]} for a in assets],
            },
            "mode": "default",
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
        }
        result = self.graphql(LAUNCH, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launchRun failed: {result}")
        return result["run"]["runId"]

    def wait_run(self, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            status = self.graphql(RUN_QUERY, {"id": run_id})["runOrError"].get("status")
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(2)
        raise TimeoutError(f"run {run_id} not finished in {timeout}s:\n{self.tail()}")

    def stop(self, grace: float = 60) -> None:
        """SIGINT to dagster dev, then its whole process group if anything outlives the grace."""
        if self.proc is None:
            return
        group = self.proc.pid  # start_new_session: the group id is the leader's pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not group_alive(group):
                break
            os.killpg(group, sig)
            _wait_for(lambda: not group_alive(group), 15)
        if self.proc.poll() is None:
            self.proc.wait(timeout=15)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited ({self.proc.returncode}):\n{self.tail()}")


def _default_signals() -> None:
    """In the child before exec: SIGINT/SIGTERM at their defaults, so SIGINT stops dagster dev even
    when the tests run in the background (where a shell leaves SIGINT, and then Dagster SIGTERM,
    ignored, and an ignored signal is inherited)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def processes_with_env(name: str, value: str) -> list[int]:
    """PIDs whose environment holds name=value (finds children that left the process group)."""
    needle, found = f"{name}={value}".encode(), []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(done, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.5)
    return done()
