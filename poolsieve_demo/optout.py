"""Planted opt-out signals: what each opt-out kind and detail makes the demo server say.

Grain: one planted row -> one signal on its own URL path. URLs never change when a problem is
planted (rows.py), so the header signals ride on the row's image response and the host signals
name the row's exact path in the host files of the row's own origin. The world's URLs sit on two
origins of one server (its base host and ``WorldConfig.alt_host``); each origin serves its own
host files (routes.json ``host_files``, keyed by host name), naming only the rows on that origin,
and every origin has all three, with no rule that opts anything out when nothing is planted:

* ``optout_x_robots_tag`` / ``optout_tdm_reservation``: the image is served (route ``ok``) with an
  ``X-Robots-Tag`` / TDMRep ``tdm-reservation: 1`` header;
* ``optout_robots_txt``: ``/robots.txt`` (RFC 9309) disallows the path for ``img2dataset``,
  ``CCBot`` or ``*``. A crawler with its own group ignores ``*``, so the ``*`` paths are repeated
  in every named group the checked agents follow; within a group the Disallow lines come before
  ``Allow: /`` (longest match and first match, as Python's robotparser does, agree on them);
* ``optout_tdmrep_json``: ``/.well-known/tdmrep.json`` (W3C TDMRep) reserves the path;
* ``optout_ai_txt``: ``/ai.txt`` (Spawning's robots.txt-like format) disallows it for ``*``;
* ``optout_control``: a signal that must NOT opt the row out under the downloader's defaults
  (poolsieve.images.optout: user agents img2dataset and CCBot, directives noai and noimageai).
  ``robots_other_origin``: the path is disallowed for img2dataset in the robots.txt of the
  world's OTHER origin only; a downloader that reads the wrong origin's files opts it out.

The truth records, for a host-file row, ``host_file_origin``: the origin whose files name it.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from poolsieve.images.optout import DEFAULT_DIRECTIVES, DEFAULT_USER_AGENTS, HOST_FILES
from poolsieve.images.optout.hosts import origin_of

#: opt-out kind -> the signal the downloader must name for it (optout_signal)
SIGNAL_OF: dict[str, str] = {
    "optout_x_robots_tag": "x_robots_tag",
    "optout_tdm_reservation": "tdm_reservation",
    "optout_robots_txt": "robots_txt",
    "optout_tdmrep_json": "tdmrep_json",
    "optout_ai_txt": "ai_txt",
}
CONTROL = "optout_control"
OPTOUT_KINDS: tuple[str, ...] = (*SIGNAL_OF, CONTROL)
#: the downloader defaults the controls are controls under (recorded in the truth)
ASSUMED = {"user_agents": list(DEFAULT_USER_AGENTS), "directives": list(DEFAULT_DIRECTIVES)}
POLICY_URL = "https://example.org/policy.json"
#: kind -> its details, planted in turn (so a kind with enough rows shows every detail)
DETAILS: dict[str, tuple[str, ...]] = {
    "optout_x_robots_tag": ("noai", "noimageai", "img2dataset_noai"),
    "optout_tdm_reservation": ("reserved", "reserved_with_policy"),
    "optout_robots_txt": ("img2dataset", "ccbot", "any_agent"),
    "optout_tdmrep_json": ("reserved", "reserved_with_policy"),
    "optout_ai_txt": ("disallowed",),
    CONTROL: (
        "x_robots_tag_noindex",
        "x_robots_tag_other_agent",
        "robots_other_agent",
        "robots_other_origin",  # 4th: the 4 controls of a 2 x 150-row test world plant it
        "tdmrep_zero",
        "tdm_header_zero",
    ),
}
#: the control whose path only the other origin's robots.txt names (for img2dataset)
OTHER_ORIGIN = "robots_other_origin"
#: a control detail -> the signal it imitates
CONTROL_SIGNAL: dict[str, str] = {
    "x_robots_tag_noindex": "x_robots_tag",
    "x_robots_tag_other_agent": "x_robots_tag",
    "robots_other_agent": "robots_txt",
    "tdmrep_zero": "tdmrep_json",
    "tdm_header_zero": "tdm_reservation",
    OTHER_ORIGIN: "robots_txt",
}
#: (kind, detail) -> the extra headers of the row's image response
HEADERS: dict[tuple[str, str], dict[str, str]] = {
    ("optout_x_robots_tag", "noai"): {"X-Robots-Tag": "noai"},
    ("optout_x_robots_tag", "noimageai"): {"X-Robots-Tag": "noimageai"},
    ("optout_x_robots_tag", "img2dataset_noai"): {"X-Robots-Tag": "img2dataset: noai"},
    ("optout_tdm_reservation", "reserved"): {"tdm-reservation": "1"},
    ("optout_tdm_reservation", "reserved_with_policy"): {
        "tdm-reservation": "1",
        "tdm-policy": POLICY_URL,
    },
    (CONTROL, "x_robots_tag_noindex"): {"X-Robots-Tag": "noindex"},
    (CONTROL, "x_robots_tag_other_agent"): {"X-Robots-Tag": "otherbot: noai"},
    (CONTROL, "tdm_header_zero"): {"tdm-reservation": "0"},
}
#: robots.txt detail -> the user agent whose group disallows the path
ROBOTS_AGENT = {"img2dataset": "img2dataset", "ccbot": "CCBot", "any_agent": "*"}
OTHER_AGENT = "OtherBot"
#: robots.txt's named groups -> the (kind, detail) rows each disallows beyond the ``*`` ones
NAMED_GROUPS: dict[str, set[tuple[str, str]]] = {
    "img2dataset": {("optout_robots_txt", "img2dataset"), (CONTROL, OTHER_ORIGIN)},
    "CCBot": {("optout_robots_txt", "ccbot")},
}
TEXT_TYPE = "text/plain; charset=utf-8"
JSON_TYPE = "application/json"
#: host file path -> its Content-Type
HOST_FILE_TYPES = {
    HOST_FILES["robots_txt"]: TEXT_TYPE,
    HOST_FILES["tdmrep_json"]: JSON_TYPE,
    HOST_FILES["ai_txt"]: TEXT_TYPE,
}


def detail_for(kind: str, planted_before: int, other_origin: bool = True) -> str:
    """The detail of the ``planted_before + 1``-th row of ``kind`` (details in turn). Without
    ``other_origin`` (the world's URLs share one host name) OTHER_ORIGIN is left out."""
    details = [d for d in DETAILS[kind] if other_origin or d != OTHER_ORIGIN]
    return details[planted_before % len(details)]


def signal_of(kind: str, detail: str) -> str:
    """The signal a planted row carries (a control: the one it imitates)."""
    return CONTROL_SIGNAL[detail] if kind == CONTROL else SIGNAL_OF[kind]


def response_headers(kind: str, detail: str) -> dict[str, str]:
    """The extra headers of the row's image response ({} for a host-file signal)."""
    return dict(HEADERS.get((kind, detail), {}))


def host_file_of(kind: str, detail: str) -> str | None:
    """The host file that names the row's path (None for a header signal)."""
    signal = signal_of(kind, detail)
    return HOST_FILES.get(signal)


def truth_facts(kind: str, detail: str, own: str, other: str | None = None) -> dict:
    """What the truth records of one opt-out row beyond kind and detail: its signal, and its
    headers or host file + the origin whose host file names it (+ the robots.txt user agent,
    the tdmrep.json reservation). ``own``: the row's origin; ``other``: the world's other one."""
    facts: dict = {"signal": signal_of(kind, detail)}
    headers = response_headers(kind, detail)
    if headers:
        facts["headers"] = headers
    else:
        facts["host_file"] = host_file_of(kind, detail)
        facts["host_file_origin"] = listing_origin(detail, own, other)
    if kind == "optout_robots_txt":
        facts["user_agent"] = ROBOTS_AGENT[detail]
    if detail == "robots_other_agent":
        facts["user_agent"] = OTHER_AGENT
    if detail == OTHER_ORIGIN:
        facts["user_agent"] = ROBOTS_AGENT["img2dataset"]
    if facts["signal"] == "tdmrep_json":
        facts["tdm_reservation"] = 0 if kind == CONTROL else 1
    return facts


def host_name(origin: str) -> str:
    """The lower-cased host name of an origin or URL (``http://LocalHost:8808`` -> localhost)."""
    return urlsplit(origin).hostname or ""


def listing_origin(detail: str, own: str, other: str | None) -> str:
    """The origin whose host files name a host-file row: its own, or (OTHER_ORIGIN) the other
    one, which must have another host name."""
    if detail != OTHER_ORIGIN:
        return origin_of(own)
    if other is None or host_name(other) == host_name(own):
        raise ValueError(f"{OTHER_ORIGIN} needs a second origin; the row's is {own}, other {other}")
    return origin_of(other)


def listed_by_host(
    problems: list[dict], origins: list[str]
) -> dict[str, list[tuple[str, str, str]]]:
    """host name -> (kind, detail, URL path) of the planted rows its host files name (truth
    ``host_file_origin``), in pool order, for the host name of each of ``origins`` (the
    world's: one with no such row gets an empty list)."""
    listed: dict[str, list] = {host_name(o): [] for o in origins}
    for p in problems:
        if "host_file_origin" not in p:
            continue
        host = host_name(p["host_file_origin"])
        if host not in listed:
            raise ValueError(f"problem {p['uid']}: host_file_origin {host!r} is no world origin")
        listed[host].append((p["kind"], p["detail"], urlsplit(p["url"]).path))
    return listed


def host_files(planted: list[tuple[str, str, str]]) -> dict[str, bytes]:
    """{host file path: bytes} of one origin's three host files; ``planted``: (kind, detail,
    URL path) of the opt-out rows they name (listed_by_host), in pool order."""
    return {
        HOST_FILES["robots_txt"]: robots_txt(planted).encode(),
        HOST_FILES["tdmrep_json"]: tdmrep_json(planted).encode(),
        HOST_FILES["ai_txt"]: ai_txt(planted).encode(),
    }


def _paths(planted: list[tuple[str, str, str]], kind: str, details: tuple[str, ...]) -> list[str]:
    return [path for k, d, path in planted if k == kind and d in details]


def robots_txt(planted: list[tuple[str, str, str]]) -> str:
    """robots.txt: comments, a ``*`` group (Disallow lines, then ``Allow: /``), an OtherBot
    group, a group per checked agent with a row to disallow (NAMED_GROUPS), a Sitemap line."""
    any_agent = _paths(planted, "optout_robots_txt", ("any_agent",))
    lines = [
        "# robots.txt for the poolsieve demo image host",
        "# (generated: rows planted with optout_robots_txt on this origin are disallowed below)",
        "",
        "User-agent: *",
        "Disallow: /private/",
        *(f"Disallow: {p}" for p in any_agent),
        "Allow: /",
        "",
        f"User-agent: {OTHER_AGENT}",
        "Disallow: /private/",
        *(f"Disallow: {p}" for p in _paths(planted, CONTROL, ("robots_other_agent",))),
    ]
    for agent, rows in NAMED_GROUPS.items():
        named = [path for k, d, path in planted if (k, d) in rows]
        if named:  # the group replaces ``*`` for that agent: it repeats the ``*`` rules
            lines += ["", f"User-agent: {agent}", "Disallow: /private/"]
            lines += [f"Disallow: {p}" for p in [*named, *any_agent]]
            lines.append("Allow: /")
    lines += ["", "Sitemap: https://demo.poolsieve.invalid/sitemap.xml", ""]
    return "\n".join(lines)


def tdmrep_json(planted: list[tuple[str, str, str]]) -> str:
    """tdmrep.json: a JSON array of {location, tdm-reservation[, tdm-policy]}; one entry per
    planted row (controls: reservation 0) and one for ``/private/*`` (no image is under it)."""
    entries: list[dict] = [
        {"location": "/private/*", "tdm-reservation": 1, "tdm-policy": POLICY_URL}
    ]
    for kind, detail, path in planted:
        if kind == "optout_tdmrep_json":
            entry = {"location": path, "tdm-reservation": 1}
            if detail == "reserved_with_policy":
                entry["tdm-policy"] = POLICY_URL
            entries.append(entry)
        elif kind == CONTROL and detail == "tdmrep_zero":
            entries.append({"location": path, "tdm-reservation": 0})
    return json.dumps(entries, indent=1) + "\n"


def ai_txt(planted: list[tuple[str, str, str]]) -> str:
    """ai.txt in Spawning's format: its comment header, ``User-Agent: *`` and one Disallow line
    per planted row (none when nothing is planted)."""
    lines = [
        "# Spawning AI",
        "# Prevent datasets from using the following file types",
        "# (poolsieve demo: the images listed below are not for AI training)",
        "",
        "User-Agent: *",
        *(f"Disallow: {p}" for p in _paths(planted, "optout_ai_txt", DETAILS["optout_ai_txt"])),
        "",
    ]
    return "\n".join(lines)
