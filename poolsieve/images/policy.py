"""What one img2dataset worker may fetch: the fetch guard's limits, as one frozen value.

A policy travels into img2dataset's spawned worker processes by pickling, inside every task
(:class:`~poolsieve.images.guard.GuardedTimeout`), so it holds plain data only and has a home of
its own: every guard module reads it, and the worker imports it by this path when it unpickles.
:class:`~poolsieve.images.settings.DownloadSettings` is where an operator sets these values; its
defaults are the ones below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from poolsieve.images.address import Allowlist
from poolsieve.images.optout import DEFAULT_DIRECTIVES, DEFAULT_USER_AGENTS

MAX_IMAGE_BYTES = 20 * 2**20
MAX_IMAGE_PIXELS = 89_478_485  # PIL's default decompression-bomb limit
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class FetchPolicy:
    """What a worker may fetch; pickled into every img2dataset task."""

    allowlist: Allowlist = field(default_factory=Allowlist)
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_redirects: int = MAX_REDIRECTS
    deadline: float = 30.0  # seconds for one fetch: connect, redirects and body together
    # opt-out headers on the image response (X-Robots-Tag, tdm-reservation): refused as
    # ``opted_out``; empty ``optout_directives`` and honour_optouts False check none
    honour_optouts: bool = True
    optout_agents: tuple[str, ...] = DEFAULT_USER_AGENTS
    optout_directives: tuple[str, ...] = DEFAULT_DIRECTIVES
    # the takedown/hash lists' sha256 values: a body with one of them is refused as ``removed``
    blocked_sha256: frozenset[str] = frozenset()
