"""Plant the content problems on the pool's surviving rows and record each one for the truth.

Grain: one truth entry per planted row (shard, row, uid, url, kind, detail, expected download
outcome, the row's true concept and image size, plus kind-specific facts: an opt-out row's
signal and its headers or host file + the origin whose file names it, optout.truth_facts;
the ``robots_other_origin`` control only where the world has a second host name). Only "base"
rows (every one of them is kept by ingest and URL dedup) are planted, each at most once, and each
shard gets exactly ``problem_count(rate, rows_per_shard)`` rows of each kind.

A ``near_duplicate_image`` row copies the image of a *clean* row (a base row with no content
problem that no metadata duplicate copies either) EARLIER in pool order ((shard, row) order),
perturbed; each clean row is copied at most once, and a copy, being planted, is never copied.
Shards are planted in order, so every row before a copy is decided when it is planted. A copy
drawn onto a row with no uncopied clean row before it (the first rows of the first shard) trades
kinds with the next problem row of its shard that is not a copy: the counts per shard stay exact.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from poolsieve_demo.captions import (
    clean_caption,
    foreign_caption,
    junk_caption,
    mismatched_caption,
)
from poolsieve_demo.evalsets import EvalImage
from poolsieve_demo.optout import OPTOUT_KINDS, detail_for, host_name, truth_facts
from poolsieve_demo.perturb import PERTURBATIONS
from poolsieve_demo.problems import (
    OUTCOMES,
    PRIVATE_TARGETS,
    PROBLEM_KINDS,
    ROUTE_OF,
    problem_count,
)
from poolsieve_demo.rows import Asset, PoolBuilder, metadata_scores, shard_name
from poolsieve_demo.specs import extreme_size, sample_spec, tiny_size

#: detail choices of the kinds planted only through the server's route
ROUTE_DETAILS = {
    "http_404": ("gone",),
    "http_500": ("server_error",),
    "corrupt_bytes": ("random_bytes", "truncated_header"),
    "slow_response": ("sleeps",),
    "not_image": ("html_page", "soft_404"),
    "redirect_private": tuple(PRIVATE_TARGETS),
}


COPY = "near_duplicate_image"


@dataclass
class Copyable:
    """What the copying kinds may still copy: the unused eval images (taken from the end), and
    the clean pool rows (shard index, row) no copy has taken yet, in pool order. Also how many
    rows of each opt-out kind are planted so far (their details are planted in turn)."""

    evals: list[EvalImage]
    rows: list[tuple[int, int]] = field(default_factory=list)
    optouts: Counter = field(default_factory=Counter)

    def before(self, at: tuple[int, int]) -> int:
        """How many of ``rows`` precede ``at`` in pool order."""
        return bisect.bisect_left(self.rows, at)

    def take_before(self, rng: np.random.Generator, at: tuple[int, int]) -> tuple[int, int]:
        """One of ``rows`` before ``at``, drawn uniformly and removed (no row is copied twice)."""
        return self.rows.pop(int(rng.integers(self.before(at))))


def plant_problems(b: PoolBuilder, rates: dict[str, float], evals: list[EvalImage]) -> list[dict]:
    """Plant every kind in every shard; returns the truth entries in (shard, row) order."""
    counts = {k: problem_count(rates[k], b.n) for k in PROBLEM_KINDS}
    kinds = [k for k in PROBLEM_KINDS for _ in range(counts[k])]
    needed = counts["eval_near_duplicate"] * len(b.shards)
    if needed > len(evals):
        raise ValueError(f"{needed} eval near-duplicates asked, only {len(evals)} eval images")
    sources = Copyable([evals[k] for k in b.rng.permutation(len(evals)).tolist()])
    # rows a metadata duplicate copies are no copy source: "clean" means nothing planted on them
    originals = {(o["shard"], o["row"]) for p in b.planted if (o := p["original"]) is not None}
    entries = []
    for s in range(len(b.shards)):
        rows = [i for t, i in b.base if t == s]
        if len(kinds) > len(rows):
            raise ValueError(f"{len(kinds)} problem rows per shard, only {len(rows)} clean rows")
        picked = sorted(b.rng.choice(rows, len(kinds), replace=False).tolist())
        kind_at = dict(zip(picked, b.rng.permutation(kinds).tolist(), strict=True))
        sources.rows += [
            (s, i) for i in rows if i not in kind_at and (shard_name(s), i) not in originals
        ]
        for i in picked:
            if kind_at[i] == COPY and not sources.before((s, i)):
                _defer_copy(kind_at, picked, s, i)
            entries.append(_plant(b, s, i, kind_at[i], sources))
    return entries


def _defer_copy(kind_at: dict[int, str], picked: list[int], s: int, i: int) -> None:
    """Trade row ``i``'s copy kind with the next problem row of the shard that is no copy."""
    later = next((j for j in picked if j > i and kind_at[j] != COPY), None)
    if later is None:
        raise ValueError(
            f"shard {s}: too few clean rows before its {COPY} rows for each to copy its own"
        )
    kind_at[i], kind_at[later] = kind_at[later], COPY


def _plant(b: PoolBuilder, s: int, i: int, kind: str, sources: Copyable) -> dict:
    row = b.shards[s][i]
    asset = b.assets[row["_path"]]
    extra = PLANTERS[kind](b, (s, i), row, asset, sources)
    return {
        "shard": shard_name(s),
        "row": i,
        "uid": row["uid"],
        "url": row["url"],
        "kind": kind,
        "expect_download": OUTCOMES[kind],
        "concept": asset.spec.concept,
        "size": [asset.spec.width, asset.spec.height],
        **extra,
    }


def _recaption(b: PoolBuilder, row: dict, text: str, quality: str) -> None:
    row["text"] = text
    row["clip_b32_similarity_score"], row["clip_l14_similarity_score"] = metadata_scores(
        b.rng, quality
    )


def _mismatched(b: PoolBuilder, at, row: dict, asset: Asset, sources) -> dict:
    text, detail, named = mismatched_caption(b.rng, asset.spec)
    _recaption(b, row, text, "bad")
    return {"detail": detail, "caption_concept": named}


def _foreign(b: PoolBuilder, at, row: dict, asset: Asset, sources) -> dict:
    text, language = foreign_caption(b.rng, asset.spec)
    _recaption(b, row, text, "foreign")
    return {"detail": language}


def _junk(b: PoolBuilder, at, row: dict, asset: Asset, sources) -> dict:
    text, detail = junk_caption(b.rng)
    _recaption(b, row, text, "bad")
    return {"detail": detail}


def _resize(b: PoolBuilder, asset: Asset, size: tuple[int, int]) -> None:
    spec = asset.spec
    asset.spec = sample_spec(b.rng, size, spec.shape, spec.color, spec.texture)


def _tiny(b: PoolBuilder, at, row: dict, asset: Asset, sources) -> dict:
    _resize(b, asset, tiny_size(b.rng))
    return {"detail": "under_32px"}


def _extreme(b: PoolBuilder, at, row: dict, asset: Asset, sources) -> dict:
    _resize(b, asset, extreme_size(b.rng, b.config.pool_sizes[1]))
    return {"detail": "wide" if asset.spec.width > asset.spec.height else "tall"}


def _near_duplicate(b: PoolBuilder, at, row: dict, asset: Asset, sources: Copyable) -> dict:
    """The row now shows a perturbed eval image, with a clean caption of its concept."""
    source: EvalImage = sources.evals.pop()
    asset.spec, asset.eval_image = source.spec, source
    asset.detail = PERTURBATIONS[b.rng.integers(len(PERTURBATIONS))]
    row["_concept"] = source.spec
    _recaption(b, row, clean_caption(b.rng, source.spec), "clean")
    return {"detail": asset.detail, "eval_split": source.split, "eval_key": source.key}


def _pool_near_duplicate(
    b: PoolBuilder, at: tuple[int, int], row: dict, asset: Asset, sources: Copyable
) -> dict:
    """The row now shows a perturbed copy of an earlier clean row's image, with a clean caption
    of its concept; it keeps its own URL and uid, so URL and uid dedup keep both."""
    s, i = sources.take_before(b.rng, at)
    source = b.shards[s][i]
    original = b.assets[source["_path"]]
    asset.spec, asset.pool_source = original.spec, original.path
    asset.detail = PERTURBATIONS[b.rng.integers(len(PERTURBATIONS))]
    row["_concept"] = original.spec
    _recaption(b, row, clean_caption(b.rng, original.spec), "clean")
    return {
        "detail": asset.detail,
        "duplicate_of": source["uid"],
        "source_shard": shard_name(s),
        "source_row": i,
    }


def _route_planter(kind: str) -> Callable:
    def plant(b: PoolBuilder, at, row: dict, asset: Asset, sources) -> dict:
        details = ROUTE_DETAILS[kind]
        asset.route, asset.detail = ROUTE_OF[kind], details[b.rng.integers(len(details))]
        location = PRIVATE_TARGETS.get(asset.detail) if kind == "redirect_private" else None
        return {"detail": asset.detail, **({"location": location} if location else {})}

    return plant


def _optout_planter(kind: str) -> Callable:
    def plant(b: PoolBuilder, at, row: dict, asset: Asset, sources: Copyable) -> dict:
        """The row's image is served as before, with an opt-out signal (optout.py) on it."""
        own, other = _origins(b, row["url"])
        detail = detail_for(kind, sources.optouts[kind], other_origin=other is not None)
        asset.optout, asset.detail = kind, detail
        sources.optouts[kind] += 1
        return {"detail": detail, **truth_facts(kind, detail, own, other)}

    return plant


def _origins(b: PoolBuilder, url: str) -> tuple[str, str | None]:
    """The row's origin (the base or the alt URL it starts with) and the world's other one
    (None when both share one host name: then there is no other origin's host files)."""
    on_alt = url.startswith(b.alt_url + "/")
    own, other = (b.alt_url, b.base_url) if on_alt else (b.base_url, b.alt_url)
    return own, (other if host_name(other) != host_name(own) else None)


PLANTERS: dict[str, Callable] = {
    "mismatched_caption": _mismatched,
    "non_english_caption": _foreign,
    "junk_caption": _junk,
    "tiny_image": _tiny,
    "extreme_aspect": _extreme,
    "eval_near_duplicate": _near_duplicate,
    COPY: _pool_near_duplicate,
    **{kind: _route_planter(kind) for kind in ROUTE_OF},
    **{kind: _optout_planter(kind) for kind in OPTOUT_KINDS},
}
