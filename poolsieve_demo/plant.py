"""Plant the content problems on the pool's surviving rows and record each one for the truth.

Grain: one truth entry per planted row (shard, row, uid, url, kind, detail, expected download
outcome, the row's true concept and image size, plus kind-specific facts). Only "base" rows
(every one of them is kept by ingest and URL dedup) are planted, each at most once, and each shard
gets exactly ``problem_count(rate, rows_per_shard)`` rows of each kind.
"""

from __future__ import annotations

from collections.abc import Callable

from poolsieve_demo.captions import (
    clean_caption,
    foreign_caption,
    junk_caption,
    mismatched_caption,
)
from poolsieve_demo.evalsets import EvalImage
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


def plant_problems(b: PoolBuilder, rates: dict[str, float], evals: list[EvalImage]) -> list[dict]:
    """Plant every kind in every shard; returns the truth entries in (shard, row) order."""
    counts = {k: problem_count(rates[k], b.n) for k in PROBLEM_KINDS}
    kinds = [k for k in PROBLEM_KINDS for _ in range(counts[k])]
    needed = counts["eval_near_duplicate"] * len(b.shards)
    if needed > len(evals):
        raise ValueError(f"{needed} eval near-duplicates asked, only {len(evals)} eval images")
    free = [evals[k] for k in b.rng.permutation(len(evals)).tolist()]
    entries = []
    for s in range(len(b.shards)):
        rows = [i for t, i in b.base if t == s]
        if len(kinds) > len(rows):
            raise ValueError(f"{len(kinds)} problem rows per shard, only {len(rows)} clean rows")
        picked = sorted(b.rng.choice(rows, len(kinds), replace=False).tolist())
        for i, kind in zip(picked, b.rng.permutation(kinds).tolist(), strict=True):
            entries.append(_plant(b, s, i, kind, free))
    return entries


def _plant(b: PoolBuilder, s: int, i: int, kind: str, free: list[EvalImage]) -> dict:
    row = b.shards[s][i]
    asset = b.assets[row["_path"]]
    extra = PLANTERS[kind](b, row, asset, free)
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


def _mismatched(b: PoolBuilder, row: dict, asset: Asset, free) -> dict:
    text, detail, named = mismatched_caption(b.rng, asset.spec)
    _recaption(b, row, text, "bad")
    return {"detail": detail, "caption_concept": named}


def _foreign(b: PoolBuilder, row: dict, asset: Asset, free) -> dict:
    text, language = foreign_caption(b.rng, asset.spec)
    _recaption(b, row, text, "foreign")
    return {"detail": language}


def _junk(b: PoolBuilder, row: dict, asset: Asset, free) -> dict:
    text, detail = junk_caption(b.rng)
    _recaption(b, row, text, "bad")
    return {"detail": detail}


def _resize(b: PoolBuilder, asset: Asset, size: tuple[int, int]) -> None:
    spec = asset.spec
    asset.spec = sample_spec(b.rng, size, spec.shape, spec.color, spec.texture)


def _tiny(b: PoolBuilder, row: dict, asset: Asset, free) -> dict:
    _resize(b, asset, tiny_size(b.rng))
    return {"detail": "under_32px"}


def _extreme(b: PoolBuilder, row: dict, asset: Asset, free) -> dict:
    _resize(b, asset, extreme_size(b.rng, b.config.pool_sizes[1]))
    return {"detail": "wide" if asset.spec.width > asset.spec.height else "tall"}


def _near_duplicate(b: PoolBuilder, row: dict, asset: Asset, free: list) -> dict:
    """The row now shows a perturbed eval image, with a clean caption of its concept."""
    source: EvalImage = free.pop()
    asset.spec, asset.eval_image = source.spec, source
    asset.detail = PERTURBATIONS[b.rng.integers(len(PERTURBATIONS))]
    row["_concept"] = source.spec
    _recaption(b, row, clean_caption(b.rng, source.spec), "clean")
    return {"detail": asset.detail, "eval_split": source.split, "eval_key": source.key}


def _route_planter(kind: str) -> Callable:
    def plant(b: PoolBuilder, row: dict, asset: Asset, free) -> dict:
        details = ROUTE_DETAILS[kind]
        asset.route, asset.detail = ROUTE_OF[kind], details[b.rng.integers(len(details))]
        location = PRIVATE_TARGETS.get(asset.detail) if kind == "redirect_private" else None
        return {"detail": asset.detail, **({"location": location} if location else {})}

    return plant


PLANTERS: dict[str, Callable] = {
    "mismatched_caption": _mismatched,
    "non_english_caption": _foreign,
    "junk_caption": _junk,
    "tiny_image": _tiny,
    "extreme_aspect": _extreme,
    "eval_near_duplicate": _near_duplicate,
    **{kind: _route_planter(kind) for kind in ROUTE_OF},
}
