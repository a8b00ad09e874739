"""`dagster dev` on 127.0.0.1 for the browser test: started and stopped by PID, bounded waits.

It serves the demo's code location (``poolsieve_demo.definitions``) over the lake at the
environment's ``POOLSIEVE_LAKE``, started as ``make dev`` starts it: through the launcher
``poolsieve dev`` (poolsieve.pipelines.dev), which puts SIGINT/SIGTERM back to their defaults whatever the tests
inherited (a background shell ignores SIGINT).

The server runs in its own session (process group) so that stopping it can be checked on the
webserver, the daemon and the code server it spawned: SIGTERM first (dagster dev's own clean
shutdown), then SIGKILL to the group only if anything outlives the grace period.
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

    def start(self, preexec_fn=None) -> None:
        """Start the launcher (``preexec_fn`` runs in the child first: a test may make it inherit
        an ignored SIGINT, as a background shell does)."""
        poolsieve = str(Path(sys.executable).parent / "poolsieve")
        cmd = [poolsieve, "dev", "-m", self.module]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [*cmd, "-h", "127.0.0.1", "-p", str(self.port)],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec_fn,
            )

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["data"]

    def wait_answering(self, timeout: float = 180) -> None:
        """Until the webserver answers on 127.0.0.1 (its code location loaded or not)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            url = f"{self.url}/server_info"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
            time.sleep(1)
        raise TimeoutError(f"dagster dev did not answer in {timeout}s:\n{self.tail()}")

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

    def stop(self, grace: float = 90) -> bool:
        """SIGTERM to dagster dev; True when that alone stopped it and everything in its process
        group within ``grace`` s. Otherwise SIGKILL to the group (and False)."""
        if self.proc is None:
            return True
        group = self.proc.pid  # start_new_session: the group id is the leader's pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        clean = self.proc.poll() is not None and _wait_for(lambda: not group_members(group), 15)
        if not clean:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            _wait_for(lambda: not group_members(group), 15)
            self.proc.wait(timeout=15)
        return clean

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited ({self.proc.returncode}):\n{self.tail()}")


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


def group_members(group: int) -> list[int]:
    """Live PIDs in process group ``group`` (zombies, already dead, left out), read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            found.append(int(stat.parent.name))
    return found


def group_alive(group: int) -> bool:
    return bool(group_members(group))


def _wait_for(done, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.5)
    return done()
