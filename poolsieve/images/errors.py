"""Error categories: img2dataset's free-text error messages folded into a few stable names.

img2dataset records ``str(exception)`` per failed URL (``"HTTP Error 404: Not Found"``,
``"<urlopen error timed out>"``, ``"Image decoding error"``, ``"hash mismatch"``...). Counting raw
messages gives one bucket per host and port; the asset reports counts per category instead, and
keeps the raw message beside it in ``download_status``. The guard's own refusals start with their
category name (``"blocked_redirect: ..."``), so they map back exactly. ``timeout`` is a server
silent for longer than the per-read timeout; ``deadline`` is one fetch outlasting its overall
deadline (a server dripping bytes), cut short by the guard.
"""

from __future__ import annotations

import re

# The guard's refusals, and the rows refused before img2dataset runs, carry these names.
GUARD_CATEGORIES = (
    "blocked_private_address",
    "blocked_redirect",
    "blocked_scheme",
    "invalid_url",
    "too_large",
    "decompression_bomb",
    "not_image",
    "deadline",  # the whole fetch (connect, redirects, body) outlasted DownloadSettings.deadline
    "opted_out",  # an opt-out signal (poolsieve.images.optout): "opted_out: <signal>: <answer>"
    "removed",  # a takedown or hash list entry (poolsieve.curate.takedown.download_blocks)
)
# Rows img2dataset never reported on (its shard crashed): failed, never lost.
MISSING = "missing"

_GUARD = re.compile(r"\b(" + "|".join(GUARD_CATEGORIES) + r"):")
_HTTP = re.compile(r"HTTP Error (\d{3})")
_REDIRECT_NOT_ALLOWED = re.compile(r"HTTP Error 30\d: .*Redirection to url '.*' is not allowed")
_PATTERNS = (  # first match wins; lower-cased message
    ("hash_mismatch", ("hash mismatch",)),
    ("timeout", ("timed out", "timeout")),
    ("decompression_bomb", ("cv_io_max_image_pixels", "decompression bomb")),
    ("decode_error", ("image decoding error", "decod", "imdecode")),
    ("robots_disallowed", ("x-robots-tag",)),
    ("ssl_error", ("ssl", "certificate")),
    (
        "connection_error",
        (
            "connection refused",
            "connection reset",
            "name or service not known",
            "temporary failure in name resolution",
            "no address associated",
            "remote end closed",
            "network is unreachable",
            "incompleteread",
        ),
    ),
)


class GuardRefusal(OSError):
    """A fetch the guard refused; the message starts with its category (``"too_large: ..."``).

    An OSError, so urllib treats it like any failed connection and img2dataset records it as
    that URL's error instead of failing the shard.
    """

    def __init__(self, reason: str):
        category = reason.partition(":")[0]
        if category not in GUARD_CATEGORIES:
            raise ValueError(f"unknown guard category in {reason!r}")
        super().__init__(reason)
        self.category = category


def categorize(message: str | None) -> str | None:
    """The category of one error message; None for no error; ``other`` when nothing matches."""
    if message is None:
        return None
    guard = _GUARD.search(message)
    if guard:
        return guard.group(1)
    if "infinite loop" in message:  # urllib's redirect-loop HTTPError, before its 30x code
        return "too_many_redirects"
    if _REDIRECT_NOT_ALLOWED.search(message):  # urllib refusing a file:/gopher: Location itself
        return "blocked_redirect"
    http = _HTTP.search(message)
    if http:
        return f"http_{http.group(1)}"
    lowered = message.lower()
    for category, needles in _PATTERNS:
        if any(needle in lowered for needle in needles):
            return category
    return "other"
