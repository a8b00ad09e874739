"""HTTP(S) connections that reach only checked addresses, within the attempt's deadline.

Checking a host name's addresses and then letting ``http.client`` connect to the name would ask
DNS twice, and a hostile name server can answer a public address to the check and 127.0.0.1 to
the connect (DNS rebinding). So the connection resolves the host once, refuses it if *any*
address it resolves to is blocked (:func:`~poolsieve.images.address.check_address`), and then
connects to the checked IPs themselves: nothing is ever sent to a blocked address. The TLS
handshake still uses the host name (SNI, certificate check), since only the TCP connect is
replaced. Each connect waits at most the attempt's time left (:mod:`poolsieve.images.deadline`),
and the body is read through :class:`~poolsieve.images.body.CappedResponse`.
"""

from __future__ import annotations

import functools
import http.client
import socket

from poolsieve.images.address import Allowlist, check_address
from poolsieve.images.body import CappedResponse
from poolsieve.images.deadline import Attempt
from poolsieve.images.errors import GuardRefusal
from poolsieve.images.policy import FetchPolicy


def resolve_checked(host: str, port: int, allowlist: Allowlist) -> list[str]:
    """The IPs ``host`` resolves to; GuardRefusal if any of them is blocked (DNS rebinding)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ips = list(dict.fromkeys(info[4][0] for info in infos))
    for ip in ips:
        reason = check_address(ip, port, allowlist)
        if reason:
            raise GuardRefusal(f"{reason} (resolved from {host!r})")
    return ips


class _GuardedConnection:
    """Mixin before an ``http.client`` connection class: connect only to checked addresses,
    within the attempt's deadline; read bodies through CappedResponse."""

    def __init__(self, *args, policy: FetchPolicy, attempt: Attempt, **kwargs):
        super().__init__(*args, **kwargs)
        self._policy, self._attempt = policy, attempt
        # http.client connects through this attribute (replaceable since Python 3.4)
        self._create_connection = self._connect_checked
        self.response_class = functools.partial(
            CappedResponse, policy=policy, attempt=attempt, timeout=self.timeout
        )

    def _connect_checked(self, address, timeout, source_address=None):
        host, port = address
        last_error: OSError = OSError(f"no address for {host!r}")
        for ip in resolve_checked(host, port, self._policy.allowlist):
            limit = self._attempt.wait_limit(timeout)  # also bounds a TLS handshake (3.5+)
            try:
                return socket.create_connection((ip, port), limit, source_address)
            except TimeoutError as err:
                self._attempt.raise_if_spent(err)
                last_error = err
            except OSError as err:
                last_error = err
        raise last_error


class GuardedHTTPConnection(_GuardedConnection, http.client.HTTPConnection):
    """An ``http:`` connection under the guard."""


class GuardedHTTPSConnection(_GuardedConnection, http.client.HTTPSConnection):
    """An ``https:`` connection under the guard."""
