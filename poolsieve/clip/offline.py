"""Keep training and loading off the network: environment switches plus a hard socket guard.

The environment variables stop the libraries that honour them (huggingface_hub, wandb) from
trying; `deny_network()` turns any remaining attempt into an immediate, loud error instead of a
hang or a silent fallback on a machine without internet.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "WANDB_DISABLED": "true",
}

_INET = (socket.AF_INET, socket.AF_INET6)
_LOCAL_HOSTS = {None, "localhost", "127.0.0.1", "::1", ""}
_CONNECT = socket.socket.connect
_CONNECT_EX = socket.socket.connect_ex
_GETADDRINFO = socket.getaddrinfo


class NetworkDenied(RuntimeError):
    """Raised when code tries to reach the network while it is denied."""


def _guard_connect(original):
    def connect(self, address, *args):
        if self.family in _INET and address[0] not in _LOCAL_HOSTS:
            raise NetworkDenied(f"network access denied: connect to {address!r}")
        return original(self, address, *args)

    return connect


def _getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL_HOSTS:
        raise NetworkDenied(f"network access denied: name lookup of {host!r}")
    return _GETADDRINFO(host, *args, **kwargs)


def deny_network() -> None:
    """Make every connection or name lookup beyond this machine raise `NetworkDenied`.

    Loopback and Unix sockets stay allowed: torch's DataLoader workers pass tensors over Unix
    sockets, and a local image server may listen on 127.0.0.1. Idempotent.
    """
    socket.socket.connect = _guard_connect(_CONNECT)
    socket.socket.connect_ex = _guard_connect(_CONNECT_EX)
    socket.getaddrinfo = _getaddrinfo


def allow_network() -> None:
    """Undo `deny_network()`."""
    socket.socket.connect = _CONNECT
    socket.socket.connect_ex = _CONNECT_EX
    socket.getaddrinfo = _GETADDRINFO


@contextmanager
def network_denied() -> Iterator[None]:
    """`deny_network()` for the duration of a block (tests, in-process loading)."""
    deny_network()
    try:
        yield
    finally:
        allow_network()
