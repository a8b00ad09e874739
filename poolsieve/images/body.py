"""What a response body may be: within the byte cap, and an image PIL can size within its limit.

img2dataset reads each body whole (``r.read()``) and hands it to OpenCV. Two bodies would hurt
it: one far larger than any image (read whole into a worker's memory, with or without a
Content-Length), and a small file whose header declares billions of pixels (a decompression
bomb, which OpenCV would allocate). :class:`CappedResponse` is the response class of the guarded
connections: it refuses a body over ``max_image_bytes`` by its Content-Length before reading,
else as soon as the bytes read pass the cap, and sniffs a whole 2xx body with PIL, which reads
only the header (:func:`vet_image`). It reads through the attempt's deadline
(:mod:`poolsieve.images.deadline`).

OpenCV's own pixel limit is set apart, from the environment: see
:func:`poolsieve.images.guard.opencv_env`.
"""

from __future__ import annotations

import hashlib
import http.client
import io

from PIL import Image

from poolsieve.images.deadline import Attempt, DeadlineSocket
from poolsieve.images.errors import GuardRefusal
from poolsieve.images.policy import FetchPolicy

READ_CHUNK = 1 << 16


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


def refuse_listed(body: bytes, policy: FetchPolicy) -> None:
    """Refuse a body whose sha256 a takedown or hash list names: it is never kept."""
    if policy.blocked_sha256:
        digest = hashlib.sha256(body).hexdigest()
        if digest in policy.blocked_sha256:
            raise GuardRefusal(f"removed: the served bytes' sha256 {digest} is on a hash list")


class CappedResponse(http.client.HTTPResponse):
    """An HTTP response read under the attempt's deadline, that refuses bodies over the byte cap
    and vets 2xx image bodies. A refusal is kept on the attempt (see GuardedOpener)."""

    def __init__(self, sock, *args, policy: FetchPolicy, attempt: Attempt, timeout=None, **kw):
        super().__init__(DeadlineSocket(sock, attempt, timeout), *args, **kw)
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
            refuse_listed(body, self._policy)
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
