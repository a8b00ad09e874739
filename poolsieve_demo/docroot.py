"""The demo server's docroot: one file per served URL path, and ``routes.json`` saying how to answer.

Grain: one Asset -> at most one file ``images/<url path>`` and one route. Routes (the server
applies them; see server.py)::

    ok                serve the file with its image Content-Type
    slow              the same, after ``slow_seconds``
    corrupt           bytes no decoder accepts, served with the path's image Content-Type
    not_image         an HTML page (text/html), status 200
    404 / 500         that status, no file
    redirect_private  302 to a private/link-local address (``location``), never contacted
    file              a host file (robots.txt...): the file with the route's ``type``

A route may carry ``headers`` ({name: value}) the server adds to its answer: an opt-out row's
X-Robots-Tag / tdm-reservation (optout.py). ``host_files`` ({host name: {URL path: route of
kind ``file``: serve the file with the route's Content-Type}}) holds each origin's own files, in
every world, one set per host name of the world's URLs (``127.0.0.1``, ``localhost``), written
under ``hosts/<host name>/``: ``/robots.txt``, ``/.well-known/tdmrep.json``, ``/ai.txt``, each
naming the paths of the opt-out rows on that origin only (optout.listed_by_host). The image
routes are shared by every host name; the server picks the host files by the Host header.
A route may carry ``epochs`` ({"N": route}): what the path answers from epoch N on, once the
world is aged (aging.py writes them; the server follows the world's ``epoch.json``).

Every minted path has a route; any other path is a 404.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from poolsieve_demo.optout import HOST_FILE_TYPES, host_files, response_headers
from poolsieve_demo.perturb import perturb
from poolsieve_demo.problems import PRIVATE_TARGETS
from poolsieve_demo.render import FORMATS, encode, render
from poolsieve_demo.rows import Asset

#: 2 adds route ``headers`` and ``host_files``; 3 adds a route's ``epochs`` overrides (aging.py);
#: 4 keys ``host_files`` by host name (before: one {URL path: route} every host name served)
ROUTES_VERSION = 4
#: the docroot folder of the host files, one subfolder per host name
HOSTS_FOLDER = "hosts"
HTML_TYPE = "text/html; charset=utf-8"
HTML_PAGES = {
    "html_page": "<!doctype html><html><head><title>Gallery</title></head>"
    "<body><h1>Photo gallery</h1><p>Sign in to see this image.</p></body></html>\n",
    "soft_404": "<!doctype html><html><head><title>Not found</title></head>"
    "<body><p>Sorry, the page you requested could not be found.</p></body></html>\n",
}


def image_bytes(asset: Asset) -> bytes:
    """The encoded image at ``asset`` (a near-duplicate: the eval or pool image it copies,
    perturbed)."""
    image = render(asset.spec)
    if asset.is_copy:
        image = perturb(image, asset.detail, asset.spec.seed)
    return encode(image, asset.ext)


def corrupt_bytes(detail: str, real: bytes, seed: int) -> bytes:
    """Undecodable bytes: random ones (never an image signature), or a real file's first 64 bytes."""
    if detail == "truncated_header":
        return real[:64]
    noise = np.random.default_rng(seed).bytes(int(2000 + seed % 2000))
    return b"\x00\x7f<corrupt>" + noise


def body(asset: Asset) -> bytes | None:
    """The file behind ``asset``'s route (None: the route serves no file)."""
    if asset.route in ("404", "500", "redirect_private"):
        return None
    if asset.route == "not_image":
        return HTML_PAGES[asset.detail].encode()
    data = image_bytes(asset)
    return corrupt_bytes(asset.detail, data, asset.spec.seed) if asset.route == "corrupt" else data


def route(asset: Asset, slow_seconds: float) -> dict:
    entry: dict = {"kind": asset.route}
    if asset.route in ("ok", "slow", "corrupt"):
        entry.update(file=asset.path.lstrip("/"), type=FORMATS[asset.ext][1])
    if asset.route == "not_image":
        entry.update(file=asset.path.lstrip("/"), type=HTML_TYPE)
    if asset.route == "slow":
        entry["delay"] = slow_seconds
    if asset.route == "redirect_private":
        entry["location"] = PRIVATE_TARGETS[asset.detail]
    if asset.optout is not None and (headers := response_headers(asset.optout, asset.detail)):
        entry["headers"] = headers
    return entry


def write_host_files(root: Path, listed: dict[str, list[tuple[str, str, str]]]) -> dict:
    """Write each host name's host files under ``root/images/hosts/<host name>``; ``listed``:
    host name -> (kind, detail, URL path) of the rows they name. Returns {host name: {URL
    path: route}}."""
    routes: dict[str, dict] = {}
    for host, planted in listed.items():
        routes[host] = {}
        for path, data in host_files(planted).items():
            file = f"{HOSTS_FOLDER}/{_host_folder(host)}/{path.lstrip('/')}"
            target = root / "images" / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            routes[host][path] = {"kind": "file", "file": file, "type": HOST_FILE_TYPES[path]}
    return routes


def _host_folder(host: str) -> str:
    """``host`` as a folder name: refused unless it is one plain path segment."""
    if host in ("", ".", "..") or "/" in host or "\\" in host:
        raise ValueError(f"host name {host!r} cannot name a host files folder")
    return host


def write_docroot(
    root: Path,
    assets: dict[str, Asset],
    slow_seconds: float,
    listed: dict[str, list[tuple[str, str, str]]],
) -> dict[str, str]:
    """Write ``root/images/...`` and ``root/routes.json``; returns {path: sha256 of served image}.
    ``listed``: host name -> the rows its host files name (optout.listed_by_host)."""
    routes, served = {}, {}
    for path, asset in assets.items():
        data = body(asset)
        if data is not None:
            target = root / "images" / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if asset.route in ("ok", "slow"):
                served[path] = hashlib.sha256(data).hexdigest()
        routes[path] = route(asset, slow_seconds)
    document = {
        "version": ROUTES_VERSION,
        "slow_seconds": slow_seconds,
        "routes": routes,
        "host_files": write_host_files(root, listed),
    }
    (root / "routes.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return served
