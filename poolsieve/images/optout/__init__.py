"""Opt-out signals: a site's answer to "may this image be used for AI training?", checked per
uid before and during the download, and recorded with the time it was seen.

Signals (the names recorded in ``optout_signals.parquet`` and in download_status):

- ``x_robots_tag``: the image response's ``X-Robots-Tag`` header (``noai``, ``noimageai``, or
  more directives configured), plain or scoped to a user agent (``img2dataset: noai``);
- ``tdm_reservation``: the image response's TDMRep ``tdm-reservation: 1`` header;
- ``robots_txt``: the host's ``/robots.txt`` (RFC 9309) disallowing the image URL for any of
  the configured user agents;
- ``tdmrep_json``: the host's ``/.well-known/tdmrep.json`` (W3C TDMRep) reserving TDM rights
  for a location the image URL matches;
- ``ai_txt``: the host's ``/ai.txt`` (Spawning's robots.txt-like format) disallowing it.

The host files are fetched once per host per refresh through the download guard and cached in
the lake with their fetch time (hosts.py); the headers are checked by the guard on the image
response itself (poolsieve.images.guard), so an opted-out image is never kept.
"""

from __future__ import annotations

HEADER_SIGNALS = ("x_robots_tag", "tdm_reservation")
HOST_SIGNALS = ("robots_txt", "tdmrep_json", "ai_txt")
SIGNALS = HOST_SIGNALS + HEADER_SIGNALS
#: where each host signal lives on a host
HOST_FILES = {
    "robots_txt": "/robots.txt",
    "tdmrep_json": "/.well-known/tdmrep.json",
    "ai_txt": "/ai.txt",
}
#: the error category of an opted-out row in download_status, and its pool_features reason
OPTED_OUT = "opted_out"
#: answers recorded per (uid, signal)
ALLOWED, DISALLOWED, UNAVAILABLE = "allowed", "disallowed", "unavailable"
#: defaults: the user agents a host's rules are checked for, and the X-Robots-Tag directives
#: that opt an image out (img2dataset's default adds noindex and noimageindex)
DEFAULT_USER_AGENTS = ("img2dataset", "CCBot")
DEFAULT_DIRECTIVES = ("noai", "noimageai")
