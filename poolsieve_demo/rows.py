"""The pool's rows: the DataComp schema and the builder that makes every shard's rows.

Grain: one row per pool row, one Asset per URL path the builder mints. A fresh ("base") row is an
image spec behind an opaque URL (``{host}/img/0000042.png``) on the demo server, a clean caption
of its concept and clean-looking metadata scores. The builder then plants the metadata problems
(metadata_problems.py) on some rows and records each one for the truth; ``plant.py`` plants the
content problems on base rows afterwards. A URL is fixed when its row is made (duplicates copy
it); what is *served* there is decided later, on the Asset, so planting a problem never changes
a URL. Same seed and parameters -> byte-identical shards.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.lake import commit, tmp_path_for
from poolsieve_demo.captions import clean_caption
from poolsieve_demo.config import WorldConfig
from poolsieve_demo.evalsets import EvalImage
from poolsieve_demo.metadata_problems import (
    DETAILS,
    DUPLICATE_KINDS,
    PLANT_KINDS,
    QUARANTINE_REASONS,
    bad_uid,
    bad_url,
    break_size_or_score,
    url_variant,
    verify_urls,
)
from poolsieve_demo.render import ImageSpec
from poolsieve_demo.specs import ordinary_size, sample_spec

#: the format number of the truth's ``params`` (world_truth.json records it)
PARAMS_FORMAT = 1

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

#: caption quality -> (mean, sd) of the pool metadata's B/32 score (L/14 sits ~0.04 below)
SCORE_MODEL = {"clean": (0.31, 0.035), "foreign": (0.22, 0.04), "bad": (0.15, 0.03)}


@dataclass
class Asset:
    """What the demo server holds at one URL path, and how it answers (``route``)."""

    path: str
    ext: str
    spec: ImageSpec
    route: str = "ok"
    detail: str | None = None
    eval_image: EvalImage | None = None
    pool_source: str | None = None  # the URL path of the pool image this one copies
    optout: str | None = None  # the opt-out kind planted here (optout.py; ``detail`` says which)

    @property
    def is_copy(self) -> bool:
        """Whether this serves a perturbed copy of another image (an eval image, or a pool
        row's at ``pool_source``): ``spec`` is that image's, ``detail`` the perturbation."""
        return self.eval_image is not None or self.pool_source is not None


def metadata_scores(rng: np.random.Generator, quality: str) -> tuple[float, float]:
    """(b32, l14) similarity scores as a pool's metadata would carry them for such a caption."""
    mean, sd = SCORE_MODEL[quality]
    b32 = float(np.clip(rng.normal(mean, sd), 0.02, 0.45))
    return b32, float(np.clip(b32 + rng.normal(-0.04, 0.02), 0.01, 0.45))


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.parquet"


def truth_params(n_shards: int, rows_per_shard: int, hosts: tuple, per_shard: dict) -> dict:
    """The pool's shape as the truth records it (``params``)."""
    return {
        "version": PARAMS_FORMAT,
        "n_shards": n_shards,
        "rows_per_shard": rows_per_shard,
        "base_url": hosts[0],
        "alt_base_url": hosts[1],
        "alt_host_fraction": hosts[2],
        "counts_per_shard": per_shard,
    }


def write_shards(source_dir: Path, shards: list[list[dict]]) -> list[Path]:
    """One parquet file per shard (atomically), removing files of an earlier, larger pool."""
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


class PoolBuilder:
    """Generates the rows shard by shard (a row's ``_concept`` is its image spec), recording
    every planted row."""

    def __init__(self, rng, rows_per_shard: int, counts: dict, hosts: tuple, config: WorldConfig):
        self.rng, self.n, self.counts, self.config = rng, rows_per_shard, counts, config
        self.base_url, self.alt_url, self.alt_fraction = hosts
        self.shards: list[list[dict]] = []
        self.base: list[tuple[int, int]] = []  # clean rows in pool order
        self.planted: list[dict] = []
        self.uids: set[str] = set()
        self.copied_uids: set[str] = set()
        self.image = 0
        self.variants: list[tuple[str, str, str]] = []  # checked by verify_urls in build()
        self.unparseable: list[tuple[str, str]] = []
        self.assets: dict[str, Asset] = {}
        self.format_names = list(config.formats)
        self.format_shares = np.array([config.formats[f] for f in self.format_names])

    # -- clean rows -------------------------------------------------------------------------
    def fresh_uid(self) -> str:
        while (uid := self.rng.bytes(16).hex()) in self.uids:
            pass
        self.uids.add(uid)
        return uid

    def mint(self, spec: ImageSpec) -> Asset:
        """A fresh URL path (and its Asset) for an image of ``spec``."""
        self.image += 1
        ext = self.format_names[self.rng.choice(len(self.format_names), p=self.format_shares)]
        asset = Asset(f"/img/{self.image:07d}.{ext}", ext, spec)
        self.assets[asset.path] = asset
        return asset

    def host(self) -> str:
        return self.alt_url if self.rng.random() < self.alt_fraction else self.base_url

    def caption(self, spec: ImageSpec) -> tuple[str, float, float]:
        """A clean caption of ``spec``'s concept and clean-looking metadata scores."""
        return clean_caption(self.rng, spec), *metadata_scores(self.rng, "clean")

    def new_row(self) -> dict:
        spec = sample_spec(self.rng, ordinary_size(self.rng, *self.config.pool_sizes))
        asset = self.mint(spec)
        text, b32, l14 = self.caption(spec)
        return {
            "_concept": spec,
            "_path": asset.path,
            "uid": self.fresh_uid(),
            "url": self.host() + asset.path,
            "text": text,
            "original_width": spec.width,
            "original_height": spec.height,
            "clip_b32_similarity_score": b32,
            "clip_l14_similarity_score": l14,
            "face_bboxes": self.face_bboxes(),
            "sha256": self.rng.bytes(32).hex(),
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
            row["url"] = bad_url(detail, row["url"], queue)
        elif kind == "uid_malformed":
            row["uid"] = bad_uid(detail, row["uid"])
        else:
            break_size_or_score(row, detail)
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
