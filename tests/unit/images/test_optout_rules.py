"""The opt-out signals' pure rules: robots.txt/ai.txt, tdmrep.json and response headers.

Robots cases follow RFC 9309's own examples (sections 2.2.1-2.2.3, 5.1, 5.2) and Google's
documented path-matching examples, which TDMRep also points to for its ``location`` syntax.
"""

from __future__ import annotations

import http.client
import io
import time

import pytest

from poolsieve.images.optout import DEFAULT_DIRECTIVES, DEFAULT_USER_AGENTS
from poolsieve.images.optout.rules import (
    MAX_ROBOTS_BYTES,
    RobotsRules,
    TdmRep,
    header_optout,
    url_path,
)

HOST = "https://example.com"

# RFC 9309 5.1 (simple example), with the quxbot group that has no rules
RFC_EXAMPLE = """\
User-Agent: *
Disallow: *.gif$
Disallow: /example/
Allow: /publications/

User-Agent: foobot
Disallow:/
Allow:/example/page.html
Allow:/example/allowed.gif

User-Agent: barbot
User-Agent: bazbot
Disallow: /example/page.html

User-Agent: quxbot

EOF"""


def disallowing(text: str, path: str, agent: str = "img2dataset") -> str | None:
    return RobotsRules.parse(text).disallowing(HOST + path, agent)


# --- robots.txt ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "path", "expected"),
    [
        # foobot: Disallow / but two Allows, longer wins
        ("foobot", "/example/page.html", None),
        ("foobot", "/example/allowed.gif", None),
        ("foobot", "/example/other.html", "Disallow: / (user-agent foobot)"),
        ("FooBot/1.2 (+https://foo.example)", "/x", "Disallow: / (user-agent foobot)"),
        # barbot and bazbot share one group
        ("barbot", "/example/page.html", "Disallow: /example/page.html (user-agent barbot)"),
        ("bazbot", "/example/page.html", "Disallow: /example/page.html (user-agent bazbot)"),
        ("bazbot", "/example/allowed.gif", None),
        # quxbot's group has no rules: its own group still applies, so it may fetch anything
        ("quxbot", "/example/page.html", None),
        # everyone else falls back to *
        ("img2dataset", "/example/page.html", "Disallow: /example/ (user-agent *)"),
        ("img2dataset", "/pics/a.gif", "Disallow: *.gif$ (user-agent *)"),
        ("img2dataset", "/pics/a.gif?size=2", None),
        ("img2dataset", "/publications/a.html", None),
        ("img2dataset", "/", None),
    ],
)
def test_rfc9309_simple_example(agent: str, path: str, expected: str | None) -> None:
    assert disallowing(RFC_EXAMPLE, path, agent) == expected


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        # RFC 9309 5.2: longest match
        (
            "User-Agent: img2dataset\nAllow: /example/page/\nDisallow: /example/page/disallowed.gif",
            "/example/page/disallowed.gif",
            "Disallow: /example/page/disallowed.gif (user-agent img2dataset)",
        ),
        (
            "User-Agent: img2dataset\nAllow: /example/page/\nDisallow: /example/page/disallowed.gif",
            "/example/page/other.gif",
            None,
        ),
        # equal length: Allow wins, whatever the order
        ("User-agent: *\nDisallow: /page\nAllow: /page", "/page", None),
        ("User-agent: *\nAllow: /page\nDisallow: /page", "/page.html", None),
        ("User-agent: *\nAllow: /pag*\nDisallow: /page", "/page", None),
        # a longer Disallow beats a shorter Allow
        ("User-agent: *\nAllow: /p\nDisallow: /page", "/page", "Disallow: /page (user-agent *)"),
        # $ anchors the end (Google's allow: /$ example)
        ("User-agent: *\nAllow: /$\nDisallow: /", "/", None),
        ("User-agent: *\nAllow: /$\nDisallow: /", "/page.htm", "Disallow: / (user-agent *)"),
        # an empty Disallow matches nothing
        ("User-agent: *\nDisallow:", "/anything", None),
        ("User-agent: *\nDisallow:   # nothing", "/anything", None),
        # /robots.txt itself is always allowed
        ("User-agent: *\nDisallow: /", "/robots.txt", None),
        ("User-agent: *\nDisallow: /", "/robots.txt.bak", "Disallow: / (user-agent *)"),
        # path matching is case-sensitive
        ("User-agent: *\nDisallow: /Img/", "/img/a.jpg", None),
        # the query is part of the path, the fragment is not
        (
            "User-agent: *\nDisallow: /*?session=",
            "/a?session=1",
            "Disallow: /*?session= (user-agent *)",
        ),
        ("User-agent: *\nDisallow: /*?session=", "/a#?session=1", None),
        ("User-agent: *\nDisallow: /a?", "/a", None),
    ],
)
def test_rfc9309_matching(text: str, path: str, expected: str | None) -> None:
    assert disallowing(text, path) == expected


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        # Google's path-matching examples, which RFC 9309 and TDMRep both follow
        ("/fish", "/fish", True),
        ("/fish", "/fish.html", True),
        ("/fish", "/fishheads/yummy.html", True),
        ("/fish", "/Fish.asp", False),
        ("/fish", "/catfish", False),
        ("/fish*", "/fish.php?id=anything", True),
        ("/fish/", "/fish", False),
        ("/fish/", "/fish/salmon.htm", True),
        ("/*.php", "/index.php", True),
        ("/*.php", "/folder/any.php.file.html", True),
        ("/*.php", "/", False),
        ("/*.php", "/windows.PHP", False),
        ("/*.php$", "/filename.php", True),
        ("/*.php$", "/folder/filename.php", True),
        ("/*.php$", "/filename.php?parameters", False),
        ("/*.php$", "/filename.php/", False),
        ("/fish*.php", "/fish.php", True),
        ("/fish*.php", "/fishheads/catfish.php?parameters", True),
        ("/fish*.php", "/Fish.PHP", False),
        ("/a**b", "/axxb", True),
        ("/a$b", "/a$b", True),  # a $ that is not last is a literal
        ("/a$b", "/ab", False),
        # RFC 9309 2.2.3: special characters matched literally through % encoding
        ("/path/file-with-a-%2A.html", "/path/file-with-a-*.html", True),
        ("/path/file-with-a-%2A.html", "/path/file-with-a-x.html", False),
        ("/path/foo-%24", "/path/foo-$", True),
        # RFC 9309 2.2.2: percent-encoding normalised on both sides
        ("/foo/bar?baz=quz", "/foo/bar?baz=quz", True),
        ("/foo/bar/ツ", "/foo/bar/%E3%83%84", True),
        ("/foo/bar/%E3%83%84", "/foo/bar/ツ", True),
        ("/foo/bar/%e3%83%84", "/foo/bar/%E3%83%84", True),
        ("/foo/bar/%62%61%7A", "/foo/bar/baz", True),
        ("/foo/bar/baz", "/foo/bar/%62%61%7a", True),
        ("/~joe/", "/%7Ejoe/a", True),
        ("/a%2Fb", "/a/b", False),  # an encoded reserved character stays distinct
    ],
)
def test_pattern_syntax(pattern: str, path: str, matches: bool) -> None:
    answer = disallowing(f"User-agent: *\nDisallow: {pattern}", path)
    assert answer == (f"Disallow: {pattern} (user-agent *)" if matches else None)


def test_groups_for_one_agent_are_merged() -> None:
    text = (
        "User-agent: img2dataset\nDisallow: /a/\n\n"
        "User-agent: other\nDisallow: /b/\n\n"
        "User-agent: IMG2DATASET\nDisallow: /c/\n"
    )
    rules = RobotsRules.parse(text)
    assert (
        rules.disallowing(HOST + "/a/1", "img2dataset") == "Disallow: /a/ (user-agent img2dataset)"
    )
    assert (
        rules.disallowing(HOST + "/c/1", "img2dataset") == "Disallow: /c/ (user-agent IMG2DATASET)"
    )
    assert rules.disallowing(HOST + "/b/1", "img2dataset") is None
    assert rules.disallowing(HOST + "/b/1", "Other") == "Disallow: /b/ (user-agent other)"


def test_agent_group_replaces_star_group() -> None:
    text = "User-agent: *\nDisallow: /\n\nUser-agent: img2dataset\nDisallow:\n"
    rules = RobotsRules.parse(text)
    assert rules.disallowing(HOST + "/x.jpg", "img2dataset") is None
    assert rules.disallowing(HOST + "/x.jpg", "CCBot") == "Disallow: / (user-agent *)"


def test_other_agents_group_does_not_apply_without_star() -> None:
    rules = RobotsRules.parse("User-agent: GPTBot\nDisallow: /\n")
    assert rules.disallowing(HOST + "/x.jpg", "img2dataset") is None
    assert rules.disallowing(HOST + "/x.jpg", "GPTBot") == "Disallow: / (user-agent GPTBot)"
    # a token that merely starts like another agent's is another agent
    assert rules.disallowing(HOST + "/x.jpg", "GPTBot-Extended") is None


def test_versioned_user_agent_line() -> None:
    rules = RobotsRules.parse("User-agent: img2dataset/1.4 extra words\nDisallow: /img/\n")
    assert (
        rules.disallowing(HOST + "/img/a.jpg", "img2dataset")
        == "Disallow: /img/ (user-agent img2dataset/1.4)"
    )


def test_lenient_syntax() -> None:
    text = (
        "\ufeff# a comment line\n"
        "Sitemap: https://example.com/sitemap.xml\n"
        "Disallow: /before-any-group/\n"  # no group yet: ignored
        "USER-AGENT: img2dataset   # trailing comment\r\n"
        "Crawl-delay: 10\r\n"
        "user-agent: CCBot\r"
        "DISALLOW: /img/ # why\n"
        "Disallow /no-colon/\n"
        "Host: example.com\n"
        "Noindex: /also-unknown/\n"
        "dissallow: /typo/\n"
    )
    rules = RobotsRules.parse(text)
    assert (
        rules.disallowing(HOST + "/img/a.jpg", "img2dataset")
        == "Disallow: /img/ (user-agent img2dataset)"
    )
    assert rules.disallowing(HOST + "/img/a.jpg", "ccbot") == "Disallow: /img/ (user-agent CCBot)"
    assert rules.disallowing(HOST + "/typo/a", "ccbot") == "Disallow: /typo/ (user-agent CCBot)"
    for path in ("/before-any-group/a", "/no-colon/a", "/also-unknown/a"):
        assert rules.disallowing(HOST + path, "img2dataset") is None


def test_user_agent_after_rules_opens_a_new_group() -> None:
    rules = RobotsRules.parse("User-agent: a\nDisallow: /x\nUser-agent: b\nDisallow: /y\n")
    assert rules.disallowing(HOST + "/y", "a") is None
    assert rules.disallowing(HOST + "/x", "b") is None
    assert rules.disallowing(HOST + "/y", "b") == "Disallow: /y (user-agent b)"


def test_disallowing_any_answers_for_the_first_disallowed_agent_in_order() -> None:
    text = "User-agent: CCBot\nDisallow: /\n\nUser-agent: img2dataset\nDisallow: /img/\n"
    rules = RobotsRules.parse(text)
    url = HOST + "/img/a.jpg"
    assert (
        rules.disallowing_any(url, ["img2dataset", "CCBot"])
        == "Disallow: /img/ (user-agent img2dataset)"
    )
    assert rules.disallowing_any(url, ["CCBot", "img2dataset"]) == "Disallow: / (user-agent CCBot)"
    assert (
        rules.disallowing_any(HOST + "/page", DEFAULT_USER_AGENTS)
        == "Disallow: / (user-agent CCBot)"
    )
    assert rules.disallowing_any(HOST + "/page", ["img2dataset"]) is None
    assert rules.disallowing_any(url, []) is None


AI_TXT = """\
# Spawning AI
# Prevent datasets from using the following file types

User-Agent: *
Disallow: *.jpg
Disallow: *.jpeg
Disallow: .png
Disallow: *.gif$
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/photos/cat.jpg", "Disallow: *.jpg (user-agent *)"),
        ("/photos/cat.jpg?w=200", "Disallow: *.jpg (user-agent *)"),
        ("/cat.jpeg", "Disallow: *.jpeg (user-agent *)"),
        ("/a/b.png", "Disallow: .png (user-agent *)"),  # no leading / or *: '*' prefixed
        ("/a.gif", "Disallow: *.gif$ (user-agent *)"),
        ("/a.gif?x", None),
        ("/photos/cat.webp", None),
        ("/index.html", None),
    ],
)
def test_ai_txt_file_type_rules(path: str, expected: str | None) -> None:
    rules = RobotsRules.parse(AI_TXT, source="ai.txt")
    assert rules.source == "ai.txt"
    assert rules.disallowing_any(HOST + path, DEFAULT_USER_AGENTS) == expected


def test_ai_txt_disallow_everything() -> None:
    rules = RobotsRules.parse("User-Agent: *\nDisallow: /\n", source="ai.txt")
    assert rules.disallowing(HOST + "/a.jpg", "img2dataset") == "Disallow: / (user-agent *)"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\x00\x01\x02 binary \xff\xfe",
        "<!doctype html><html><body><h1>404 Not Found</h1>: Disallow: /</body></html>",
        '{"json": "instead", "Disallow": "/"}',
        "Disallow: /\nAllow: /x",  # rules with no user-agent
        "User-agent:\nDisallow: /",  # an empty user-agent names nobody
        "\udcff lone surrogate User-agent: *\n",
        ":::\n::\n:",
        "User-agent: *\nDisallow: %zz%",
    ],
)
def test_garbage_never_raises_and_allows(text: str) -> None:
    rules = RobotsRules.parse(text)
    assert rules.disallowing_any(HOST + "/a.jpg", DEFAULT_USER_AGENTS) is None


def test_one_mib_file_parses_only_its_first_500_kib() -> None:
    head = "User-agent: *\nDisallow: /early/\n"
    filler = "# " + "x" * 1021 + "\n"  # 1 KiB lines
    body = head + filler * 600 + "Disallow: /late/\n" + filler * 424
    assert len(body.encode()) > 1024 * 1024
    started = time.perf_counter()
    rules = RobotsRules.parse(body)
    assert time.perf_counter() - started < 5
    assert (
        rules.disallowing(HOST + "/early/a.jpg", "img2dataset")
        == "Disallow: /early/ (user-agent *)"
    )
    assert rules.disallowing(HOST + "/late/a.jpg", "img2dataset") is None
    # a rule just inside the limit still counts
    inside = head + filler * 400 + "Disallow: /late/\n"
    assert len(inside.encode()) < MAX_ROBOTS_BYTES
    assert (
        RobotsRules.parse(inside).disallowing(HOST + "/late/a", "x")
        == "Disallow: /late/ (user-agent *)"
    )


def test_many_wildcards_do_not_backtrack_exponentially() -> None:
    rules = RobotsRules.parse("User-agent: *\nDisallow: /" + "*a" * 40 + "b\n")
    started = time.perf_counter()
    assert rules.disallowing(HOST + "/" + "a" * 3000, "img2dataset") is None
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://example.com", "/"),
        ("https://example.com/a/b.jpg?x=1&y=%7e#frag", "/a/b.jpg?x=1&y=~"),
        ("http://example.com/ツ", "/%E3%83%84"),
        ("http://example.com/a*b$c", "/a%2Ab%24c"),
        ("http://[::1/broken/ipv6.jpg?q", "/broken/ipv6.jpg?q"),
    ],
)
def test_url_path(url: str, path: str) -> None:
    assert url_path(url) == path


# --- tdmrep.json ------------------------------------------------------------------------------

# the second example of the TDMRep report's "TDM File on the Origin Server" section
TDMREP_EXAMPLE = """[
  {"location": "/directory-a/", "tdm-reservation": 1},
  {"location": "/directory-b/html/", "tdm-reservation": 1,
   "tdm-policy": "https://provider.com/policies/policy.json"},
  {"location": "/directory-b/images/*.jpg", "tdm-reservation": 0}
]"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/directory-a/report.pdf", "tdm-reservation 1 for location /directory-a/"),
        (
            "/directory-b/html/page.html",
            "tdm-reservation 1 for location /directory-b/html/ "
            "(policy https://provider.com/policies/policy.json)",
        ),
        ("/directory-b/images/photo.jpg", None),
        ("/directory-b/images/photo.png", None),  # no location matches: unset
        ("/Directory-A/report.pdf", None),  # case-sensitive
        ("/", None),
    ],
)
def test_tdmrep_spec_example(path: str, expected: str | None) -> None:
    assert TdmRep.parse(TDMREP_EXAMPLE).reserving(HOST + path) == expected


def test_tdmrep_whole_site() -> None:
    rep = TdmRep.parse('\ufeff[{"location": "/", "tdm-reservation": 1}]')
    assert rep.reserving(HOST + "/any/image.jpg") == "tdm-reservation 1 for location /"


def test_tdmrep_first_match_in_array_order_wins() -> None:
    open_first = TdmRep.parse(
        '[{"location": "/img/open/*", "tdm-reservation": 0},'
        ' {"location": "/img/*", "tdm-reservation": 1}]'
    )
    assert open_first.reserving(HOST + "/img/open/a.jpg") is None
    assert open_first.reserving(HOST + "/img/b.jpg") == "tdm-reservation 1 for location /img/*"
    reserved_first = TdmRep.parse(
        '[{"location": "/img/*", "tdm-reservation": 1},'
        ' {"location": "/img/open/*", "tdm-reservation": 0}]'
    )
    assert (
        reserved_first.reserving(HOST + "/img/open/a.jpg")
        == "tdm-reservation 1 for location /img/*"
    )


@pytest.mark.parametrize(
    ("location", "path", "reserved"),
    [
        ("/a.jpg$", "/a.jpg", True),
        ("/a.jpg$", "/a.jpg?x", False),
        ("/*/thumbs/", "/2024/thumbs/a.jpg", True),
        ("/*/thumbs/", "/thumbs/a.jpg", False),
        ("/%7Euser/", "/~user/a.jpg", True),
        ("*.png", "/x/y.png", True),
    ],
)
def test_tdmrep_location_syntax(location: str, path: str, reserved: bool) -> None:
    rep = TdmRep.parse(f'[{{"location": "{location}", "tdm-reservation": 1}}]')
    expected = f"tdm-reservation 1 for location {location}" if reserved else None
    assert rep.reserving(HOST + path) == expected


def test_tdmrep_tolerated_values() -> None:
    assert TdmRep.parse("[]").reserving(HOST + "/a") is None
    rep = TdmRep.parse('[{"location": "/", "tdm-reservation": "1", "tdm-policy": 7, "x": 1}]')
    assert rep.reserving(HOST + "/a") == "tdm-reservation 1 for location /"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<html>not found</html>", "tdmrep.json is not JSON"),
        ("", "tdmrep.json is not JSON"),
        ('{"location": "/", "tdm-reservation": 1}', "tdmrep.json is not a JSON array (got dict)"),
        ('"just a string"', "tdmrep.json is not a JSON array (got str)"),
        (
            '[{"location": "/", "tdm-reservation": 1}, "x"]',
            "tdmrep.json entry 1 is not a JSON object",
        ),
        ('[{"tdm-reservation": 1}]', "tdmrep.json entry 0 lacks a location"),
        ('[{"location": "", "tdm-reservation": 1}]', "tdmrep.json entry 0 lacks a location"),
        ('[{"location": 5, "tdm-reservation": 1}]', "tdmrep.json entry 0 lacks a location"),
        ('[{"location": "/"}]', "tdmrep.json entry 0 lacks tdm-reservation"),
        (
            '[{"location": "/a", "tdm-reservation": 0}, {"location": "/", "tdm-reservation": 2}]',
            "tdmrep.json entry 1: tdm-reservation must be 0 or 1, got 2",
        ),
        (
            '[{"location": "/", "tdm-reservation": true}]',
            "tdmrep.json entry 0: tdm-reservation must be 0 or 1, got True",
        ),
        (
            '[{"location": "/", "tdm-reservation": "yes"}]',
            "tdmrep.json entry 0: tdm-reservation must be 0 or 1, got 'yes'",
        ),
    ],
)
def test_tdmrep_invalid_files(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        TdmRep.parse(text)
    assert str(info.value).startswith(message)


# --- response headers -------------------------------------------------------------------------


def headers(*lines: str) -> http.client.HTTPMessage:
    """Headers as http.client parses them off the wire (get_all gives None when absent)."""
    raw = "".join(line + "\r\n" for line in lines) + "\r\n"
    return http.client.parse_headers(io.BytesIO(raw.encode("latin-1")))


def optout(*lines: str, directives=DEFAULT_DIRECTIVES):
    return header_optout(headers(*lines), DEFAULT_USER_AGENTS, directives)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["X-Robots-Tag: noai"], ("x_robots_tag", "X-Robots-Tag: noai")),
        (["x-robots-tag:  NoImageAI "], ("x_robots_tag", "X-Robots-Tag: NoImageAI")),
        (
            ["X-Robots-Tag: noindex, nofollow, noai"],
            ("x_robots_tag", "X-Robots-Tag: noindex, nofollow, noai"),
        ),
        # scoped to one of our agents, any case
        (["X-Robots-Tag: img2dataset: noai"], ("x_robots_tag", "X-Robots-Tag: img2dataset: noai")),
        (["X-Robots-Tag: ccbot: noimageai"], ("x_robots_tag", "X-Robots-Tag: ccbot: noimageai")),
        (
            ["X-Robots-Tag: CCBot: noindex, noai"],
            ("x_robots_tag", "X-Robots-Tag: CCBot: noindex, noai"),
        ),
        # scoped to another agent: not ours
        (["X-Robots-Tag: googlebot: noai, noimageai"], None),
        (
            ["X-Robots-Tag: googlebot: noindex, img2dataset: noai"],
            ("x_robots_tag", "X-Robots-Tag: googlebot: noindex, img2dataset: noai"),
        ),
        (["X-Robots-Tag: img2dataset: noindex, googlebot: noai"], None),
        # directives not configured
        (["X-Robots-Tag: noindex"], None),
        (["X-Robots-Tag: noimageindex, none"], None),
        (["X-Robots-Tag: noai-ish, ainoai"], None),
        # several headers: any of them
        (["X-Robots-Tag: noindex", "X-Robots-Tag: noai"], ("x_robots_tag", "X-Robots-Tag: noai")),
        (
            ["X-Robots-Tag: googlebot: noindex", "X-Robots-Tag: noai"],
            ("x_robots_tag", "X-Robots-Tag: noai"),
        ),
        # directives with values and colons are not agents
        (["X-Robots-Tag: unavailable_after: 25 Jun 2010 15:00:00 PST"], None),
        (
            ["X-Robots-Tag: unavailable_after: 25 Jun 2010 15:00:00 PST, noai"],
            ("x_robots_tag", "X-Robots-Tag: unavailable_after: 25 Jun 2010 15:00:00 PST, noai"),
        ),
        (
            ["X-Robots-Tag: max-image-preview: none, noimageai"],
            ("x_robots_tag", "X-Robots-Tag: max-image-preview: none, noimageai"),
        ),
        (
            ["X-Robots-Tag: unavailable_after: Friday, 25-Jun-10 15:00:00 PST, noai"],
            (
                "x_robots_tag",
                "X-Robots-Tag: unavailable_after: Friday, 25-Jun-10 15:00:00 PST, noai",
            ),
        ),
        # TDMRep headers
        (["tdm-reservation: 1"], ("tdm_reservation", "tdm-reservation: 1")),
        (
            ["TDM-Reservation: 1", "tdm-policy: https://provider.com/policies/policy.json"],
            (
                "tdm_reservation",
                "tdm-reservation: 1 (policy https://provider.com/policies/policy.json)",
            ),
        ),
        (["tdm-reservation: 0", "tdm-policy: https://provider.com/p.json"], None),
        (["tdm-reservation: yes"], None),
        # X-Robots-Tag is checked first
        (["tdm-reservation: 1", "X-Robots-Tag: noai"], ("x_robots_tag", "X-Robots-Tag: noai")),
        (
            ["X-Robots-Tag: noindex", "tdm-reservation: 1"],
            ("tdm_reservation", "tdm-reservation: 1"),
        ),
        # nothing relevant
        ([], None),
        (["Content-Type: image/jpeg"], None),
    ],
)
def test_header_optout(lines: list[str], expected: tuple[str, str] | None) -> None:
    assert optout(*lines) == expected


def test_header_optout_configured_directives() -> None:
    assert optout("X-Robots-Tag: noindex", directives=("noai", "NOINDEX")) == (
        "x_robots_tag",
        "X-Robots-Tag: noindex",
    )
    assert optout("X-Robots-Tag: noai", directives=()) is None


def test_header_optout_agents_with_versions_and_plain_mappings() -> None:
    found = header_optout(
        headers("X-Robots-Tag: img2dataset: noai"), ["img2dataset/1.4 (+url)"], ["noai"]
    )
    assert found == ("x_robots_tag", "X-Robots-Tag: img2dataset: noai")
    assert header_optout({"x-robots-tag": "noai"}, ["img2dataset"], ["noai"]) == (
        "x_robots_tag",
        "X-Robots-Tag: noai",
    )
    assert header_optout({"Content-Type": "image/png"}, ["img2dataset"], ["noai"]) is None
