"""WorldConfig: every knob of the demo world apart from seed, server address and pool shape.

Grain: one config per world; it is written into ``world_truth.json`` whole, so a world on disk
says exactly how it was made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from poolsieve_demo.problems import DEFAULT_RATES, resolve_rates


@dataclass(frozen=True)
class WorldConfig:
    """Planted-problem rates and the sizes of the pool's images, the trusted set and eval sets.

    ``rates``: share of each shard's rows per problem kind (problems.DEFAULT_RATES, merged).
    ``metadata_counts``: planted metadata rows per shard (metadata_problems.PLANT_KINDS; None =
    defaults).
    ``slow_seconds``: how long a ``slow`` route waits; a downloader timeout below it -> timeout.
    ``pool_sizes`` / ``clean_sizes``: (min side, max side, max aspect) of ordinary pool images and
    of trusted/eval images. ``formats``: share of pool images per file format.
    ``takedown_per_kind``: takedown list entries per shard of each kind (uid, url, sha256,
    phash; takedown.py), each naming its own clean row; 0 = a list with no entries.
    """

    rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))
    metadata_counts: dict[str, int] | None = None
    slow_seconds: float = (
        6.0  # the demo downloader times out at half of it (3 s): margin on a loaded machine
    )
    alt_host: str = "localhost"
    alt_host_fraction: float = 0.25
    formats: dict[str, float] = field(
        default_factory=lambda: {"jpg": 0.6, "png": 0.25, "webp": 0.15}
    )
    pool_sizes: tuple[int, int, float] = (48, 640, 3.0)
    clean_sizes: tuple[int, int, float] = (64, 224, 2.0)
    trusted_samples: int = 1500
    trusted_shard_size: int = 500
    eval_per_class: int = 10
    retrieval_images: int = 200
    retrieval_captions: int = 2
    takedown_per_kind: int = 2

    def __post_init__(self):
        object.__setattr__(self, "rates", resolve_rates(self.rates))
        if abs(sum(self.formats.values()) - 1) > 1e-9 or set(self.formats) - {"jpg", "png", "webp"}:
            raise ValueError(f"formats must be shares of jpg/png/webp summing to 1: {self.formats}")
        if self.slow_seconds <= 0 or min(self.trusted_shard_size, self.trusted_samples) <= 0:
            raise ValueError("slow_seconds, trusted_samples and trusted_shard_size must be > 0")
        if self.takedown_per_kind < 0:
            raise ValueError(f"takedown_per_kind must be >= 0: {self.takedown_per_kind}")

    def to_json(self) -> dict:
        return asdict(self)
