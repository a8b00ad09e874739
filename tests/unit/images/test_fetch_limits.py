"""The guard's limits on one fetch, without the network: the overall deadline and the byte cap
read from a local socket pair, redirect refusals, and retries of refused URLs."""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator

import pytest

from poolsieve.images.body import CappedResponse
from poolsieve.images.deadline import Attempt
from poolsieve.images.errors import GuardRefusal, categorize
from poolsieve.images.opener import GuardedOpener, build_opener
from poolsieve.images.policy import FetchPolicy
from poolsieve.images.settings import DownloadSettings

JPEG_HEAD = b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n"


class Peer:
    """The far end of a socket pair, written by a thread: what a hostile server would send.

    ``script(stop)`` yields the parts to send until it ends, ``stop`` is set or the reader goes
    away; ``sent`` counts the bytes that made it into the socket. Bounded: every script ends by
    itself within seconds, and at once when the test ends.
    """

    def __init__(self, script: Callable[[threading.Event], Iterable[bytes]]):
        self.ours, self.theirs = socket.socketpair()
        self.sent, self.stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(script,), daemon=True)
        self._thread.start()

    def _serve(self, script) -> None:
        try:
            for part in script(self.stop):
                self.theirs.sendall(part)
                self.sent += len(part)
        except OSError:  # the reader closed: stop
            pass
        finally:
            self.theirs.close()

    def response(self, policy: FetchPolicy, deadline: float, timeout: float = 1.0):
        attempt = Attempt("http://img.example.com/x.jpg", deadline)
        response = CappedResponse(
            self.ours, method="GET", policy=policy, attempt=attempt, timeout=timeout
        )
        return response, attempt

    def close(self) -> None:
        self.stop.set()
        self.ours.close()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()


@pytest.fixture
def peers():
    made: list[Peer] = []
    yield lambda script: made.append(Peer(script)) or made[-1]
    for peer in made:
        peer.close()


def drip(head: bytes, count: int, every: float):
    """``head``, then one byte every ``every`` seconds, ``count`` times."""

    def script(stop: threading.Event) -> Iterator[bytes]:
        yield head
        for _ in range(count):
            if stop.wait(every):
                return
            yield b"x"

    return script


def once(*parts: bytes):
    return lambda stop: parts


def test_a_dripping_body_is_cut_at_the_deadline(peers):
    peer = peers(drip(JPEG_HEAD + b"\r\n\xff\xd8\xff", count=100, every=0.05))  # ends after 5 s
    response, attempt = peer.response(FetchPolicy(), deadline=0.6)
    response.begin()
    start = time.monotonic()
    with pytest.raises(GuardRefusal, match=r"^deadline: not fetched within 0.6 s") as refused:
        response.read()
    assert time.monotonic() - start < 1.5  # each byte came within the 1 s timeout
    assert attempt.refused is refused.value  # kept for img2dataset's retry
    assert categorize(str(refused.value)) == "deadline"


def test_dripping_headers_are_cut_at_the_deadline(peers):
    peer = peers(drip(b"HTTP/1.0 200 OK\r\nX-Pad: ", count=100, every=0.05))
    response, _ = peer.response(FetchPolicy(), deadline=0.6)
    start = time.monotonic()
    with pytest.raises(GuardRefusal, match=r"^deadline"):
        response.begin()
    assert time.monotonic() - start < 1.5


def test_a_silent_server_is_a_timeout_not_a_deadline(peers):
    peer = peers(drip(JPEG_HEAD + b"\r\n", count=1, every=2.0))
    response, _ = peer.response(FetchPolicy(), deadline=5.0, timeout=0.3)
    response.begin()
    with pytest.raises(TimeoutError):
        response.read()


def endless(head: bytes, total: int):
    def script(stop: threading.Event) -> Iterator[bytes]:
        yield head
        chunk = b"\xff" * 65536
        for _ in range(total // len(chunk)):
            yield chunk

    return script


def test_the_byte_cap_holds_without_content_length(peers):
    peer = peers(endless(JPEG_HEAD + b"\r\n", 50 * 2**20))  # 50 MiB, no length
    response, attempt = peer.response(FetchPolicy(max_image_bytes=100_000), deadline=10)
    response.begin()
    with pytest.raises(GuardRefusal, match=r"^too_large: body exceeds 100000 bytes"):
        response.read()
    assert attempt.refused is not None
    time.sleep(0.2)
    assert peer.sent < 100_000 + 4 * 2**20  # what the socket buffers held, not 50 MiB


def test_content_length_over_the_cap_is_refused_before_reading(peers):
    peer = peers(once(JPEG_HEAD + b"Content-Length: 52428800\r\n\r\n"))
    response, _ = peer.response(FetchPolicy(max_image_bytes=100_000), deadline=10)
    response.begin()
    with pytest.raises(GuardRefusal, match=r"^too_large: Content-Length 52428800 exceeds"):
        response.read()


def test_a_body_shorter_than_its_length_is_incomplete_not_an_image(peers):
    peer = peers(once(JPEG_HEAD + b"Content-Length: 1000\r\n\r\n\xff\xd8\xff" + b"x" * 10))
    response, attempt = peer.response(FetchPolicy(), deadline=10)
    response.begin()
    with pytest.raises(http.client.IncompleteRead) as incomplete:
        response.read()
    assert categorize(repr(incomplete.value)) == "connection_error"
    assert attempt.refused is None  # a network fault: img2dataset may retry it


def test_a_whole_body_is_returned(peers):
    body = b"\xff\xd8\xff" + b"y" * 200_000
    peer = peers(once(JPEG_HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode() + body))
    response, attempt = peer.response(FetchPolicy(), deadline=10)
    response.begin()
    assert response.read() == body and attempt.refused is None


# --- redirects whose scheme urllib itself refuses -----------------------------------------------


def redirect_error(location: str, code: int = 302):
    opener = build_opener(FetchPolicy())
    headers = http.client.HTTPMessage()
    headers["Location"] = location
    request = urllib.request.Request("http://img.example.com/a.jpg")
    return opener.error("http", request, io.BytesIO(b""), code, "Found", headers)


@pytest.mark.parametrize(
    ("location", "scheme"),
    [("file:///etc/passwd", "file"), ("gopher://127.0.0.1:6379/_INFO", "gopher")],
)
@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_to_a_refused_scheme_is_blocked(location, scheme, code):
    with pytest.raises(GuardRefusal) as refused:
        redirect_error(location, code)
    message = str(refused.value)
    assert message.startswith(f"blocked_redirect: {code} to {location} refused (blocked_scheme: ")
    assert f"{scheme} scheme" in message
    assert categorize(message) == "blocked_redirect"


def test_urllibs_own_redirect_refusal_still_counts_as_blocked():
    message = "HTTP Error 302: Found - Redirection to url 'gopher://x/' is not allowed"
    assert categorize(message) == "blocked_redirect"


# --- retries ------------------------------------------------------------------------------------


class Scripted(urllib.request.BaseHandler):
    """An ``http`` handler that counts requests and answers each URL as scripted."""

    def __init__(self, answers: dict[str, Exception | None]):
        self.answers, self.calls, self.attempts = answers, [], []

    def http_open(self, req):
        self.calls.append(req.full_url)
        self.attempts.append(req.attempt)
        answer = self.answers[req.full_url]
        if answer is not None:
            raise answer
        return io.BytesIO(b"ok")


def opener_with(answers: dict[str, Exception | None]) -> tuple[GuardedOpener, Scripted]:
    opener, handler = GuardedOpener(FetchPolicy(deadline=7)), Scripted(answers)
    opener.add_handler(handler)
    return opener, handler


def retry_like_img2dataset(opener, url: str, retries: int = 2) -> None:
    for _ in range(retries + 1):
        with pytest.raises(OSError):
            opener.open(url)


def test_a_refused_url_is_not_fetched_again_on_retry():
    big, gone = "http://a.example/big", "http://a.example/gone"
    wrapped = urllib.error.URLError(GuardRefusal("blocked_private_address: 10.0.0.1:80 is private"))
    opener, handler = opener_with(
        {
            big: GuardRefusal("too_large: body exceeds 100 bytes"),
            gone: urllib.error.HTTPError(gone, 404, "Not Found", None, None),
            "http://a.example/private": wrapped,
        }
    )
    retry_like_img2dataset(opener, big)
    retry_like_img2dataset(opener, gone)  # not the guard's: retried as img2dataset intends
    retry_like_img2dataset(opener, "http://a.example/private")
    assert handler.calls == [big, gone, gone, gone, "http://a.example/private"]
    retry_like_img2dataset(opener, big, retries=0)  # later, after other URLs: tried afresh
    assert handler.calls[-1] == big and len(handler.calls) == 6


def test_each_open_starts_an_attempt_with_the_policy_deadline():
    opener, handler = opener_with({"http://a.example/ok": None})
    assert opener.open("http://a.example/ok").read() == b"ok"
    assert opener.open("http://a.example/ok").read() == b"ok"  # a success is never replayed
    first, second = handler.attempts
    assert first is not second and first.seconds == 7 and first.refused is None


def test_an_attempt_refuses_once_its_time_is_spent():
    attempt = Attempt("http://a.example/x", 0.05)
    assert attempt.wait_limit(10.0) <= 0.05
    assert attempt.wait_limit(0.01) == 0.01
    time.sleep(0.06)
    with pytest.raises(GuardRefusal, match="^deadline"):
        attempt.wait_limit(10.0)


def test_the_deadline_defaults_to_three_timeouts():
    assert DownloadSettings(timeout=4).policy().deadline == 12
    assert DownloadSettings(timeout=4, deadline=5).policy().deadline == 5
    with pytest.raises(ValueError, match="deadline must be > 0"):
        DownloadSettings(deadline=0)
