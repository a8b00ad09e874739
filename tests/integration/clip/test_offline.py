"""The trainer's offline guard: the network is denied, loopback is not (a real loopback server)."""

from __future__ import annotations

import socket

import pytest

from poolsieve.clip.offline import NetworkDenied, network_denied


def test_network_is_denied_but_loopback_is_not():
    with network_denied():
        with pytest.raises(NetworkDenied):
            socket.create_connection(("example.com", 80), timeout=1)
        with pytest.raises(NetworkDenied):
            socket.create_connection(("93.184.215.14", 80), timeout=1)
        server = socket.create_server(("127.0.0.1", 0))
        with server, socket.create_connection(server.getsockname(), timeout=1):
            pass
