"""The fetch guard, active inside img2dataset's own worker processes.

How img2dataset 1.47.0 fetches: ``Downloader.download_shard`` runs ``download_image`` in a
thread pool, which calls ``urllib.request.urlopen(Request(url), timeout=timeout)`` and then
``r.read()`` — so every fetch goes through the process-wide opener that
``urllib.request.install_opener`` sets. Its multiprocessing distributor runs Downloaders in a
``get_context("spawn")`` pool (``maxtasksperchild=5``): fresh interpreters that inherit nothing
the parent installed, and into which each task pickles the whole Downloader.

Hook: ``timeout`` is the one value ``img2dataset.download`` hands to the Downloader unchanged
(it stores it and passes it to ``urlopen``). We pass a :class:`GuardedTimeout`, a ``float`` whose
pickled form is "call :func:`_restore` with the seconds and the :class:`FetchPolicy`". Unpickling
a task therefore installs the guarded opener in that worker *before* the Downloader runs, whatever
the start method (spawn, fork, forkserver) and under img2dataset's pyspark and ray distributors too,
which pickle the Downloader the same way. No sitecustomize, no environment hook, no patched
img2dataset code: only urllib's public ``install_opener``, in processes img2dataset owns.
Rejected: ``processes_count=1`` does not help (the pool still spawns a worker); calling
img2dataset's Downloader in-process would bypass ``img2dataset.download`` and its bookkeeping.

What the installed opener enforces:

- only http and https handlers (no file:, ftp:, data:), and no proxies from the environment (a
  proxy would connect on our behalf, out of the address check's sight);
- every connection resolves the host, refuses it if *any* address it resolves to is blocked
  (:func:`~poolsieve.images.address.check_address`), then connects to the checked IP itself,
  so DNS cannot answer differently between check and connect, and nothing is sent to a blocked
  address;
- every redirect hop is checked (scheme, literal IP, resolved addresses) before it is followed,
  and a refused hop is a ``blocked_redirect`` (urllib's own refusal of a ``file:`` or ``gopher:``
  Location would surface as a bare ``HTTP Error 302``);
- a body larger than ``max_image_bytes`` is refused (by Content-Length before reading, else
  while reading, whether or not the server sent a length);
- each fetch (connect, request, headers, redirect hops and body together) ends at an overall
  ``deadline``: every socket operation waits at most the time left, so a server that drips one
  byte per ``timeout`` cannot hold a thread for ever (``timeout`` alone bounds each read, not
  their sum). Only DNS resolution is outside it: ``getaddrinfo`` cannot be interrupted;
- img2dataset retries every failed URL (``retries`` times, at once, in the same thread): a URL
  the guard refused is not fetched again — the retry gets the same refusal without a request,
  since blocked addresses, oversized bodies, bombs and dripping servers would only repeat;
- a 2xx body is sniffed with PIL, which reads only the header: more than ``max_image_pixels``
  is a decompression bomb, refused before OpenCV allocates it; a body that is no image and not
  served as one is ``not_image``. OpenCV's own limit is read from ``OPENCV_IO_MAX_IMAGE_PIXELS``
  when cv2 loads, which in a spawned worker happens before our unpickling, so the caller sets
  that variable in the parent and the workers inherit it (:func:`opencv_env`).
"""

from __future__ import annotations

import functools
import http.client
import io
import socket
import threading
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from urllib.parse import urlparse, urlsplit

from PIL import Image

from poolsieve.images.address import (
    DEFAULT_PORTS,
    Allowlist,
    check_address,
    check_url,
    scheme_refusal,
)
from poolsieve.images.errors import GuardRefusal

READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class FetchPolicy:
    """What a worker may fetch; pickled into every img2dataset task."""

    allowlist: Allowlist = field(default_factory=Allowlist)
    max_image_bytes: int = 20 * 2**20
    max_image_pixels: int = 89_478_485
    max_redirects: int = 5
    deadline: float = 30.0  # seconds for one fetch: connect, redirects and body together


@dataclass
class Attempt:
    """One fetch of one URL: the top-level request, its redirect hops and the body read.

    Carried on the urllib Request (and copied onto each redirect hop), the connections and the
    response, so that all of them share one deadline; ``refused`` keeps a guard refusal for the
    retry that img2dataset makes next.
    """

    url: str
    seconds: float
    ends: float = field(init=False)
    refused: Exception | None = None

    def __post_init__(self):
        self.ends = time.monotonic() + self.seconds

    def expired(self) -> bool:
        return time.monotonic() >= self.ends

    def wait_limit(self, timeout: object) -> float:
        """How long the next socket operation may wait: the timeout or the time left, whichever
        is less. GuardRefusal (``deadline``) once no time is left."""
        left = self.ends - time.monotonic()
        if left <= 0:
            raise self.deadline_refusal()
        return min(timeout, left) if isinstance(timeout, int | float) else left

    def deadline_refusal(self) -> GuardRefusal:
        return GuardRefusal(
            f"deadline: not fetched within {self.seconds:g} s (connect, redirects and body)"
        )


def resolve_checked(host: str, port: int, allowlist: Allowlist) -> list[str]:
    """The IPs ``host`` resolves to; GuardRefusal if any of them is blocked (DNS rebinding)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ips = list(dict.fromkeys(info[4][0] for info in infos))
    for ip in ips:
        reason = check_address(ip, port, allowlist)
        if reason:
            raise GuardRefusal(f"{reason} (resolved from {host!r})")
    return ips


def vet_image(body: bytes, content_type: str, policy: FetchPolicy) -> None:
    """Refuse a body that declares too many pixels, or is no image and not served as one."""
    try:
        with Image.open(io.BytesIO(body)) as img:
            width, height = img.size
    except Image.DecompressionBombError as err:
        raise GuardRefusal(f"decompression_bomb: {err}") from err
    except Exception as err:  # PIL cannot parse it: let the decoder judge image/* bodies
        if content_type.startswith("image/") or content_type == "application/octet-stream":
            return
        raise GuardRefusal(f"not_image: {content_type} body with no image header") from err
    if width * height > policy.max_image_pixels:
        raise GuardRefusal(
            f"decompression_bomb: {width}x{height} exceeds {policy.max_image_pixels} pixels"
        )


class _DeadlineReader(io.RawIOBase):
    """The socket's bytes, each read waiting at most the attempt's time left (or ``timeout``)."""

    def __init__(self, sock, attempt: Attempt, timeout: object):
        super().__init__()
        self._sock, self._attempt, self._timeout = sock, attempt, timeout
        self._raw = sock.makefile("rb", buffering=0)  # holds the socket open until closed

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer) -> int | None:
        self._sock.settimeout(self._attempt.wait_limit(self._timeout))
        try:
            return self._raw.readinto(buffer)
        except TimeoutError as err:
            if self._attempt.expired():
                raise self._attempt.deadline_refusal() from err
            raise

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What HTTPResponse reads from: ``makefile`` gives the deadline-bound reader."""

    def __init__(self, sock, attempt: Attempt, timeout: object):
        self._args = sock, attempt, timeout

    def makefile(self, mode: str = "rb"):
        return io.BufferedReader(_DeadlineReader(*self._args))


class CappedResponse(http.client.HTTPResponse):
    """An HTTP response read under the attempt's deadline, that refuses bodies over the byte cap
    and vets 2xx image bodies. A refusal is kept on the attempt (see GuardedOpener)."""

    def __init__(self, sock, *args, policy: FetchPolicy, attempt: Attempt, timeout=None, **kw):
        super().__init__(_DeadlineSocket(sock, attempt, timeout), *args, **kw)
        self._policy, self._attempt = policy, attempt

    def read(self, amt=None):
        if amt is not None:
            return super().read(amt)
        try:
            return self._read_vetted()
        except GuardRefusal as refusal:
            self._attempt.refused = refusal
            self.close()
            raise

    def _read_vetted(self) -> bytes:
        cap = self._policy.max_image_bytes
        if self.length is not None and self.length > cap:
            raise GuardRefusal(f"too_large: Content-Length {self.length} exceeds {cap} bytes")
        body = self._read_capped(cap)
        if 200 <= self.status < 300:
            vet_image(body, self.headers.get_content_type(), self._policy)
        return body

    def _read_capped(self, cap: int) -> bytes:
        chunks, total = [], 0
        while chunk := super().read(min(READ_CHUNK, cap + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                raise GuardRefusal(f"too_large: body exceeds {cap} bytes")
        if self.length:  # the server closed before Content-Length: not an image to decode
            raise http.client.IncompleteRead(b"".join(chunks), self.length)
        return b"".join(chunks)


class _GuardedConnection:
    """Mixin: connect only to checked addresses, within the attempt's deadline; read bodies
    through CappedResponse."""

    def _guard(self, policy: FetchPolicy, attempt: Attempt) -> None:
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
                if self._attempt.expired():
                    raise self._attempt.deadline_refusal() from err
                last_error = err
            except OSError as err:
                last_error = err
        raise last_error


class GuardedHTTPConnection(_GuardedConnection, http.client.HTTPConnection):
    def __init__(self, *args, policy: FetchPolicy, attempt: Attempt, **kwargs):
        super().__init__(*args, **kwargs)
        self._guard(policy, attempt)


class GuardedHTTPSConnection(_GuardedConnection, http.client.HTTPSConnection):
    def __init__(self, *args, policy: FetchPolicy, attempt: Attempt, **kwargs):
        super().__init__(*args, **kwargs)
        self._guard(policy, attempt)


def _attempt_of(req, policy: FetchPolicy) -> Attempt:
    """The attempt a request belongs to (set by GuardedOpener; a fresh one if opened directly)."""
    attempt = getattr(req, "attempt", None)
    if attempt is None:
        attempt = req.attempt = Attempt(req.full_url, policy.deadline)
    return attempt


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: FetchPolicy):
        super().__init__()
        self._policy = policy

    def http_open(self, req):
        attempt = _attempt_of(req, self._policy)
        connection = functools.partial(GuardedHTTPConnection, policy=self._policy, attempt=attempt)
        return self.do_open(connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: FetchPolicy):
        super().__init__()
        self._policy = policy

    def https_open(self, req):
        attempt = _attempt_of(req, self._policy)
        connection = functools.partial(GuardedHTTPSConnection, policy=self._policy, attempt=attempt)
        return self.do_open(connection, req, context=self._context)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL the guard would fetch directly."""

    def __init__(self, policy: FetchPolicy):
        self._policy = policy
        self.max_redirections = policy.max_redirects

    def http_error_302(self, req, fp, code, msg, headers):
        """Refuse a Location whose scheme urllib would refuse with a bare HTTPError (``file:``,
        ``gopher:``...) as a blocked redirect; the rest is checked in redirect_request."""
        location = headers.get("location") or headers.get("uri")
        scheme = urlparse(location).scheme if location else ""
        if scheme and scheme_refusal(scheme):
            self._refuse(fp, code, location, scheme_refusal(scheme))
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        reason = check_url(newurl, self._policy.allowlist) or self._resolved_reason(newurl)
        if reason:
            self._refuse(fp, code, newurl, reason)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            new.attempt = _attempt_of(req, self._policy)  # one deadline over every hop
        return new

    @staticmethod
    def _refuse(fp, code: int, newurl: str, reason: str):
        fp.close()
        raise GuardRefusal(f"blocked_redirect: {code} to {newurl} refused ({reason})")

    def _resolved_reason(self, url: str) -> str | None:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
        try:
            resolve_checked(parts.hostname, port, self._policy.allowlist)
        except GuardRefusal as refusal:
            return str(refusal)
        except OSError:  # DNS failure: the connect attempt reports it
            return None
        return None


def _is_refusal(err: Exception) -> bool:
    """A guard refusal, raised as is or wrapped by urllib (``<urlopen error blocked_...>``)."""
    return isinstance(err, GuardRefusal) or isinstance(getattr(err, "reason", None), GuardRefusal)


class GuardedOpener(urllib.request.OpenerDirector):
    """Starts an Attempt per top-level open (redirect hops carry theirs), and answers a retry of
    the URL this thread's previous attempt was refused for with that refusal, without a request.

    img2dataset retries a failed URL at once in the same thread, so "the same URL as this
    thread's last attempt" is a retry (or a duplicate row right after it: refused alike).
    """

    def __init__(self, policy: FetchPolicy):
        super().__init__()
        self._policy = policy
        self._last = threading.local()

    def open(self, fullurl, data=None, *args, **kwargs):
        req = fullurl
        if not isinstance(req, urllib.request.Request):
            req = urllib.request.Request(fullurl, data)
        if getattr(req, "attempt", None) is not None:  # a redirect hop of an attempt under way
            return super().open(req, data, *args, **kwargs)
        previous = getattr(self._last, "attempt", None)
        if previous is not None and previous.url == req.full_url and previous.refused is not None:
            raise previous.refused
        req.attempt = self._last.attempt = Attempt(req.full_url, self._policy.deadline)
        try:
            return super().open(req, data, *args, **kwargs)
        except (GuardRefusal, urllib.error.URLError) as err:
            if _is_refusal(err):
                req.attempt.refused = err
            raise


def build_opener(policy: FetchPolicy) -> urllib.request.OpenerDirector:
    """An opener with only the guarded http(s) handlers (no file, ftp, data or proxy handlers)."""
    opener = GuardedOpener(policy)
    for handler in (
        urllib.request.ProxyHandler({}),
        urllib.request.UnknownHandler(),
        _HTTPHandler(policy),
        _HTTPSHandler(policy),
        urllib.request.HTTPDefaultErrorHandler(),
        _RedirectHandler(policy),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def install(policy: FetchPolicy) -> None:
    """Make every ``urllib.request.urlopen`` in this process go through the guard."""
    Image.MAX_IMAGE_PIXELS = policy.max_image_pixels
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # vet_image decides
    urllib.request.install_opener(build_opener(policy))


def opencv_env(policy: FetchPolicy) -> dict[str, str]:
    """Environment for worker processes: OpenCV's own decoded-pixel limit (read at cv2 load)."""
    return {"OPENCV_IO_MAX_IMAGE_PIXELS": str(policy.max_image_pixels)}


class GuardedTimeout(float):
    """img2dataset's per-request timeout, carrying the fetch policy into its worker processes.

    Behaves as the float of seconds; unpickling it (which every worker does with each task)
    installs the guard first. See the module docstring.
    """

    policy: FetchPolicy

    def __new__(cls, seconds: float, policy: FetchPolicy):
        value = super().__new__(cls, seconds)
        value.policy = policy
        return value

    def __reduce__(self):
        return _restore, (float(self), self.policy)


def _restore(seconds: float, policy: FetchPolicy) -> GuardedTimeout:
    install(policy)
    return GuardedTimeout(seconds, policy)
