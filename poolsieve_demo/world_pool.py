"""The demo world's pool rows: v1's pool (with its planted metadata problems) over real images.

Grain: one row per pool row, one Asset per URL path the generator mints. The row machinery is
v1's (``pool._Builder``), so quarantine reasons, exact/normalization-only duplicate URLs and
cross-shard uid repeats are planted exactly as in v1, with the same exact expected counts; this
subclass only changes what a fresh row is: an image spec behind an opaque URL
(``{host}/img/0000042.png``) on the demo server, and a clean caption of its concept. A URL is
fixed when its row is made (duplicates copy it); what is *served* there is decided later, on the
Asset, so planting a problem never changes a URL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poolsieve_demo.captions import clean_caption
from poolsieve_demo.config import WorldConfig
from poolsieve_demo.evalsets import EvalImage
from poolsieve_demo.pool import _Builder
from poolsieve_demo.render import ImageSpec
from poolsieve_demo.specs import ordinary_size, sample_spec

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


def metadata_scores(rng: np.random.Generator, quality: str) -> tuple[float, float]:
    """(b32, l14) similarity scores as a pool's metadata would carry them for such a caption."""
    mean, sd = SCORE_MODEL[quality]
    b32 = float(np.clip(rng.normal(mean, sd), 0.02, 0.45))
    return b32, float(np.clip(b32 + rng.normal(-0.04, 0.02), 0.01, 0.45))


class WorldPoolBuilder(_Builder):
    """v1's builder whose fresh rows are images on the demo server (row ``_concept`` = spec)."""

    def __init__(self, rng, rows_per_shard: int, counts: dict, hosts: tuple, config: WorldConfig):
        super().__init__(rng, rows_per_shard, counts, hosts)
        self.config = config
        self.assets: dict[str, Asset] = {}
        self.format_names = list(config.formats)
        self.format_shares = np.array([config.formats[f] for f in self.format_names])

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
