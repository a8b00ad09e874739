"""The fetch guard, installed inside img2dataset's own worker processes.

How img2dataset 1.47.0 fetches: ``Downloader.download_shard`` runs ``download_image`` in a
thread pool, which calls ``urllib.request.urlopen(Request(url), timeout=timeout)`` and then
``r.read()`` — so every fetch goes through the process-wide opener that
``urllib.request.install_opener`` sets. Its multiprocessing distributor runs Downloaders in a
``get_context("spawn")`` pool (``maxtasksperchild=5``): fresh interpreters that inherit nothing
the parent installed, and into which each task pickles the whole Downloader.

Hook: ``timeout`` is the one value ``img2dataset.download`` hands to the Downloader unchanged
(it stores it and passes it to ``urlopen``). We pass a :class:`GuardedTimeout`, a ``float`` whose
pickled form is "call :func:`_restore` with the seconds and the
:class:`~poolsieve.images.policy.FetchPolicy`". Unpickling a task therefore installs the guarded
opener in that worker *before* the Downloader runs, whatever the start method (spawn, fork,
forkserver) and under img2dataset's pyspark and ray distributors too, which pickle the Downloader
the same way. No sitecustomize, no environment hook, no patched img2dataset code: only urllib's
public ``install_opener``, in processes img2dataset owns. The pickles name
``poolsieve.images.guard._restore`` and ``poolsieve.images.policy.FetchPolicy``: the workers
import them by those paths. Rejected: ``processes_count=1`` does not help (the pool still spawns
a worker); calling img2dataset's Downloader in-process would bypass ``img2dataset.download`` and
its bookkeeping.

What the installed opener enforces, module by module:

- :mod:`~poolsieve.images.opener`: only http and https handlers (no file:, ftp:, data:), no
  proxies from the environment, and no second request for a URL the guard refused (img2dataset
  retries every failed URL at once, in the same thread);
- :mod:`~poolsieve.images.connection`: every connection resolves the host, refuses it if *any*
  address it resolves to is blocked (:mod:`~poolsieve.images.address`), then connects to the
  checked IP itself, so DNS cannot answer differently between check and connect;
- :mod:`~poolsieve.images.redirects`: every redirect hop is checked before it is followed, and a
  refused hop is a ``blocked_redirect``;
- :mod:`~poolsieve.images.deadline`: each fetch (connect, request, headers, redirect hops and
  body together) ends at an overall ``deadline``, so a server dripping bytes cannot hold a thread;
- :mod:`~poolsieve.images.body`: a body over ``max_image_bytes`` is refused, and a 2xx body is
  sniffed with PIL: too many pixels is a decompression bomb, a body that is no image and not
  served as one is ``not_image``.

OpenCV's own pixel limit is read from ``OPENCV_IO_MAX_IMAGE_PIXELS`` when cv2 loads, which in a
spawned worker happens before our unpickling, so the caller sets that variable in the parent and
the workers inherit it (:func:`opencv_env`).
"""

from __future__ import annotations

import urllib.request
import warnings

from PIL import Image

from poolsieve.images.opener import build_opener
from poolsieve.images.policy import FetchPolicy


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
    """What a worker runs when it unpickles a GuardedTimeout: install the guard, then be the
    timeout again. Referenced by name in every pickled task: keep it here, under this name."""
    install(policy)
    return GuardedTimeout(seconds, policy)
