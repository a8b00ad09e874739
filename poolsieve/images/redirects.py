"""Redirects followed only to where the guard would fetch directly.

A redirect is a second URL the pool never listed: ``Location: http://169.254.169.254/`` from a
public server would otherwise reach the metadata service. Every hop is checked before it is
followed, as a URL in the pool is (scheme, literal IP, the addresses its host resolves to), and
a refused hop is a ``blocked_redirect`` naming its target and the reason. urllib refuses a
``file:`` or ``gopher:`` Location itself, but as a bare ``HTTP Error 302`` that would be counted
as an HTTP error, so those schemes are refused here first. Every hop shares the first request's
:class:`~poolsieve.images.deadline.Attempt`, so a chain of slow redirects cannot outlast it.
"""

from __future__ import annotations

import urllib.request
from urllib.parse import urlparse, urlsplit

from poolsieve.images.address import DEFAULT_PORTS, check_url, scheme_refusal
from poolsieve.images.connection import resolve_checked
from poolsieve.images.deadline import Attempt
from poolsieve.images.errors import GuardRefusal
from poolsieve.images.policy import FetchPolicy


class RedirectHandler(urllib.request.HTTPRedirectHandler):
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
            new.attempt = Attempt.of(req, self._policy.deadline)  # one deadline over every hop
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
