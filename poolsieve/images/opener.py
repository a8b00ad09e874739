"""The urllib opener img2dataset's fetches go through: guarded handlers only, checked redirects,
and no second request for a URL the guard has just refused.

``urllib.request.build_opener`` would add handlers for ``file:``, ``ftp:`` and ``data:`` URLs and
proxies from the environment (a proxy connects on our behalf, out of the address check's sight),
so :func:`build_opener` assembles the opener by hand: the http(s) handlers alone, whose
connections are :mod:`poolsieve.images.connection`'s, and a redirect handler that checks every
hop (:mod:`poolsieve.images.redirects`).

Retries: img2dataset retries every failed URL (``retries`` times, at once, in the same thread).
Blocked addresses, oversized bodies, bombs and dripping servers would only repeat, so
:class:`GuardedOpener` answers a retry of a URL the guard refused with the same refusal, without
a request. Timeouts, connection errors and HTTP errors are retried as img2dataset intends.
"""

from __future__ import annotations

import functools
import http.client
import threading
import urllib.error
import urllib.request

from poolsieve.images.connection import GuardedHTTPConnection, GuardedHTTPSConnection
from poolsieve.images.deadline import Attempt
from poolsieve.images.errors import GuardRefusal
from poolsieve.images.optout.response import OptOutProcessor
from poolsieve.images.policy import FetchPolicy
from poolsieve.images.redirects import RedirectHandler


class _GuardedHandler:
    """Mixin before urllib's HTTP(S) handler: open each request through a guarded connection
    that shares the request's attempt."""

    def __init__(self, policy: FetchPolicy):
        super().__init__()
        self._policy = policy

    def _open_guarded(self, connection_class, req, **kwargs):
        attempt = Attempt.of(req, self._policy.deadline)
        connection = functools.partial(connection_class, policy=self._policy, attempt=attempt)
        return self.do_open(connection, req, **kwargs)


class _HTTPHandler(_GuardedHandler, urllib.request.HTTPHandler):
    def http_open(self, req):
        return self._open_guarded(GuardedHTTPConnection, req)


class _HTTPSHandler(_GuardedHandler, urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self._open_guarded(GuardedHTTPSConnection, req, context=self._context)


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
        self._replay_refusal(req.full_url)
        req.attempt = self._last.attempt = Attempt(req.full_url, self._policy.deadline)
        try:
            return super().open(req, data, *args, **kwargs)
        except (GuardRefusal, urllib.error.URLError) as err:
            if _is_refusal(err):
                req.attempt.refused = err
            raise

    def _replay_refusal(self, url: str) -> None:
        """Raise again the refusal of this thread's previous attempt when it was for ``url``."""
        previous = getattr(self._last, "attempt", None)
        if previous is not None and previous.url == url and previous.refused is not None:
            raise previous.refused


def build_opener(policy: FetchPolicy) -> urllib.request.OpenerDirector:
    """An opener with only the guarded http(s) handlers (no file, ftp, data or proxy handlers)
    and, unless the policy says not to, the check of the image response's opt-out headers."""
    opener = GuardedOpener(policy)
    optouts = (OptOutProcessor(policy),) if policy.honour_optouts else ()
    for handler in (
        *optouts,
        urllib.request.ProxyHandler({}),
        urllib.request.UnknownHandler(),
        _HTTPHandler(policy),
        _HTTPSHandler(policy),
        urllib.request.HTTPDefaultErrorHandler(),
        RedirectHandler(policy),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def fetch_once(
    opener, url: str, timeout: float, read
) -> tuple[int | None, bytes | None, str | None]:
    """One request through ``opener`` outside img2dataset (host opt-out files, health re-checks):
    (status, ``read(response)``, None), or (status or None, None, error message); never raises
    for what a server or the guard does."""
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, read(response), None
    except urllib.error.HTTPError as err:
        err.close()
        return err.code, None, f"HTTP Error {err.code}: {err.reason}"
    except (OSError, ValueError, http.client.HTTPException) as err:
        return None, None, f"{type(err).__name__}: {err}"
