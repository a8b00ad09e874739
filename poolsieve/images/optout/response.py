"""The guard's check of an image response's own opt-out headers (X-Robots-Tag, TDMRep's
``tdm-reservation``), before img2dataset reads a byte of the body.

A urllib response processor: it sees every response of a fetch, redirect hops included, and
judges only the 2xx one that carries the image. An opted-out response is closed unread and the
fetch refused as ``opted_out: <signal>: <answer>`` (a :class:`GuardRefusal`): img2dataset records
that message as the row's error, so download_status keeps the signal and the header as sent, and
the opener answers img2dataset's retry of the URL without a second request.
"""

from __future__ import annotations

import urllib.request

from poolsieve.images.errors import GuardRefusal
from poolsieve.images.optout import OPTED_OUT
from poolsieve.images.optout.rules import header_optout
from poolsieve.images.policy import FetchPolicy


def refusal_message(signal: str, answer: str) -> str:
    """The error message of a row opted out by ``signal`` (download_status keeps it)."""
    return f"{OPTED_OUT}: {signal}: {answer}"


def parse_refusal(message: str | None) -> tuple[str, str] | None:
    """(signal, answer) of an opted-out row's error message; None for any other message."""
    if not message or not message.startswith(f"{OPTED_OUT}: "):
        return None
    signal, _, answer = message.removeprefix(f"{OPTED_OUT}: ").partition(": ")
    return signal, answer


class OptOutProcessor(urllib.request.BaseHandler):
    """Refuses a 2xx response whose headers opt its image out (runs before the error handlers)."""

    handler_order = 999  # urllib's HTTPErrorProcessor is 1000

    def __init__(self, policy: FetchPolicy):
        self._policy = policy

    def http_response(self, request, response):
        if 200 <= response.status < 300:
            found = header_optout(
                response.headers, self._policy.optout_agents, self._policy.optout_directives
            )
            if found is not None:
                response.close()
                raise GuardRefusal(refusal_message(*found))
        return response

    https_response = http_response
