"""The demo image server: serves a world's docroot on a loopback address, per ``routes.json``.

Grain: one request -> one answer chosen by the URL path's route (docroot.py lists them; query
strings and trailing slashes are ignored; unknown paths are 404; ``/_health`` answers with the
server's pid, its world and the epoch it serves; a route's ``headers`` are added to its answer).
The image routes are the same for every Host; the host files (``host_files``: robots.txt,
tdmrep.json, ai.txt) are per origin: the request's Host header's host name (port dropped,
case-insensitive) picks that host name's set, and a Host the world has none for (or no Host)
gets 404 for them. An older world's ``host_files`` (routes.json format < 4: one set keyed by URL
path) is served to every Host, as it was.

Epochs (aging.py): the world's current epoch is ``<root>/epoch.json`` (``{"epoch": N}``; absent:
1), and a route may carry ``epochs`` ({"N": route}): from epoch N on, that route answers instead.
Every request stats ``routes.json`` and ``epoch.json`` (two stat calls) and reloads both when
either changed, so a running server follows ``age_world`` without a restart; a file that fails
to load then leaves the last good routes in place. It runs as a separate process so callers own
it by PID::

    python -m poolsieve_demo.server --root ROOT --host 127.0.0.1 --port 8808

    with DemoImageServer(root, port) as server:   # start() waits for /_health (bounded)
        ...                                       # stop(): SIGTERM, then SIGKILL after a wait

Why a real server: the downloader must meet real sockets, statuses, timeouts and redirects. It
binds loopback addresses only, never follows or contacts a redirect target, keeps no log, and
every request is bounded (socket timeout, capped sleep, HTTP/1.0: one request per connection).
With ``--parent-pid`` it exits when that process goes away, so a crashed caller leaves nothing;
with ``--idle-exit N`` (the shared, detached mode: see shared.py) after N seconds without requests.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HEALTH_PATH = "/_health"
DEFAULT_PORT = 8808  # `make demo`'s world; tests give theirs a free port (its URLs name the port)
MAX_DELAY_S = 60.0  # a slow route never sleeps longer, whatever routes.json says
SOCKET_TIMEOUT_S = 15.0  # a silent client holds a handler thread at most this long
#: headers a route may not set (the server's own framing and redirects)
RESERVED_HEADERS = frozenset({"content-type", "content-length", "location", "connection"})
MAX_ROUTE_HEADERS = 16
#: the world's current epoch (written atomically by aging.age_world; absent: epoch 1)
EPOCH_FILE = "epoch.json"
MAX_EPOCH = 1000  # an epoch file naming more is refused (a bounded, checked number)
#: the host_files key of an older world's single set of host files, served to every Host
ANY_HOST = "*"
MAX_HOST_NAME = 253


def check_route_headers(path: str, headers: object) -> dict[str, str]:
    """A route's extra headers, checked: at most MAX_ROUTE_HEADERS str -> str pairs, a token
    name that is none of RESERVED_HEADERS and no control characters (no header injection)."""
    if not isinstance(headers, dict) or len(headers) > MAX_ROUTE_HEADERS:
        raise ValueError(f"routes.json {path}: headers must be a dict of <= {MAX_ROUTE_HEADERS}")
    for name, value in headers.items():
        bad_name = not (isinstance(name, str) and name.isascii() and _is_token(name))
        bad_value = not isinstance(value, str) or any(ord(c) < 32 or ord(c) == 127 for c in value)
        if bad_name or bad_value or name.lower() in RESERVED_HEADERS:
            raise ValueError(f"routes.json {path}: header {name!r}: {value!r} is not allowed")
    return headers


def _is_token(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name)


def load_routes(root: Path) -> tuple[dict[str, dict], dict[str, dict[str, dict]], float]:
    """The routes of ``root/routes.json`` (headers and epoch overrides checked), its host files
    by host name (check_host_files) and its ``slow_seconds``."""
    document = json.loads((root / "routes.json").read_text())
    routes = document["routes"]
    _check_routes(routes)
    host_files = check_host_files(document.get("host_files", {}))
    for host, files in host_files.items():
        _check_routes(files, f" (host {host})")
    return routes, host_files, float(document.get("slow_seconds", 3.0))


def _check_routes(routes: object, where: str = "") -> None:
    if not isinstance(routes, dict):
        raise ValueError(f"routes.json{where}: routes must be a dict of URL path -> route")
    for path, entry in routes.items():
        name = f"{path}{where}"
        _check_route(name, entry)
        for key, override in check_route_epochs(name, entry.get("epochs", {})).items():
            _check_route(f"{name} (epoch {key})", override)


def check_host_files(host_files: object) -> dict[str, dict]:
    """routes.json ``host_files``, checked: {host name: {URL path: route}} with lower-case host
    names; an older world's single set ({URL path: route}) becomes {ANY_HOST: that set}."""
    if not isinstance(host_files, dict):
        raise ValueError("routes.json host_files: must be a dict of host name -> host files")
    if host_files and all(isinstance(k, str) and k.startswith("/") for k in host_files):
        return {ANY_HOST: host_files}
    for host in host_files:
        if not _is_host_name(host):
            raise ValueError(f"routes.json host_files: {host!r} is not a lower-case host name")
    return host_files


def _is_host_name(host: object) -> bool:
    allowed = "abcdefghijklmnopqrstuvwxyz0123456789.-:_"
    ok_length = isinstance(host, str) and 0 < len(host) <= MAX_HOST_NAME
    return ok_length and all(c in allowed for c in host)


def host_name(header: str | None) -> str | None:
    """The host name of a Host header, lower-cased, without its port (``LocalHost:8808`` ->
    ``localhost``, ``[::1]:80`` -> ``::1``); None when absent or not a plain host[:port]."""
    if not header or any(c in header for c in "/?#@\\ "):
        return None
    try:
        return urlsplit("//" + header).hostname
    except ValueError:
        return None


def host_route(host_files: dict[str, dict], header: str | None, path: str) -> dict | None:
    """The host-file route of ``path`` for a request with Host ``header`` (None: there is none
    for that host name; an older world's single set answers every Host)."""
    files = host_files.get(host_name(header) or "", host_files.get(ANY_HOST, {}))
    return files.get(path)


def _check_route(path: str, entry: object) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
        raise ValueError(f"routes.json {path}: a route must be a dict with a 'kind'")
    if "headers" in entry:
        check_route_headers(path, entry["headers"])


def check_route_epochs(path: str, epochs: object) -> dict[str, dict]:
    """A route's epoch overrides, checked: {"N": route} with 2 <= N <= MAX_EPOCH, no nesting."""
    if not isinstance(epochs, dict):
        raise ValueError(f"routes.json {path}: epochs must be a dict")
    for key, override in epochs.items():
        if not (isinstance(key, str) and key.isdigit() and 2 <= int(key) <= MAX_EPOCH):
            raise ValueError(f"routes.json {path}: epoch {key!r} is not in 2..{MAX_EPOCH}")
        if isinstance(override, dict) and "epochs" in override:
            raise ValueError(f"routes.json {path}: epoch {key} nests epochs")
    return epochs


def route_at(entry: dict, epoch: int) -> dict:
    """The route ``entry`` answers with at ``epoch``: its override of the latest epoch <= it, or
    (none due) the entry itself without its ``epochs``."""
    if "epochs" not in entry:
        return entry
    due = [int(k) for k in entry["epochs"] if int(k) <= epoch]
    if due:
        return entry["epochs"][str(max(due))]
    return {k: v for k, v in entry.items() if k != "epochs"}


def read_epoch(root: Path) -> int:
    """The epoch in ``root/epoch.json`` (1 when absent); ValueError naming the file if bad."""
    path = root / EPOCH_FILE
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return 1
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a JSON epoch file ({error})") from error
    epoch = document.get("epoch") if isinstance(document, dict) else None
    if type(epoch) is not int or not 1 <= epoch <= MAX_EPOCH:
        raise ValueError(f"{path}: 'epoch' must be an int in 1..{MAX_EPOCH}, not {epoch!r}")
    return epoch


def _signature(root: Path) -> tuple:
    """What changes when routes.json or epoch.json is replaced or edited (two stat calls)."""
    marks = []
    for name in ("routes.json", EPOCH_FILE):
        try:
            st = os.stat(root / name)
        except FileNotFoundError:
            marks.append(None)
            continue
        marks.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(marks)


@dataclass(frozen=True)
class _Served:
    """What the server answers from: one immutable snapshot, swapped whole on a reload."""

    signature: tuple
    routes: dict[str, dict]
    host_files: dict[str, dict[str, dict]]
    slow_seconds: float
    epoch: int


def check_loopback(host: str) -> None:
    """Refuse any bind address but a loopback one (the demo server is never reachable from
    outside the machine)."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the demo server binds loopback addresses only, not {host!r}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether another socket holds ``host:port`` (bound as the server binds it: SO_REUSEADDR,
    so a port left in TIME_WAIT by a stopped server counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


class DemoHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer holding a world's docroot and routes. ``bind=False`` binds no socket:
    requests are then handed to ``finish_request`` (a connected socket each), as the unit tests
    do over socket pairs."""

    daemon_threads = True

    def __init__(self, root: Path, host: str, port: int, bind: bool = True):
        check_loopback(host)
        self.root = root
        self.docroot = (root / "images").resolve()
        signature = _signature(root)
        self.served = _Served(signature, *load_routes(root), read_epoch(root))
        self._reload_lock = threading.Lock()
        self.world_root = str(root.resolve())
        self.last_request = time.monotonic()
        super().__init__((host, port), _Handler, bind_and_activate=bind)

    @property
    def routes(self) -> dict[str, dict]:
        return self.served.routes

    @property
    def slow_seconds(self) -> float:
        return self.served.slow_seconds

    def current(self) -> _Served:
        """The snapshot to answer from, reloaded first when routes.json or epoch.json changed
        (a file that fails to load keeps the last good snapshot; the failure goes to stderr)."""
        signature = _signature(self.root)
        if signature == self.served.signature:
            return self.served
        with self._reload_lock:
            if signature != self.served.signature:
                self.served = self._reload(signature)
        return self.served

    def _reload(self, signature: tuple) -> _Served:
        try:
            return _Served(signature, *load_routes(self.root), read_epoch(self.root))
        except (OSError, ValueError, KeyError) as error:
            print(f"poolsieve-demo: keeping the last good routes: {error}", file=sys.stderr)
            return replace(self.served, signature=signature)  # not retried until it changes

    def handle_error(self, request, client_address) -> None:
        """Quiet about clients that hang up (a downloader timing out on a slow route)."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: DemoHTTPServer
    protocol_version = "HTTP/1.0"
    server_version = "poolsieve-demo/1"
    timeout = SOCKET_TIMEOUT_S

    def log_message(self, format, *args) -> None:  # quiet: no line per request
        pass

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        served = self.server.current()
        if path == HEALTH_PATH:
            health = {
                "server": "poolsieve-demo",
                "pid": os.getpid(),
                "root": self.server.world_root,
                "epoch": served.epoch,
            }
            return self._send(200, "application/json", json.dumps(health).encode(), send_body)
        self.server.last_request = time.monotonic()
        entry = served.routes.get(path) or host_route(
            served.host_files, self.headers.get("Host"), path
        )
        entry = route_at(entry or {"kind": "404"}, served.epoch)
        kind = entry["kind"]
        if kind == "slow":
            time.sleep(min(float(entry.get("delay", served.slow_seconds)), MAX_DELAY_S))
        if kind in ("ok", "slow", "corrupt", "not_image", "file"):
            return self._send_file(entry, send_body)
        if kind == "redirect_private":
            return self._send(302, "text/plain", b"moved\n", send_body, entry["location"])
        status = 404 if kind == "404" else 500
        self._send(status, "text/plain", f"{status}\n".encode(), send_body)

    def _send_file(self, entry: dict, send_body: bool) -> None:
        path = (self.server.docroot / entry["file"]).resolve()
        if not path.is_relative_to(self.server.docroot) or not path.is_file():
            return self._send(404, "text/plain", b"404\n", send_body)
        data = path.read_bytes()
        self._send(200, entry["type"], data, send_body, headers=entry.get("headers"))

    def _send(
        self,
        status: int,
        ctype: str,
        data: bytes,
        send_body: bool,
        location: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if location is not None:
            self.send_header("Location", location)
        for name, value in (headers or {}).items():  # checked when routes.json was read
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(data)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)


def _watch_parent(server: DemoHTTPServer, parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    server.shutdown()


def _exit_when_idle(server: DemoHTTPServer, idle_s: float) -> None:
    while time.monotonic() - server.last_request < idle_s:
        time.sleep(min(1.0, idle_s / 4))
    server.shutdown()


def serve(
    root: Path,
    host: str,
    port: int,
    parent_pid: int | None = None,
    idle_exit: float | None = None,
) -> None:
    """Serve until SIGTERM, until ``parent_pid`` is no longer this process's parent, or until
    no request (health checks aside) came for ``idle_exit`` seconds."""
    server = DemoHTTPServer(Path(root), host, port)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if parent_pid is not None:
        threading.Thread(target=_watch_parent, args=(server, parent_pid), daemon=True).start()
    if idle_exit is not None:
        threading.Thread(target=_exit_when_idle, args=(server, idle_exit), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a poolsieve demo world's images.")
    parser.add_argument("--root", required=True, help="the world's root (routes.json, images/)")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when it goes away")
    parser.add_argument("--idle-exit", type=float, default=None, help="exit after N idle seconds")
    args = parser.parse_args(argv)
    try:
        check_loopback(args.host)
    except ValueError as error:
        parser.error(str(error))
    serve(Path(args.root), args.host, args.port, args.parent_pid, args.idle_exit)
    return 0


class DemoImageServer:
    """The demo server as a child process, started and stopped by its PID (never by name)."""

    def __init__(
        self,
        root: str | Path,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        detached_idle_exit: float | None = None,
    ):
        check_loopback(host)
        self.root, self.port, self.host = Path(root), port, host
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        # detached: may outlive this process (shared by several runs); exits after this idle time
        self.detached_idle_exit = detached_idle_exit
        self._proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> DemoImageServer:
        """Start the process and wait (at most start_timeout) until it answers /_health."""
        if self._proc is not None:
            raise RuntimeError(f"the demo server already runs as pid {self._proc.pid}")
        if not (self.root / "routes.json").is_file():
            raise FileNotFoundError(f"no demo world at {self.root} (routes.json missing)")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        self._proc = subprocess.Popen(
            self._command(),
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=_child_env(),
            start_new_session=self.detached_idle_exit is not None,
        )
        self._wait_healthy()
        return self

    def _command(self) -> list[str]:
        args = {"--root": self.root, "--host": self.host, "--port": self.port}
        if self.detached_idle_exit is None:
            args["--parent-pid"] = os.getpid()
        else:
            args["--idle-exit"] = self.detached_idle_exit
        return [sys.executable, "-m", "poolsieve_demo.server"] + [
            str(x) for pair in args.items() for x in pair
        ]

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                message = (
                    f"demo server for {self.url} exited with {self._proc.returncode}: "
                    f"{self._stderr()}"
                )
                self.stop()
                raise RuntimeError(message)
            if health_pid(self.url) == self._proc.pid:
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"demo server did not answer {HEALTH_PATH} in {self.start_timeout} s")

    def _stderr(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        """SIGTERM the process, SIGKILL it after stop_timeout, and reap it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self.stop_timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DemoImageServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _child_env() -> dict[str, str]:
    """The caller's environment, with this checkout first on PYTHONPATH (same code in the child)."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def health(url: str, timeout: float = 0.5) -> dict | None:
    """What a demo server at ``url`` reports on /_health (pid, root); None when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url + HEALTH_PATH, timeout=timeout) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) and answer.get("server") == "poolsieve-demo" else None


def health_pid(url: str, timeout: float = 0.5) -> int | None:
    """The pid a demo server at ``url`` reports on /_health (None when nothing answers)."""
    answer = health(url, timeout)
    return None if answer is None else answer.get("pid")


if __name__ == "__main__":
    sys.exit(main())
