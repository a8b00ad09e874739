"""Which addresses the downloader may reach: pure checks, no DNS, no network.

A pool is untrusted web data, so a URL in it may point at the machine that downloads it
(``http://127.0.0.1:2375/``), at the local network or at a cloud metadata service
(``http://169.254.169.254/``). Only globally routable unicast addresses are fetched, unless an
operator allowlists an address (e.g. a local image server on 127.0.0.1:port).

These functions decide on addresses and URL text alone; :mod:`poolsieve.images.guard` applies
them to the addresses DNS returns, right before each connect and on every redirect hop.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Allowlist:
    """Addresses reachable although not public: exact ``ip:port`` pairs and whole networks."""

    endpoints: frozenset[tuple[IPAddress, int]] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Allowlist | tuple[str, ...] | list[str] | None) -> Allowlist:
        """Parse ``"127.0.0.1:8000"``, ``"[::1]:8000"``, ``"10.0.0.0/8"`` or a bare IP (any port).

        Entries are IP addresses, never host names: the guard decides on the address a name
        resolves to, so a name here could be re-pointed by whoever controls its DNS.
        """
        if isinstance(entries, Allowlist):
            return entries
        endpoints, networks = set(), []
        for entry in entries or ():
            endpoint = _parse_endpoint(entry)
            if endpoint is None:
                networks.append(_parse_network(entry))
            else:
                endpoints.add(endpoint)
        return cls(frozenset(endpoints), tuple(networks))

    def allows(self, ip: IPAddress, port: int) -> bool:
        return (ip, port) in self.endpoints or any(ip in net for net in self.networks)


def _parse_endpoint(entry: str) -> tuple[IPAddress, int] | None:
    """``host:port`` -> (ip, port); None when the entry has no port (a network or bare IP)."""
    host, sep, port = entry.strip().rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
        return None
    try:
        return _unmap(ipaddress.ip_address(host.strip("[]"))), int(port)
    except ValueError as err:
        raise ValueError(f"allowlist entry {entry!r}: host must be an IP address") from err


def _parse_network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError as err:
        raise ValueError(f"allowlist entry {entry!r} is neither 'ip:port' nor a CIDR") from err


def _unmap(ip: IPAddress) -> IPAddress:
    """``::ffff:127.0.0.1`` is 127.0.0.1 on the wire; judge the IPv4 address it carries."""
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip


def _kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None when it is."""
    for flag, label in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, flag):
            return label
    return None if ip.is_global else "not globally routable"


def check_address(host: str, port: int, allowlist=None) -> str | None:
    """The reason to refuse connecting to IP ``host`` on ``port``, or None to allow it.

    ``host`` is an IP address (what DNS returned), never a name. Allowlisted addresses pass;
    any other loopback, private, link-local, unspecified, multicast, reserved or otherwise
    non-global address is refused.
    """
    try:
        ip = _unmap(ipaddress.ip_address(host.strip("[]").split("%")[0]))
    except ValueError:
        return f"blocked_private_address: {host!r} is not an IP address"
    if Allowlist.parse(allowlist).allows(ip, port):
        return None
    kind = _kind(ip)
    return None if kind is None else f"blocked_private_address: {host}:{port} is {kind}"


def literal_ip(host: str) -> str | None:
    """The IP a URL host denotes without DNS (``10.0.0.1``, ``[::1]``, ``2130706433``), else None.

    The C resolver accepts legacy IPv4 spellings (decimal, octal, hex, short forms), so those
    count as literal addresses too.
    """
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


def check_url(url: object, allowlist=None) -> str | None:
    """The reason a URL must not be fetched, judged from its text alone; None if it may be tried.

    Refuses non-http(s) schemes, URLs without a host and hosts that are private IP literals.
    Host names pass here: their addresses are checked when the connection is made.
    """
    if not isinstance(url, str) or not url.strip():
        return "invalid_url: empty URL"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:
        return f"invalid_url: {err}"
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return f"blocked_scheme: {scheme or 'no'} scheme (only http and https are fetched)"
    if not parts.hostname:
        return "invalid_url: no host"
    ip = literal_ip(parts.hostname)
    if ip is None:
        return None
    return check_address(ip, port or DEFAULT_PORTS[scheme], allowlist)


LOCALHOST_IPS = ("127.0.0.1", "[::1]")


def endpoints_for_hosts(hosts: list[str]) -> list[str]:
    """``host:port`` strings as allowlist entries: "localhost" (loopback by RFC 6761, so no DNS
    is asked) becomes every loopback address it may resolve to; IP hosts pass unchanged."""
    entries = []
    for entry in hosts:
        host, _, port = entry.rpartition(":")
        ips = LOCALHOST_IPS if host.lower() == "localhost" else (host,)
        entries += [f"{ip}:{port}" for ip in ips]
    return list(dict.fromkeys(entries))
