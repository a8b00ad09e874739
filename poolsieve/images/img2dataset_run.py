"""One call of ``img2dataset.download`` over a prepared parquet, with progress and clean-up.

img2dataset quirks handled here:

- importing it imports albumentations, which asks PyPI for updates unless
  ``NO_ALBUMENTATIONS_UPDATE`` is set (no internet here: it would stall);
- ``download`` installs its own SIGINT handler (which calls ``sys.exit``) and never restores it,
  so it must run in the main thread and we put the caller's handler back afterwards;
- its processes (a logger and a pool of downloaders) would outlive a caller killed by SIGKILL,
  one finishing its shard into the caller's temporary folder, the logger polling for ever:
  ``children_die_with_caller`` (img2dataset_children.py) ties them to the caller;
- its progress lives in worker processes; the only signal the parent can read is each finished
  shard's ``NNNNNNNN_stats.json``, so progress advances one img2dataset shard at a time;
- it prints its own progress (sharding messages, tqdm bars, per-worker stats) from the parent and
  its workers: that output is captured and handed to the caller's log (the asset's run log), not
  the terminal, and a failure carries its last lines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from poolsieve.images.guard import opencv_env
from poolsieve.images.settings import DownloadSettings, img2dataset_kwargs

Progress = Callable[[int, int], None]
Log = Callable[[str], None]
#: the most lines of captured output logged (the last ones), and added to a failure's message
LOGGED_LINES, FAILURE_LINES = 200, 40


def run_img2dataset(
    input_parquet: Path,
    output_folder: Path,
    settings: DownloadSettings,
    *,
    has_bboxes: bool,
    progress: Progress | None = None,
    offset: int = 0,
    total: int = 0,
    log: Log | None = None,
) -> None:
    """Download the rows of ``input_parquet`` into ``output_folder`` (which must not exist).

    ``progress(offset + rows reported so far, total)`` is called from a background thread;
    ``log`` gets img2dataset's console output once it ends (default: this module's Python logger
    at DEBUG, shown by ``poolsieve -v``).
    """
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import img2dataset  # heavy (cv2, albumentations, wandb): imported only when downloading

    from poolsieve.images.img2dataset_children import children_die_with_caller

    kwargs = img2dataset_kwargs(settings, has_bboxes=has_bboxes)
    with (
        _environ(opencv_env(settings.policy())),
        _signals_for_workers(),
        children_die_with_caller(),
        captured_output(log or logging.getLogger(__name__).debug),
        _poll_stats(output_folder, progress, offset, total),
    ):
        img2dataset.download(
            url_list=str(input_parquet), output_folder=str(output_folder), **kwargs
        )


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set variables that spawned workers inherit, then restore the parent's environment."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def captured_output(log: Log) -> Iterator[None]:
    """Send what the body writes to stdout and stderr to ``log`` instead of the terminal.

    File descriptors 1 and 2 are redirected (not just ``sys.stdout``), so the output of child
    processes and of C code is caught too, as is anything else the process writes meanwhile.
    ``log`` gets it once, afterwards, with progress-bar redraws collapsed to their final state;
    if the body raises, the output's last lines are added to the exception as a note.
    """
    with tempfile.TemporaryFile() as sink:
        try:
            with _redirected(sink.fileno()):
                yield
        except Exception as error:
            tail = output_lines(sink)[-FAILURE_LINES:]
            if tail:
                error.add_note("console output before the error (last lines):\n" + "\n".join(tail))
            raise
        finally:
            lines = output_lines(sink)
            if lines:
                omitted = max(len(lines) - LOGGED_LINES, 0)
                head = [f"({omitted} earlier lines omitted)"] if omitted else []
                log("\n".join(head + lines[-LOGGED_LINES:]))


@contextlib.contextmanager
def _redirected(target: int) -> Iterator[None]:
    """File descriptors 1 and 2, and Python's sys.stdout and sys.stderr (which need not write to
    them, under pytest for one), point at ``target`` while the body runs, then back."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    stream = open(os.dup(target), "w", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115
    try:
        for fd in (1, 2):
            os.dup2(target, fd)
        with stream, contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            yield
    finally:
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def output_lines(sink) -> list[str]:
    """The non-blank lines written to ``sink``, each carriage-return redraw (a tqdm bar's
    update) replaced by its last state."""
    sink.seek(0)
    text = sink.read().decode(errors="replace")
    lines = (line.rstrip("\r").rsplit("\r", 1)[-1].rstrip() for line in text.split("\n"))
    return [line for line in lines if line]


@contextlib.contextmanager
def _signals_for_workers() -> Iterator[None]:
    """SIGTERM not ignored while img2dataset's pool spawns workers; both handlers restored.

    Workers inherit an *ignored* SIGTERM, and img2dataset ends its pool with terminate() + join():
    a worker that ignores SIGTERM never exits and the join hangs for ever. Dagster's in-process
    execution leaves SIGTERM set to whatever SIGINT was, which is "ignored" in any process started
    in the background by a non-interactive shell (``nohup make test &``): seen here as a hung test.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be changed on the main thread
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if saved[signal.SIGTERM] == signal.SIG_IGN:  # a Python handler is not inherited: left alone
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def reported_rows(folder: Path) -> int:
    """Rows img2dataset has finished, summed over the shards whose stats file exists."""
    done = 0
    for path in folder.glob("*_stats.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            done += json.loads(path.read_text())["count"]
    return done


@contextlib.contextmanager
def _poll_stats(
    folder: Path, progress: Progress | None, offset: int, total: int, interval: float = 1.0
) -> Iterator[None]:
    """Report progress every ``interval`` seconds while the body runs."""
    if progress is None:
        yield
        return
    stop = threading.Event()

    def poll():
        while not stop.wait(interval):
            progress(offset + reported_rows(folder), total)

    thread = threading.Thread(target=poll, name="img2dataset-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
