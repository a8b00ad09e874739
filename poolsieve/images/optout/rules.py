"""The pure rules of the opt-out signals: no network, no files, standard library only.

Grain: one host file (robots.txt, ai.txt, tdmrep.json) parsed once per host per refresh, then
asked about each image URL of that host; one image response's headers asked once. Every
question answers ``None`` (the signal does not opt the URL out) or a short human answer naming
the rule that did, which the caller records with the signal name and the time it was seen.

- :class:`RobotsRules`: robots.txt per RFC 9309, and Spawning's robots-like ai.txt;
- :class:`TdmRep`: W3C TDMRep ``/.well-known/tdmrep.json`` (Final Community Group Report,
  2024-05-10);
- :func:`header_optout`: the image response's ``X-Robots-Tag`` and TDMRep ``tdm-reservation``
  headers.

Path patterns (robots.txt ``Allow``/``Disallow`` values and tdmrep.json ``location``) share one
matcher, :class:`_Pattern`: ``*`` is any run of characters, a final ``$`` anchors the end, the
rest is compared octet by octet after percent-encoding normalisation (RFC 9309 2.2.2/2.2.3:
unreserved characters decoded, other escapes upper-cased, non-ASCII encoded as UTF-8 escapes,
and a literal ``*`` or ``$`` in the URL compared as ``%2A``/``%24``). The matcher is an
iterative wildcard match, so a hostile file full of ``*`` cannot make it backtrack
exponentially.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: RFC 9309 2.5: crawlers MUST parse at least 500 KiB; we parse exactly that much
MAX_ROBOTS_BYTES = 500 * 1024
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789abcdefABCDEF")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SCHEME_AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")
#: field names as real crawlers accept them (Google's parser takes these spellings too)
_USER_AGENT_FIELDS = frozenset({"user-agent", "useragent", "user agent"})
_DISALLOW_FIELDS = frozenset({"disallow", "dissallow", "dissalow", "disalow", "disallaw"})
_ALLOW_FIELDS = frozenset({"allow"})


# --- URL paths and patterns -------------------------------------------------------------------


def _normalize(text: str, *, literal_specials: bool) -> str:
    """Percent-encoding normal form of a path or pattern body, for octet comparison.

    ``%XX`` of an unreserved character is decoded, any other escape gets upper-case hex, a
    non-ASCII character becomes its UTF-8 escapes. With ``literal_specials`` (URL paths) a
    literal ``*`` or ``$`` is escaped, since in a pattern those two are operators and a rule
    can name them literally only as ``%2A``/``%24`` (RFC 9309 2.2.3).
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "%" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            decoded = chr(int(text[i + 1 : i + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + text[i + 1 : i + 3].upper())
            i += 3
            continue
        if ord(char) > 0x7F:
            out.append("".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass")))
        elif literal_specials and char in "*$":
            out.append(f"%{ord(char):02X}")
        else:
            out.append(char)
        i += 1
    return "".join(out)


def url_path(url: str) -> str:
    """The part of ``url`` that robots.txt and tdmrep.json rules are matched against.

    Path plus ``?query`` when there is one, ``/`` when the path is empty (RFC 9309 2.2.2), in
    normal form. A URL urllib cannot split (a broken IPv6 literal) loses its scheme and
    authority by a plain regex instead, so a junk URL is still answered, never raised on.
    """
    try:
        parts = urlsplit(url)
        path, query = parts.path, parts.query
    except ValueError:
        rest = _SCHEME_AUTHORITY.sub("", url).split("#", 1)[0]
        path, _, query = rest.partition("?")
    path = path or "/"
    if query:
        path += "?" + query
    return _normalize(path, literal_specials=True)


def _wildcard_match(pattern: str, text: str) -> bool:
    """Whether ``pattern`` (``*`` = any run, else literal) matches all of ``text``.

    The classic two-pointer match: on a mismatch it returns to the last ``*`` and lets it
    swallow one more character, so the cost is at most len(pattern) * len(text).
    """
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif p < len(pattern) and pattern[p] == text[t]:
            p += 1
            t += 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


@dataclass(frozen=True)
class _Pattern:
    """One path pattern, as written and in the matcher's form.

    ``raw`` is the value as written (answers quote it); ``body`` is its normal form with runs
    of ``*`` collapsed and, unless ``anchored`` by a final ``$``, a trailing ``*`` (prefix
    match). ``specificity`` orders competing robots.txt rules: the longer pattern wins.

    ai.txt leniency: a pattern that starts with neither ``/`` nor ``*`` (ai.txt files are
    hand-written with file-type rules like ``*.jpg``, and sometimes ``.jpg`` or ``images/``)
    gets ``*`` in front. RFC 9309 patterns must start with ``/``, so for robots.txt this only
    rescues values that would otherwise never match. tdmrep.json locations get the same.
    """

    raw: str
    body: str
    anchored: bool
    specificity: int

    @classmethod
    def compile(cls, raw: str) -> _Pattern:
        text = raw if raw.startswith(("/", "*")) else "*" + raw
        anchored = text.endswith("$")
        if anchored:
            text = text[:-1]
        pieces = [_normalize(piece, literal_specials=True) for piece in text.split("*")]
        body = re.sub(r"\*{2,}", "*", "*".join(pieces))
        specificity = len(body) + anchored
        if not anchored and not body.endswith("*"):
            body += "*"
        return cls(raw, body, anchored, specificity)

    def matches(self, path: str) -> bool:
        """Whether this pattern matches ``path`` (already in :func:`url_path` form)."""
        if "*" not in self.body:
            return path == self.body
        if self.body.count("*") == 1 and self.body.endswith("*"):
            return path.startswith(self.body[:-1])
        return _wildcard_match(self.body, path)


def product_token(agent: str) -> str:
    """The product token of a user-agent string, lower-cased: ``img2dataset/1.4 (+url)`` →
    ``img2dataset``. Digits are kept (RFC 9309's token grammar has none, but
    ``img2dataset`` must still name itself)."""
    match = re.match(r"[^\s/]*", agent.strip())
    return match.group(0).lower() if match else ""


# --- robots.txt and ai.txt --------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """One ``Allow``/``Disallow`` line, with the user-agent token of the group it was in."""

    allow: bool
    pattern: _Pattern
    agent: str

    def answer(self) -> str:
        field = "Allow" if self.allow else "Disallow"
        return f"{field}: {self.pattern.raw} (user-agent {self.agent})"


def _robots_lines(text: str | bytes) -> list[tuple[str, str]]:
    """``(field lower-cased, value)`` of each ``field: value`` line of the first 500 KiB.

    BOM stripped, comments cut at ``#``, lines without ``:`` dropped.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if len(text) * 4 > MAX_ROBOTS_BYTES:  # only then can it exceed the byte limit
        raw = text.encode("utf-8", "surrogatepass")[:MAX_ROBOTS_BYTES]
        text = raw.decode("utf-8", "ignore")
    text = text.lstrip("\ufeff")
    lines = []
    for line in _LINE_BREAK.split(text):
        content = line.split("#", 1)[0]
        field, colon, value = content.partition(":")
        if colon:
            lines.append((" ".join(field.split()).lower(), value.strip()))
    return lines


class RobotsRules:
    """A parsed robots.txt (RFC 9309), or a Spawning ai.txt read the same way.

    Parsing never raises: text that is no robots.txt yields no groups, so everything is
    allowed. Groups are keyed by lower-cased product token; groups naming the same agent
    are merged (RFC 9309 2.2.1), and a group with no rules still counts as that agent's group.
    """

    def __init__(self, groups: dict[str, list[_Rule]], source: str = "robots.txt") -> None:
        self.groups = groups
        self.source = source

    def __repr__(self) -> str:
        return f"RobotsRules(source={self.source!r}, agents={sorted(self.groups)!r})"

    @classmethod
    def parse(cls, text: str, source: str = "robots.txt") -> RobotsRules:
        """Parse ``text`` leniently, like real crawlers (see the class docstring).

        Consecutive ``User-agent`` lines open one group; the first rule line closes the list
        of its agents, so the next ``User-agent`` opens a new group. Rules before any
        ``User-agent`` and unknown fields (Sitemap, Crawl-delay, Host, ...) are ignored.
        """
        groups: dict[str, list[_Rule]] = {}
        agents: list[tuple[str, str]] = []  # (token, as written) of the open group
        in_rules = False
        for field, value in _robots_lines(text):
            if field in _USER_AGENT_FIELDS:
                if in_rules:
                    agents, in_rules = [], False
                written = value.split()[0] if value.split() else ""
                token = product_token(value)
                if token:
                    agents.append((token, written))
                    groups.setdefault(token, [])
            elif field in _ALLOW_FIELDS or field in _DISALLOW_FIELDS:
                in_rules = True
                if not value:  # an empty Allow/Disallow matches nothing
                    continue
                pattern = _Pattern.compile(value)
                for token, written in agents:
                    groups[token].append(_Rule(field in _ALLOW_FIELDS, pattern, written))
        return cls(groups, source)

    def _group(self, agent: str) -> list[_Rule] | None:
        """The rules that apply to ``agent``: its own groups, else ``*``'s, else None."""
        token = product_token(agent)
        if token and token != "*" and token in self.groups:
            return self.groups[token]
        return self.groups.get("*")

    def disallowing(self, url: str, agent: str) -> str | None:
        """None if ``agent`` may fetch ``url``, else the matched ``Disallow`` rule, e.g.
        ``"Disallow: /img/ (user-agent img2dataset)"``.

        RFC 9309 2.2.2: the longest matching pattern wins, ``Allow`` wins a tie, and
        ``/robots.txt`` itself is always allowed.
        """
        rules = self._group(agent)
        if not rules:
            return None
        path = url_path(url)
        if path.split("?", 1)[0] == "/robots.txt":
            return None
        best: _Rule | None = None
        for rule in rules:
            if not rule.pattern.matches(path):
                continue
            if best is None or _beats(rule, best):
                best = rule
        return None if best is None or best.allow else best.answer()

    def disallowing_any(self, url: str, agents: Iterable[str]) -> str | None:
        """The answer for the first of ``agents`` (in order) that may not fetch ``url``."""
        for agent in agents:
            answer = self.disallowing(url, agent)
            if answer is not None:
                return answer
        return None


def _beats(rule: _Rule, best: _Rule) -> bool:
    """Whether ``rule`` overrides ``best``: more specific, or as specific and an Allow."""
    if rule.pattern.specificity != best.pattern.specificity:
        return rule.pattern.specificity > best.pattern.specificity
    return rule.allow and not best.allow


# --- TDMRep tdmrep.json -----------------------------------------------------------------------


@dataclass(frozen=True)
class _TdmRule:
    """One tdmrep.json entry: where it applies, whether it reserves, and its policy URL."""

    location: _Pattern
    reserved: bool
    policy: str | None

    def answer(self) -> str:
        policy = f" (policy {self.policy})" if self.policy else ""
        return f"tdm-reservation 1 for location {self.location.raw}{policy}"


def _reservation_value(value: Any, where: str) -> bool:
    """``tdm-reservation`` as a bool; 0 and 1 only (``"0"``/``"1"`` strings tolerated, since
    they are unambiguous). JSON ``true``/``false`` are refused: the spec says integer."""
    if isinstance(value, bool) or value not in (0, 1, "0", "1"):
        raise ValueError(f"{where}: tdm-reservation must be 0 or 1, got {value!r}")
    return value in (1, "1")


def _tdm_rule(entry: Any, index: int) -> _TdmRule:
    """One validated entry; raises ValueError naming the entry and what is wrong with it."""
    where = f"tdmrep.json entry {index}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not a JSON object (got {type(entry).__name__})")
    location = entry.get("location")
    if not isinstance(location, str) or not location.strip():
        raise ValueError(f"{where} lacks a location (a non-empty path pattern string)")
    if "tdm-reservation" not in entry:
        raise ValueError(f"{where} lacks tdm-reservation")
    reserved = _reservation_value(entry["tdm-reservation"], where)
    policy = entry.get("tdm-policy")
    policy = (policy.strip() or None) if isinstance(policy, str) else None
    return _TdmRule(_Pattern.compile(location.strip()), reserved, policy)


class TdmRep:
    """A parsed W3C TDMRep ``/.well-known/tdmrep.json``: an ordered list of rules.

    Matching follows the TDMRep Final Community Group Report (2024-05-10), section "TDM File
    on the Origin Server": "The most specific match found MUST be used. The most specific
    match is the first in sequence." — so the first entry (array order) whose ``location``
    matches decides, even if it says 0; no match means unset (not reserved). Locations use
    robots.txt's ``*``/``$`` syntax and percent-encoding rules ("re-using ... robots.txt
    draft-koster-rep-00 2.2.3"), matched case-sensitively ("The matching SHOULD be case
    sensitive"), against path plus query like robots.txt.
    """

    def __init__(self, rules: list[_TdmRule]) -> None:
        self.rules = rules

    def __repr__(self) -> str:
        return f"TdmRep({len(self.rules)} rules)"

    @classmethod
    def parse(cls, text: str) -> TdmRep:
        """Parse a tdmrep.json body; ValueError names the problem (the caller records the
        host file as unusable): not JSON, not an array, an entry that is no object, lacks a
        location, or whose tdm-reservation is missing or not 0/1. A non-string ``tdm-policy``
        is ignored (it is optional and only informs the answer)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        try:
            data = json.loads(text.lstrip("\ufeff"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"tdmrep.json is not JSON: {exc}") from exc
        if not isinstance(data, list):
            raise ValueError(f"tdmrep.json is not a JSON array (got {type(data).__name__})")
        return cls([_tdm_rule(entry, index) for index, entry in enumerate(data)])

    def reserving(self, url: str) -> str | None:
        """None if TDM rights on ``url`` are not reserved, else e.g.
        ``"tdm-reservation 1 for location /img/* (policy https://x/p.json)"``."""
        path = url_path(url)
        for rule in self.rules:
            if rule.location.matches(path):
                return rule.answer() if rule.reserved else None
        return None


# --- response headers -------------------------------------------------------------------------

#: X-Robots-Tag directive names; one of these before a ':' is a directive with a value
#: (``unavailable_after: 25 Jun 2010 15:00:00 PST``, ``max-image-preview: large``), not an agent
KNOWN_DIRECTIVES = frozenset(
    {
        "all",
        "none",
        "index",
        "noindex",
        "follow",
        "nofollow",
        "noarchive",
        "nocache",
        "nosnippet",
        "noodp",
        "noydir",
        "notranslate",
        "noimageindex",
        "indexifembedded",
        "max-snippet",
        "max-image-preview",
        "max-video-preview",
        "unavailable_after",
        "noai",
        "noimageai",
    }
)
_AGENT_TOKEN = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _header_values(headers: Any, name: str) -> list[str]:
    """All values of header ``name``: ``get_all`` of an email.message.Message-like object
    (None when absent), else a case-insensitive scan of a mapping's items."""
    if hasattr(headers, "get_all"):
        return [str(v) for v in headers.get_all(name) or []]
    return [str(v) for k, v in headers.items() if str(k).lower() == name.lower()]


def _robots_tag_directives(value: str, known: frozenset[str]) -> Iterable[tuple[str | None, str]]:
    """``(agent token or None for all agents, directive lower-cased)`` of one header value.

    Comma-separated; ``agent: d1, d2`` scopes the following directives to ``agent`` until
    the next scope. A part before ':' that is a known directive name, or no plain token (a
    date), is a directive's value, not an agent.
    """
    scope: str | None = None
    for part in value.split(","):
        head, colon, rest = part.partition(":")
        head = head.strip().lower()
        if colon and head not in known and _AGENT_TOKEN.match(head):
            scope, part = head, rest
        yield scope, part.strip().lower()


def header_optout(
    headers: Any, agents: Iterable[str], directives: Iterable[str]
) -> tuple[str, str] | None:
    """The header signal that opts an image response out, with its answer, or None.

    ``("x_robots_tag", "X-Robots-Tag: <value as sent>")`` when any ``X-Robots-Tag`` header
    carries one of ``directives`` (case-insensitive) unscoped or scoped to one of
    ``agents``; checked first. Else ``("tdm_reservation", "tdm-reservation: 1")`` (plus
    ``" (policy <tdm-policy>)"``) when a TDMRep ``tdm-reservation`` header is 1.
    """
    wanted = {d.strip().lower() for d in directives}
    tokens = {product_token(a) for a in agents}
    known = KNOWN_DIRECTIVES | wanted
    for value in _header_values(headers, "X-Robots-Tag"):
        for scope, directive in _robots_tag_directives(value, known):
            if directive in wanted and (scope is None or scope in tokens):
                return ("x_robots_tag", f"X-Robots-Tag: {value.strip()}")
    if any(v.strip() == "1" for v in _header_values(headers, "tdm-reservation")):
        policies = [v.strip() for v in _header_values(headers, "tdm-policy") if v.strip()]
        policy = f" (policy {policies[0]})" if policies else ""
        return ("tdm_reservation", f"tdm-reservation: 1{policy}")
    return None
