"""The pool's planted metadata problems: rows that ingest quarantines or URL dedup drops.

Planted rows (never at row 0 of a shard) each trigger exactly one outcome:

* quarantine, one per staging reason (``QUARANTINE_REASONS``, in the staging SQL's order);
* ``exact_url_dup`` / ``normalized_url_dup``: an earlier clean row's url, byte-identical or
  differing only in what ``normalize_url`` removes, with a fresh uid -> ``duplicate_url``;
* ``cross_shard_uid_dup``: an earlier shard's clean row's uid -> ``duplicate_uid``.

Originals are always clean ("base") rows, and a uid is copied at most once, so the expected counts
are exact: every base row is kept, every planted row gets exactly its ``expect``. This module says
which kinds exist, how many of each a shard gets, and how a row is broken for each; the builder
(rows.PoolBuilder) places them.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from poolsieve.pool.ingest import QUARANTINE_REASONS as INGEST_REASONS
from poolsieve.pool.ingest import IngestParams

LIMITS = IngestParams()  # staging's default thresholds (url length, image side)

QUARANTINE_REASONS = tuple(INGEST_REASONS)
DUPLICATE_KINDS = {
    "exact_url_dup": "duplicate_url",
    "normalized_url_dup": "duplicate_url",
    "cross_shard_uid_dup": "duplicate_uid",
}
PLANT_KINDS = QUARANTINE_REASONS + tuple(DUPLICATE_KINDS)
#: planted rows per shard = round(rate * rows_per_shard), at least 1 (cross_shard: none in shard 0)
DEFAULT_RATES = {
    "url_missing": 0.012,
    "url_scheme": 0.012,
    "url_unparseable": 0.01,
    "size_invalid": 0.01,
    "score_invalid": 0.01,
    "uid_malformed": 0.012,
    "uid_repeated": 0.01,
    "exact_url_dup": 0.025,
    "normalized_url_dup": 0.03,
    "cross_shard_uid_dup": 0.015,
}
#: how each kind is planted: the j-th planted row of a kind in shard s uses detail (j + s) % n,
#: or the next one that can apply (e.g. no earlier shard in shard 0, no letters in an IP host)
DETAILS = {
    "url_missing": ("null", "empty", "blank"),
    "url_scheme": ("ftp", "data", "javascript", "protocol_relative", "relative_path", "not_a_url"),
    "url_unparseable": (
        "space_in_host",
        "empty_host",
        "line_break_in_path",
        "bad_host_char",
        "too_long",
    ),
    "size_invalid": ("zero_width", "negative_height", "huge_width", "huge_height"),
    "score_invalid": ("nan_b32", "nan_l14", "above_one", "below_minus_one"),
    "uid_malformed": ("upper_case", "too_short", "too_long", "non_hex", "null", "uuid_dashes"),
    "uid_repeated": ("same_shard",),
    "exact_url_dup": ("earlier_shard", "same_shard"),
    "normalized_url_dup": (
        "scheme_case",
        "host_case",
        "default_port",
        "trailing_slash",
        "fragment",
        "tracking_utm",
        "tracking_fbclid",
        "whitespace",
    ),
    "cross_shard_uid_dup": ("same_row", "new_url"),
}


def default_counts(rows_per_shard: int) -> dict[str, int]:
    """Planted rows per shard for each kind (see DEFAULT_RATES)."""
    return {k: max(1, round(r * rows_per_shard)) for k, r in DEFAULT_RATES.items()}


def resolve_counts(counts: Mapping[str, int] | None, rows_per_shard: int) -> dict[str, int]:
    """Planted rows per shard by kind: the defaults, overridden by ``counts``; refused when
    unknown, negative, or too many for the shard (at most half of the rows after row 0)."""
    resolved = {**default_counts(rows_per_shard), **(counts or {})}
    unknown = sorted(set(resolved) - set(PLANT_KINDS))
    if unknown or any(v < 0 for v in resolved.values()):
        raise ValueError(f"counts: unknown kinds {unknown} or negative values in {resolved}")
    if sum(resolved.values()) > (rows_per_shard - 1) // 2:
        raise ValueError(
            f"{sum(resolved.values())} planted rows per shard is too many for "
            f"{rows_per_shard} rows (at most half of the rows after row 0)"
        )
    return resolved


def _mixed_case(host: str) -> str:
    """'cdn.poolsieve-demo.test' -> 'CDN.Poolsieve-Demo.TEST'."""
    labels = host.split(".")
    return ".".join(x.upper() if i % 2 == 0 else x.title() for i, x in enumerate(labels))


def url_variant(url: str, detail: str, token: str) -> str | None:
    """``url`` changed only in a way normalize_url undoes, or None when ``detail`` cannot apply."""
    parts = urlsplit(url)
    sep = "&" if parts.query else "?"
    port = {"http": "80", "https": "443"}.get(parts.scheme)
    variants = {
        "scheme_case": parts.scheme.upper() + url[len(parts.scheme) :],
        "host_case": url.replace(parts.netloc, _mixed_case(parts.netloc), 1),
        "default_port": None
        if parts.port is not None or port is None
        else url.replace(parts.netloc, f"{parts.netloc}:{port}", 1),
        "trailing_slash": url + "/",
        "fragment": f"{url}#{token}",
        "tracking_utm": f"{url}{sep}utm_source=demo&utm_medium=social&utm_campaign={token}",
        "tracking_fbclid": f"{url}{sep}fbclid=IwAR{token}",
        "whitespace": f" {url}  ",
    }
    variant = variants[detail]
    return None if variant is None or variant == url else variant


def verify_urls(variants: list[tuple[str, str, str]], unparseable: list[tuple[str, str]]) -> None:
    """Confirm planted URLs against the normalize_url SQL macro, in one query (fails loudly on
    rule drift): each (detail, variant, url) normalizes like url; each (detail, url) does not parse.
    """
    from poolsieve.pool.urlnorm import (
        normalize_urls,  # the SQL macro, so the truth follows its rules
    )

    urls = [u for _, v, o in variants for u in (v, o)] + [u for _, u in unparseable]
    norms = iter(normalize_urls(urls))
    for detail, variant, url in variants:
        norm_variant, norm_url = next(norms), next(norms)
        if norm_url is None or norm_variant != norm_url:
            raise RuntimeError(f"{detail} variant {variant!r} does not normalize like {url!r}")
    for detail, url in unparseable:
        if next(norms) is not None:
            raise RuntimeError(f"{detail} url {url!r} is parseable by normalize_url")


def bad_url(detail: str, url: str, unparseable: list | None) -> str | None:
    """A broken form of ``url``; an unparseable one (within the length limit) is queued in
    ``unparseable`` for verify_urls."""
    bad = _bad_url_text(detail, url)
    if unparseable is not None and len(bad) <= LIMITS.max_url_length:
        unparseable.append((detail, bad))
    return bad


def _bad_url_text(detail: str, url: str) -> str | None:
    parts = urlsplit(url)
    return {
        "null": None,
        "empty": "",
        "blank": "   ",
        "ftp": f"ftp://{parts.netloc}{parts.path}",
        "data": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQ==",
        "javascript": "javascript:void(0)",
        "protocol_relative": f"//{parts.netloc}{parts.path}",
        "relative_path": parts.path.lstrip("/"),
        "not_a_url": "not a url",
        "space_in_host": f"http://exa mple.com{parts.path}",
        "empty_host": f"http://{parts.path}",
        "line_break_in_path": "\n.".join(url.rsplit(".", 1)),  # before the extension
        "bad_host_char": f"http://bad_host!{parts.path}",
        "too_long": f"{url}?session={'a' * (LIMITS.max_url_length + 50)}",
    }[detail]


def bad_uid(detail: str, uid: str) -> str | None:
    return {
        "upper_case": "F" + uid[1:].upper(),
        "too_short": uid[:31],
        "too_long": uid + "0",
        "non_hex": uid[:31] + "g",
        "null": None,
        "uuid_dashes": f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:]}",
    }[detail]


def break_size_or_score(row: dict, detail: str) -> None:
    changes = {
        "zero_width": ("original_width", 0),
        "negative_height": ("original_height", -1),
        "huge_width": ("original_width", LIMITS.max_image_side + 1),
        "huge_height": ("original_height", LIMITS.max_image_side * 5 // 2),
        "nan_b32": ("clip_b32_similarity_score", float("nan")),
        "nan_l14": ("clip_l14_similarity_score", float("nan")),
        "above_one": ("clip_l14_similarity_score", 1.5),
        "below_minus_one": ("clip_b32_similarity_score", -1.25),
    }
    column, value = changes[detail]
    row[column] = value
