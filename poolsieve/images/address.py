"""Which addresses the downloader may reach: pure checks, no DNS, no network.

A pool is untrusted web data, so a URL in it may point at the machine that downloads it
(``http://127.0.0.1:2375/``), at the local network or at a cloud metadata service
(``http://169.254.169.254/``). Only globally routable unicast addresses are fetched, unless an
operator allowlists an address (e.g. a local image server on 127.0.0.1:port).

These functions decide on addresses and URL text alone; the fetch guard applies them to the
addresses DNS returns, right before each connect (:mod:`poolsieve.images.connection`) and on
every redirect hop (:mod:`poolsieve.images.redirects`).
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


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible ::a.b.c.d
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT's IPv4-translated


def embedded_ipv4(ip: IPAddress) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, each with the scheme that carries it.

    A packet to ``2002:7f00:1::`` goes to a 6to4 relay, which forwards it to 127.0.0.1, so the
    embedded address decides as much as the IPv6 one (Python counts 2002::/16 as global).
    Teredo (2001::/32) carries a server and an obfuscated client address, NAT64 (64:ff9b::/96)
    and the IPv4-compatible/-translated forms carry it in their last 32 bits. (IPv4-mapped
    ``::ffff:a.b.c.d`` is unmapped before this: it *is* that IPv4 address on the wire.)
    """
    if ip.version == 4:
        return []
    found = [("6to4", ip.sixtofour)] if ip.sixtofour else []
    if ip.teredo:
        found += [("Teredo server", ip.teredo[0]), ("Teredo client", ip.teredo[1])]
    if int(ip) <= 1:  # :: and ::1 are the unspecified and loopback addresses themselves
        return found
    last32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    for network, scheme in (
        (_NAT64, "NAT64"),
        (_COMPATIBLE, "IPv4-compatible"),
        (_TRANSLATED, "IPv4-translated"),
    ):
        if ip in network:
            found.append((scheme, last32))
    return found


def _refusal_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be reached: the kind of a blocked IPv4 address it carries (the
    clearer reason), else its own kind."""
    for scheme, ipv4 in embedded_ipv4(ip):
        inner = _kind(ipv4)
        if inner is not None:
            return f"{scheme} for {ipv4} ({inner})"
    return _kind(ip)


def check_address(host: str, port: int, allowlist=None) -> str | None:
    """The reason to refuse connecting to IP ``host`` on ``port``, or None to allow it.

    ``host`` is an IP address (what DNS returned), never a name. Allowlisted addresses pass;
    any other loopback, private, link-local, unspecified, multicast, reserved or otherwise
    non-global address is refused, as is an IPv6 address that carries such an IPv4 address
    (6to4, Teredo, NAT64, IPv4-compatible or -translated: see :func:`embedded_ipv4`).
    """
    try:
        ip = _unmap(ipaddress.ip_address(host.strip("[]").split("%")[0]))
    except ValueError:
        return f"blocked_private_address: {host!r} is not an IP address"
    if Allowlist.parse(allowlist).allows(ip, port):
        return None
    kind = _refusal_kind(ip)
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


def scheme_refusal(scheme: str) -> str | None:
    """Why a URL with this scheme is not fetched; None for http and https."""
    if scheme.lower() in DEFAULT_PORTS:
        return None
    return f"blocked_scheme: {scheme or 'no'} scheme (only http and https are fetched)"


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
        return scheme_refusal(scheme)
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
