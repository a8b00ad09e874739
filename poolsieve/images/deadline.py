"""One fetch's overall deadline, and the socket reads that keep to it.

img2dataset passes one ``timeout`` to ``urlopen``, and urllib applies it to each socket operation
on its own: a server that sends one byte per ``timeout`` never times out, and would hold a worker
thread for ever. So a fetch is an :class:`Attempt` with one end time, shared by the connect, the
request, the headers, every redirect hop and the body; each socket operation waits at most the
timeout or the time left, whichever is less, and a wait cut short by the end time is refused as
``deadline`` rather than reported as a ``timeout`` (which img2dataset would retry).

Only DNS resolution is outside the deadline: ``getaddrinfo`` cannot be interrupted.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

from poolsieve.images.errors import GuardRefusal


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

    @classmethod
    def of(cls, req, seconds: float) -> Attempt:
        """The attempt a urllib request belongs to (set by GuardedOpener and on each redirect
        hop); a fresh one of ``seconds``, kept on the request, when it was opened without one."""
        attempt = getattr(req, "attempt", None)
        if attempt is None:
            attempt = req.attempt = cls(req.full_url, seconds)
        return attempt

    def expired(self) -> bool:
        return time.monotonic() >= self.ends

    def wait_limit(self, timeout: object) -> float:
        """How long the next socket operation may wait: the timeout or the time left, whichever
        is less. GuardRefusal (``deadline``) once no time is left."""
        left = self.ends - time.monotonic()
        if left <= 0:
            raise self.deadline_refusal()
        return min(timeout, left) if isinstance(timeout, int | float) else left

    def raise_if_spent(self, timed_out: TimeoutError) -> None:
        """A socket wait timed out: GuardRefusal (``deadline``) when it was cut short by the
        attempt's end, rather than by the per-operation timeout."""
        if self.expired():
            raise self.deadline_refusal() from timed_out

    def deadline_refusal(self) -> GuardRefusal:
        return GuardRefusal(
            f"deadline: not fetched within {self.seconds:g} s (connect, redirects and body)"
        )


class DeadlineReader(io.RawIOBase):
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
            self._attempt.raise_if_spent(err)
            raise

    def close(self) -> None:
        self._raw.close()
        super().close()


class DeadlineSocket:
    """What an ``http.client.HTTPResponse`` reads from in place of the socket: its ``makefile``
    gives the deadline-bound reader (the response reads through nothing else)."""

    def __init__(self, sock, attempt: Attempt, timeout: object):
        self._args = sock, attempt, timeout

    def makefile(self, mode: str = "rb"):
        return io.BufferedReader(DeadlineReader(*self._args))
