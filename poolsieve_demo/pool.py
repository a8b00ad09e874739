"""Demo pool v1: a small, deterministic DataComp-style pool with planted problems and its truth.

``write_demo_pool(source_dir, truth_path)`` writes ``shard_00000.parquet`` ... (DataComp metadata
schema) into ``source_dir`` and a JSON truth file (kept outside ``source_dir`` so it is never
scanned as a shard). Same seed and parameters -> byte-identical files.

Most rows are clean: a coloured shape image (``{base_url}/img/{color}_{shape}/{id}.jpg``, a share
of them on ``alt_base_url``) with a caption from templates with synonyms. Planted rows (never at
row 0 of a shard) each trigger exactly one outcome:

* quarantine, one per staging reason (``QUARANTINE_REASONS``, in the staging SQL's order);
* ``exact_url_dup`` / ``normalized_url_dup``: an earlier clean row's url, byte-identical or
  differing only in what ``normalize_url`` removes, with a fresh uid -> ``duplicate_url``;
* ``cross_shard_uid_dup``: an earlier shard's clean row's uid -> ``duplicate_uid``.

Originals are always clean ("base") rows, and a uid is copied at most once, so the expected counts
are exact: every base row is kept, every planted row gets exactly its ``expect``.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.lake import commit, tmp_path_for, write_bytes_atomic
from poolsieve.pool.ingest import QUARANTINE_REASONS as INGEST_REASONS
from poolsieve.pool.ingest import IngestParams
from poolsieve_demo.concepts import COLORS

VERSION = 1
LIMITS = IngestParams()  # staging's default thresholds (url length, image side)

SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("url", pa.string()),
        ("text", pa.string()),
        ("original_width", pa.int64()),
        ("original_height", pa.int64()),
        ("clip_b32_similarity_score", pa.float32()),
        ("clip_l14_similarity_score", pa.float32()),
        ("face_bboxes", pa.list_(pa.list_(pa.float64()))),
        ("sha256", pa.string()),
    ]
)

SHAPES = {
    "circle": ("circle", "round shape", "disc", "dot"),
    "square": ("square", "box", "square tile"),
    "triangle": ("triangle", "three-sided shape", "triangular sign"),
    "star": ("star", "five-pointed star", "star shape"),
    "hexagon": ("hexagon", "six-sided shape"),
}
CONCEPTS = tuple(f"{c}_{s}" for s in SHAPES for c in COLORS)
TEMPLATES = (
    "a photo of a {color} {shape}",
    "{Color} {shape} on white background",
    "A {color} {shape}.",
    "close-up of a {color} {shape}",
    "{color} {shape} icon",
    "Simple {color} {shape} illustration, flat design",
    "clipart: {color} {shape}",
    "a small {color} {shape} on a plain background",
    "{Color} {shape} vector graphic",
    "the {shape} is {color}",
)
NOISE_CAPTIONS = ("IMG_{k}.jpg", "untitled", "click here to download", "Product photo", "image")

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


@dataclass(frozen=True)
class DemoPool:
    source_dir: Path
    truth_path: Path
    shard_paths: list[Path]
    truth: dict


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.parquet"


def default_counts(rows_per_shard: int) -> dict[str, int]:
    """Planted rows per shard for each kind (see DEFAULT_RATES)."""
    return {k: max(1, round(r * rows_per_shard)) for k, r in DEFAULT_RATES.items()}


def write_demo_pool(
    source_dir: str | Path,
    truth_path: str | Path,
    seed: int = 0,
    n_shards: int = 4,
    rows_per_shard: int = 500,
    base_url: str = "http://127.0.0.1:8808",
    alt_base_url: str = "http://cdn.poolsieve-demo.test",
    alt_host_fraction: float = 0.25,
    counts: Mapping[str, int] | None = None,
) -> DemoPool:
    """Write the demo pool's shards into ``source_dir`` and its truth JSON to ``truth_path``.

    ``counts`` overrides planted rows per shard by kind (PLANT_KINDS). Stale ``shard_*.parquet``
    files of an earlier, larger demo pool in ``source_dir`` are removed.
    """
    source_dir, truth_path = Path(source_dir), Path(truth_path)
    _check_paths(source_dir, truth_path)
    per_shard = _resolve_counts(counts, rows_per_shard)
    hosts = (base_url.rstrip("/"), alt_base_url.rstrip("/"), alt_host_fraction)
    builder = _Builder(np.random.default_rng(seed), rows_per_shard, per_shard, hosts)
    builder.build(n_shards)
    paths = _write_shards(source_dir, builder.shards)
    truth = builder.truth(seed, _params(n_shards, rows_per_shard, hosts, per_shard))
    write_bytes_atomic(truth_path, (json.dumps(truth, indent=2, sort_keys=True) + "\n").encode())
    return DemoPool(source_dir, truth_path, paths, truth)


def _check_paths(source_dir: Path, truth_path: Path) -> None:
    if truth_path.resolve().is_relative_to(source_dir.resolve()):
        raise ValueError(f"truth file {truth_path} must be outside the source folder {source_dir}")


def _resolve_counts(counts: Mapping[str, int] | None, rows_per_shard: int) -> dict[str, int]:
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


def _params(n_shards: int, rows_per_shard: int, hosts: tuple, per_shard: dict) -> dict:
    return {
        "version": VERSION,
        "n_shards": n_shards,
        "rows_per_shard": rows_per_shard,
        "base_url": hosts[0],
        "alt_base_url": hosts[1],
        "alt_host_fraction": hosts[2],
        "counts_per_shard": per_shard,
    }


def _write_shards(source_dir: Path, shards: list[list[dict]]) -> list[Path]:
    source_dir.mkdir(parents=True, exist_ok=True)
    paths = [source_dir / shard_name(s) for s in range(len(shards))]
    pattern = "shard_" + "[0-9]" * 5 + ".parquet"
    for stale in sorted(set(source_dir.glob(pattern)) - set(paths)):
        stale.unlink()
    for path, rows in zip(paths, shards, strict=True):
        tmp = tmp_path_for(path)
        pq.write_table(_table(rows), tmp, compression="zstd")
        commit(tmp, path)
    return paths


def _table(rows: list[dict]) -> pa.Table:
    arrays = [pa.array([r[f.name] for r in rows], type=f.type) for f in SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


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


def _bad_url(detail: str, url: str, unparseable: list | None) -> str | None:
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


def _bad_uid(detail: str, uid: str) -> str | None:
    return {
        "upper_case": "F" + uid[1:].upper(),
        "too_short": uid[:31],
        "too_long": uid + "0",
        "non_hex": uid[:31] + "g",
        "null": None,
        "uuid_dashes": f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:]}",
    }[detail]


def _break_size_or_score(row: dict, detail: str) -> None:
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


class _Builder:
    """Generates the rows shard by shard, recording every planted row."""

    def __init__(self, rng: np.random.Generator, rows_per_shard: int, counts: dict, hosts: tuple):
        self.rng, self.n, self.counts = rng, rows_per_shard, counts
        self.base_url, self.alt_url, self.alt_fraction = hosts
        self.shards: list[list[dict]] = []
        self.base: list[tuple[int, int]] = []  # clean rows in pool order
        self.planted: list[dict] = []
        self.uids: set[str] = set()
        self.copied_uids: set[str] = set()
        self.image = 0
        self.variants: list[tuple[str, str, str]] = []  # checked by verify_urls in build()
        self.unparseable: list[tuple[str, str]] = []

    # -- clean rows -------------------------------------------------------------------------
    def fresh_uid(self) -> str:
        while (uid := self.rng.bytes(16).hex()) in self.uids:
            pass
        self.uids.add(uid)
        return uid

    def image_url(self, concept: str) -> str:
        self.image += 1
        host = self.alt_url if self.rng.random() < self.alt_fraction else self.base_url
        return f"{host}/img/{concept}/{self.image:07d}.jpg"

    def caption(self, concept: str) -> tuple[str, float, float]:
        rng = self.rng
        if rng.random() < 0.05:
            text = NOISE_CAPTIONS[rng.integers(len(NOISE_CAPTIONS))].format(k=rng.integers(10_000))
            b32 = float(np.clip(rng.normal(0.15, 0.03), 0.02, 0.25))
        else:
            color, shape = concept.split("_")
            c = COLORS[color][rng.integers(len(COLORS[color]))]
            s = SHAPES[shape][rng.integers(len(SHAPES[shape]))]
            template = TEMPLATES[rng.integers(len(TEMPLATES))]
            text = template.format(color=c, Color=c.capitalize(), shape=s)
            b32 = float(np.clip(rng.normal(0.31, 0.035), 0.18, 0.45))
        return text, b32, float(np.clip(b32 + rng.normal(-0.04, 0.02), 0.05, 0.45))

    def new_row(self) -> dict:
        rng = self.rng
        concept = CONCEPTS[rng.integers(len(CONCEPTS))]
        text, b32, l14 = self.caption(concept)
        sizes = [None, None] if rng.random() < 0.01 else rng.integers(64, 1025, 2).tolist()
        return {
            "_concept": concept,
            "uid": self.fresh_uid(),
            "url": self.image_url(concept),
            "text": text,
            "original_width": sizes[0],
            "original_height": sizes[1],
            "clip_b32_similarity_score": b32,
            "clip_l14_similarity_score": l14,
            "face_bboxes": self.face_bboxes(),
            "sha256": rng.bytes(32).hex(),
        }

    def face_bboxes(self) -> list[list[float]]:
        if self.rng.random() >= 0.08:
            return []
        x0, y0 = (round(float(v), 4) for v in self.rng.uniform(0.0, 0.6, 2))
        w, h = (round(float(v), 4) for v in self.rng.uniform(0.1, 0.4, 2))
        return [[x0, y0, round(x0 + w, 4), round(y0 + h, 4)]]

    # -- shards -----------------------------------------------------------------------------
    def build(self, n_shards: int) -> None:
        """Build every shard, then confirm the planted URLs against the SQL macro."""
        for s in range(n_shards):
            self.build_shard(s)
        verify_urls(self.variants, self.unparseable)

    def build_shard(self, s: int) -> None:
        kinds = [k for k in PLANT_KINDS for _ in range(self._count(k, s))]
        positions = sorted(
            self.rng.choice(np.arange(1, self.n), len(kinds), replace=False).tolist()
        )
        planted_at = dict(zip(positions, self.rng.permutation(kinds).tolist(), strict=True))
        self.shards.append([None if i in planted_at else self.new_row() for i in range(self.n)])
        self.base.extend((s, i) for i in range(self.n) if i not in planted_at)
        seen: Counter = Counter()
        for i in positions:
            kind = planted_at[i]
            self.plant(s, i, kind, seen[kind])
            seen[kind] += 1

    def _count(self, kind: str, s: int) -> int:
        return 0 if kind == "cross_shard_uid_dup" and s == 0 else self.counts[kind]

    def plant(self, s: int, i: int, kind: str, j: int) -> None:
        details = DETAILS[kind]
        for d in range(len(details)):
            detail = details[(j + s + d) % len(details)]
            made = self.make(s, i, kind, detail)
            if made is not None:
                break
        else:
            raise ValueError(f"cannot plant {kind} at shard {s} row {i}: no suitable original")
        row, orig = made
        self.shards[s][i] = row
        self.planted.append(self.entry(s, i, kind, detail, orig))

    def make(self, s: int, i: int, kind: str, detail: str):
        """(row, original position or None) for one planted row; None if ``detail`` can't apply."""
        if kind == "uid_repeated" or kind in DUPLICATE_KINDS:
            return self.make_duplicate(s, i, kind, detail)
        row = self.new_row()
        if kind in ("url_missing", "url_scheme", "url_unparseable"):
            queue = self.unparseable if kind == "url_unparseable" else None
            row["url"] = _bad_url(detail, row["url"], queue)
        elif kind == "uid_malformed":
            row["uid"] = _bad_uid(detail, row["uid"])
        else:
            _break_size_or_score(row, detail)
        return row, None

    def make_duplicate(self, s: int, i: int, kind: str, detail: str):
        token = self.rng.bytes(4).hex()
        ok = self.original_filter(s, kind, detail, token)
        orig = self.pick(self.base[: bisect.bisect_left(self.base, (s, i))], ok)
        if orig is None:
            return None
        source = self.shards[orig[0]][orig[1]]
        if kind in ("uid_repeated", "cross_shard_uid_dup"):
            self.copied_uids.add(source["uid"])
            return self.copy_uid(source, kind, detail), orig
        row = {**source, "uid": self.fresh_uid()}
        row["text"], row["clip_b32_similarity_score"], row["clip_l14_similarity_score"] = (
            self.caption(source["_concept"])
        )
        if kind == "normalized_url_dup":
            row["url"] = url_variant(source["url"], detail, token)
            self.variants.append((detail, row["url"], source["url"]))
        return row, orig

    def copy_uid(self, source: dict, kind: str, detail: str) -> dict:
        if kind == "cross_shard_uid_dup" and detail == "same_row":
            return dict(source)
        return {**self.new_row(), "uid": source["uid"]}

    def original_filter(self, s: int, kind: str, detail: str, token: str) -> Callable:
        def url_of(pos):
            return self.shards[pos[0]][pos[1]]["url"]

        earlier = detail == "earlier_shard"

        def uid_free(pos):
            return self.shards[pos[0]][pos[1]]["uid"] not in self.copied_uids

        return {
            "uid_repeated": lambda p: p[0] == s and uid_free(p),
            "cross_shard_uid_dup": lambda p: p[0] < s and uid_free(p),
            "exact_url_dup": lambda p: p[0] < s if earlier else p[0] == s,
            "normalized_url_dup": lambda p: url_variant(url_of(p), detail, token) is not None,
        }[kind]

    def pick(self, candidates: list[tuple[int, int]], ok: Callable) -> tuple[int, int] | None:
        for k in self.rng.permutation(len(candidates)).tolist():
            if ok(candidates[k]):
                return candidates[k]
        return None

    # -- truth ------------------------------------------------------------------------------
    def entry(self, s: int, i: int, kind: str, detail: str, orig) -> dict:
        dup = DUPLICATE_KINDS.get(kind)
        return {
            "shard": shard_name(s),
            "row": i,
            "kind": kind,
            "detail": detail,
            "expect": dup or f"quarantine:{kind}",
            "duplicate_of": None if dup is None else self.shards[orig[0]][orig[1]]["uid"],
            "original": None if orig is None else {"shard": shard_name(orig[0]), "row": orig[1]},
        }

    def truth(self, seed: int, params: dict) -> dict:
        per_shard = {
            shard_name(s): self.shard_expect(shard_name(s)) for s in range(len(self.shards))
        }
        quarantine: Counter = Counter()
        dedup: Counter = Counter()
        for counts in per_shard.values():
            quarantine.update(counts["quarantine_reasons"])
            dedup.update({k: counts[k] for k in ("keep", "duplicate_url", "duplicate_uid")})
        return {
            "seed": seed,
            "params": params,
            "shards": list(per_shard),
            "rows_total": self.n * len(self.shards),
            "expected": {
                "quarantine": dict(quarantine),
                "dedup": dict(dedup),
                "per_shard": per_shard,
            },
            "planted": self.planted,
        }

    def shard_expect(self, name: str) -> dict:
        outcomes = Counter(p["expect"] for p in self.planted if p["shard"] == name)
        reasons = {r: n for r in QUARANTINE_REASONS if (n := outcomes[f"quarantine:{r}"])}
        quarantined = sum(reasons.values())
        dups = {k: outcomes[k] for k in ("duplicate_url", "duplicate_uid")}
        return {
            "read": self.n,
            "quarantined": quarantined,
            "quarantine_reasons": reasons,
            "normalized": self.n - quarantined,
            "keep": self.n - quarantined - sum(dups.values()),
            **dups,
        }
