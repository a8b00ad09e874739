"""The guard's pure checks: which addresses and URLs may be fetched, and error categories."""

from __future__ import annotations

import io
import ipaddress
import pickle
import struct
import urllib.error
import urllib.request
import zlib

import pytest
from PIL import Image

from poolsieve.images.address import Allowlist, check_address, check_url, embedded_ipv4
from poolsieve.images.body import vet_image
from poolsieve.images.errors import GuardRefusal, categorize
from poolsieve.images.guard import GuardedTimeout
from poolsieve.images.policy import FetchPolicy
from poolsieve.images.settings import DownloadSettings


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("93.184.216.34", 80, None),
        ("2606:4700::1111", 443, None),
        ("127.0.0.1", 80, "blocked_private_address: 127.0.0.1:80 is loopback"),
        ("127.8.9.10", 80, "blocked_private_address: 127.8.9.10:80 is loopback"),
        ("10.1.2.3", 80, "blocked_private_address: 10.1.2.3:80 is private"),
        ("192.168.0.1", 8080, "blocked_private_address: 192.168.0.1:8080 is private"),
        ("169.254.169.254", 80, "blocked_private_address: 169.254.169.254:80 is link-local"),
        ("0.0.0.0", 80, "blocked_private_address: 0.0.0.0:80 is unspecified"),
        ("224.0.0.1", 80, "blocked_private_address: 224.0.0.1:80 is multicast"),
        ("100.64.0.1", 80, "blocked_private_address: 100.64.0.1:80 is not globally routable"),
        ("::1", 80, "blocked_private_address: ::1:80 is loopback"),
        ("::ffff:127.0.0.1", 80, "blocked_private_address: ::ffff:127.0.0.1:80 is loopback"),
        ("fe80::1", 80, "blocked_private_address: fe80::1:80 is link-local"),
        ("fc00::1", 80, "blocked_private_address: fc00::1:80 is private"),
        # IPv6 addresses that carry a blocked IPv4 address
        (
            "2002:7f00:1::",
            80,
            "blocked_private_address: 2002:7f00:1:::80 is 6to4 for 127.0.0.1 (loopback)",
        ),
        (
            "2002:a9fe:a9fe::",
            80,
            "blocked_private_address: 2002:a9fe:a9fe:::80 is 6to4 for 169.254.169.254 (link-local)",
        ),
        (
            "2002:a00:1::1",
            443,
            "blocked_private_address: 2002:a00:1::1:443 is 6to4 for 10.0.0.1 (private)",
        ),
        ("2002:5db8:d822::1", 80, None),  # 6to4 of a public address
        (
            "64:ff9b::a9fe:a9fe",
            80,
            "blocked_private_address: 64:ff9b::a9fe:a9fe:80 is NAT64 for 169.254.169.254 (link-local)",
        ),
        (
            "::7f00:1",
            80,
            "blocked_private_address: ::7f00:1:80 is IPv4-compatible for 127.0.0.1 (loopback)",
        ),
        (
            "::ffff:0:a00:1",
            80,
            "blocked_private_address: ::ffff:0:a00:1:80 is IPv4-translated for 10.0.0.1 (private)",
        ),
        ("::", 80, "blocked_private_address: :::80 is unspecified"),
        ("example.com", 80, "blocked_private_address: 'example.com' is not an IP address"),
    ],
)
def test_check_address(host, port, expected):
    assert check_address(host, port, []) == expected


def test_embedded_ipv4_addresses_are_decoded():
    teredo = ipaddress.ip_address("2001:0:4136:e378:8000:63bf:3fff:fdd2")  # RFC 4380's example
    assert embedded_ipv4(teredo) == [
        ("Teredo server", ipaddress.ip_address("65.54.227.120")),
        ("Teredo client", ipaddress.ip_address("192.0.2.45")),
    ]
    assert embedded_ipv4(ipaddress.ip_address("2002:7f00:1::")) == [
        ("6to4", ipaddress.ip_address("127.0.0.1"))
    ]
    assert embedded_ipv4(ipaddress.ip_address("64:ff9b::7f00:1")) == [
        ("NAT64", ipaddress.ip_address("127.0.0.1"))
    ]
    assert embedded_ipv4(ipaddress.ip_address("2606:4700::1111")) == []
    assert embedded_ipv4(ipaddress.ip_address("::1")) == []
    reason = check_address(str(teredo), 80, [])
    assert reason is not None and reason.startswith("blocked_private_address:")


def test_allowlisting_an_ipv4_endpoint_does_not_open_its_6to4_form():
    assert check_address("127.0.0.1", 8000, ["127.0.0.1:8000"]) is None
    assert check_address("2002:7f00:1::", 8000, ["127.0.0.1:8000"]) is not None


def test_allowlist_entries_open_exactly_what_they_name():
    allow = ["127.0.0.1:8000", "10.0.0.0/8", "[::1]:9000", "192.168.1.5"]
    assert check_address("127.0.0.1", 8000, allow) is None
    assert check_address("127.0.0.1", 8001, allow) is not None
    assert check_address("10.200.3.4", 1234, allow) is None
    assert check_address("::1", 9000, allow) is None
    assert check_address("::1", 9001, allow) is not None
    assert check_address("192.168.1.5", 22, allow) is None
    assert check_address("192.168.1.6", 22, allow) is not None


@pytest.mark.parametrize("entry", ["localhost:8000", "not-an-address", "10.0.0.0/33"])
def test_allowlist_rejects_names_and_garbage_at_configuration_time(entry):
    with pytest.raises(ValueError, match="allowlist entry"):
        Allowlist.parse([entry])
    with pytest.raises(ValueError, match="allowlist entry"):
        DownloadSettings(allowlist=[entry])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://img.example.com/a.jpg", None),
        ("HTTPS://img.example.com:8443/a.jpg?x=1", None),
        ("ftp://example.com/a.jpg", "blocked_scheme: ftp scheme (only http and https are fetched)"),
        ("file:///etc/passwd", "blocked_scheme: file scheme (only http and https are fetched)"),
        (
            "data:image/png;base64,AAAA",
            "blocked_scheme: data scheme (only http and https are fetched)",
        ),
        ("//example.com/a.jpg", "blocked_scheme: no scheme (only http and https are fetched)"),
        ("", "invalid_url: empty URL"),
        (None, "invalid_url: empty URL"),
        ("http:///a.jpg", "invalid_url: no host"),
        ("http://example.com:99999/a.jpg", "invalid_url: Port out of range 0-65535"),
        ("http://127.0.0.1/a.jpg", "blocked_private_address: 127.0.0.1:80 is loopback"),
        ("https://10.0.0.7/a.jpg", "blocked_private_address: 10.0.0.7:443 is private"),
        ("http://[::1]:8080/a.jpg", "blocked_private_address: ::1:8080 is loopback"),
        (
            "http://[2002:a9fe:a9fe::]/latest/meta-data/",
            "blocked_private_address: 2002:a9fe:a9fe:::80 is 6to4 for 169.254.169.254 (link-local)",
        ),
        (
            "http://169.254.169.254/latest/meta-data/",
            "blocked_private_address: 169.254.169.254:80 is link-local",
        ),
        # legacy IPv4 spellings the C resolver accepts
        ("http://2130706433/a.jpg", "blocked_private_address: 127.0.0.1:80 is loopback"),
        ("http://0x7f.1/a.jpg", "blocked_private_address: 127.0.0.1:80 is loopback"),
        ("http://127.0.0.1:8000/a.jpg", None),  # allowlisted below
        ("http://127.0.0.1:8001/a.jpg", "blocked_private_address: 127.0.0.1:8001 is loopback"),
    ],
)
def test_check_url(url, expected):
    assert check_url(url, ["127.0.0.1:8000"]) == expected


@pytest.mark.parametrize(
    ("message", "category"),
    [
        (None, None),
        ("HTTP Error 404: Not Found", "http_404"),
        ("HTTP Error 500: Internal Server Error", "http_500"),
        ("HTTP Error 504: Gateway Timeout", "http_504"),
        ("<urlopen error timed out>", "timeout"),
        ("The read operation timed out", "timeout"),
        ("Image decoding error", "decode_error"),
        ("hash mismatch", "hash_mismatch"),
        (
            "<urlopen error blocked_private_address: 127.0.0.1:1 is loopback>",
            "blocked_private_address",
        ),
        (
            "blocked_redirect: 302 to http://10.1.2.3/ refused (blocked_private_address: ...)",
            "blocked_redirect",
        ),
        ("too_large: body exceeds 100 bytes", "too_large"),
        ("deadline: not fetched within 2 s (connect, redirects and body)", "deadline"),
        ("decompression_bomb: 20000x20000 exceeds 89478485 pixels", "decompression_bomb"),
        ("not_image: text/html body with no image header", "not_image"),
        (
            "OpenCV(4.14.0) error: (-215:Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS",
            "decompression_bomb",
        ),
        ("<urlopen error [Errno 111] Connection refused>", "connection_error"),
        ("<urlopen error [Errno -2] Name or service not known>", "connection_error"),
        ("Use of image disallowed by X-Robots-Tag directive", "robots_disallowed"),
        (
            "HTTP Error 302: The HTTP server returned a redirect error that would lead to an infinite loop.",
            "too_many_redirects",
        ),
        ("something else entirely", "other"),
    ],
)
def test_categorize(message, category):
    assert categorize(message) == category


def test_guard_refusal_needs_a_known_category():
    assert GuardRefusal("too_large: 5 bytes").category == "too_large"
    with pytest.raises(ValueError):
        GuardRefusal("made_up: nope")


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header claims ``width`` x ``height`` RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width * 3 + 1) * 2)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_vet_image():
    policy = FetchPolicy(max_image_pixels=10_000)
    vet_image(png(100, 100), "image/png", policy)  # exactly at the limit: fine
    vet_image(b"\xff\xd8\xff garbage", "image/jpeg", policy)  # the decoder will judge it
    vet_image(png(10, 10), "text/html", policy)  # mislabelled image: still an image
    with pytest.raises(GuardRefusal, match=r"^decompression_bomb: 101x100 exceeds 10000"):
        vet_image(png(101, 100), "image/png", policy)
    with pytest.raises(GuardRefusal, match=r"^decompression_bomb"):
        vet_image(png_declaring(20_000, 20_000), "image/png", FetchPolicy())
    with pytest.raises(GuardRefusal, match=r"^not_image: text/html"):
        vet_image(b"<html><body>moved</body></html>", "text/html", policy)


@pytest.fixture
def restore_urllib_and_pil():
    limit = Image.MAX_IMAGE_PIXELS
    yield
    urllib.request.install_opener(None)
    Image.MAX_IMAGE_PIXELS = limit


def test_unpickling_the_timeout_installs_the_guard(restore_urllib_and_pil):
    """What each img2dataset worker does with every task, shown in this process."""
    carried = pickle.dumps(GuardedTimeout(2.5, FetchPolicy(max_image_pixels=1234)))
    timeout = pickle.loads(carried)
    assert timeout == 2.5 and isinstance(timeout, float)
    assert Image.MAX_IMAGE_PIXELS == 1234
    with pytest.raises(urllib.error.URLError, match="unknown url type: file"):
        urllib.request.urlopen("file:///etc/hostname", timeout=1)
