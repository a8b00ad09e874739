"""The unit lane's promise, enforced: no CLIP training, no img2dataset, no server, no subprocess.

A unit test that starts any of them fails with a message saying where it belongs; the lane stays
quick enough to run on every edit (``make test-unit``).
"""

from __future__ import annotations

import socket
import subprocess

import pytest

MOVE = "belongs in tests/integration (the unit lane runs no {what})"


def pytest_configure(config):
    """matplotlib builds its font cache (running fc-list) on its first import in a fresh
    environment, and the CUDA build of torch looks its libraries up with ``ldconfig -p`` on its
    first import: both done here, before the lane refuses subprocesses, so a unit test that
    plots or imports torch does not fail for running first."""
    import matplotlib.font_manager  # noqa: F401
    import torch  # noqa: F401


def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise AssertionError(MOVE.format(what=what))

    return refuse


def _refuse_network(method, what: str):
    """``method`` for local (AF_UNIX) sockets, which worker processes use among themselves;
    refused for IP sockets."""

    def guarded(sock, *args, **kwargs):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(MOVE.format(what=what))
        return method(sock, *args, **kwargs)

    return guarded


@pytest.fixture(autouse=True)
def unit_lane(monkeypatch):
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("subprocess (trainer, CLI, server)"))
    monkeypatch.setattr(socket.socket, "bind", _refuse_network(socket.socket.bind, "server"))
    monkeypatch.setattr(
        socket.socket, "connect", _refuse_network(socket.socket.connect, "network connection")
    )
    for module in ("poolsieve.images.img2dataset_run", "poolsieve.images.download"):
        monkeypatch.setattr(f"{module}.run_img2dataset", _refuse("img2dataset run"))
