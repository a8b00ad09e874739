"""img2dataset's child processes die with the process that called ``img2dataset.download``.

``download`` starts two kinds of processes, with the spawn start method: a ``LoggerProcess``
(every few seconds it reads the shards' stats files and prints totals, looping until the caller
tells it to stop) and, through its multiprocessing distributor, a pool of Downloader workers.
A caller killed by SIGKILL tells them nothing: a worker busy with a shard finishes it into the
caller's temporary folder, which a re-run is sweeping or starting over in, and the logger polls
for ever. img2dataset has no hook for either, so while :func:`children_die_with_caller` is
active, its distributor gets a spawn context whose pools run :func:`die_with_parent_process` in
every worker first (as the pool's initializer: the first workers and those replacing a worker
after ``maxtasksperchild``), and ``download`` creates a ``LoggerProcess`` whose ``run`` does the
same. Both run in the child once multiprocessing knows its parent, so a parent that died while
the child was starting is noticed too (poolsieve.parent_death).

Imported only when downloading (it imports img2dataset); the children import
``die_with_parent_process`` and ``DyingLoggerProcess`` from here by name.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
from collections.abc import Iterator

from img2dataset.logger import LoggerProcess

from poolsieve.parent_death import die_with_parent

# modules, not the functions img2dataset/__init__.py exports under the same names
_MAIN = importlib.import_module("img2dataset.main")
_DISTRIBUTOR = importlib.import_module("img2dataset.distributor")


@contextlib.contextmanager
def children_die_with_caller() -> Iterator[None]:
    """While the body runs, every process ``img2dataset.download`` starts dies with its caller.
    Call it from the main thread (as ``download`` itself must be)."""
    saved = _DISTRIBUTOR.get_context, _MAIN.LoggerProcess
    _DISTRIBUTOR.get_context, _MAIN.LoggerProcess = _DyingWorkers.of, DyingLoggerProcess
    try:
        yield
    finally:
        _DISTRIBUTOR.get_context, _MAIN.LoggerProcess = saved


def die_with_parent_process() -> None:
    """In a multiprocessing child: die when the process that started it exits."""
    die_with_parent(multiprocessing.parent_process().pid)


class _DyingWorkers:
    """A multiprocessing context whose ``Pool`` starts every worker with
    :func:`die_with_parent_process`; anything else is the wrapped context's."""

    def __init__(self, context):
        self._context = context

    @classmethod
    def of(cls, method: str | None = None) -> _DyingWorkers:
        return cls(multiprocessing.get_context(method))

    def Pool(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None):  # noqa: N802
        if initializer is not None:
            raise ValueError("img2dataset passed a pool initializer: poolsieve's would replace it")
        return self._context.Pool(processes, die_with_parent_process, (), maxtasksperchild)

    def __getattr__(self, name: str):
        return getattr(self._context, name)


class DyingLoggerProcess(LoggerProcess):
    """img2dataset's logger process, dying with the process that started it."""

    def run(self):
        die_with_parent_process()
        super().run()
