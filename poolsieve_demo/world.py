"""The demo world: a pool over real images on a local server, a trusted set, held-out eval sets.

``write_demo_world(root)`` writes, all deterministic from ``seed``::

    root/source/shard_00000.parquet ...   the pool (DataComp schema), URLs on the demo server
    root/images/img/0000001.jpg ...       the server's docroot
    root/images/hosts/<host>/robots.txt, ai.txt, .well-known/tdmrep.json   each origin's own
                                          opt-out files, one set per host name (optout.py)
    root/routes.json                      how the server answers each URL path (docroot.py)
    root/trusted/trusted-00000.tar ...    clean pairs for the scorer (+ sizes.json)
    root/eval/classification/, retrieval/ held-out eval sets (evalsets.py)
    root/takedown/requests.csv            a takedown list naming clean rows (takedown.py)
    root/world_truth.json                 everything planted and what to expect (truth.py)
    root/epoch.json                       only once aged: the epoch the server serves (aging.py)

Why a world and not just a pool: the downloader, the filters, the scorer and the evaluation all
need real bytes with known problems in them. The folders are built in a staging folder beside
them and moved into place; ``world_truth.json`` is written last, so its presence means a
complete world.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from poolsieve.lake import write_bytes_atomic
from poolsieve_demo.config import WorldConfig
from poolsieve_demo.docroot import write_docroot
from poolsieve_demo.evalsets import draw_eval_images, write_eval_sets
from poolsieve_demo.metadata_problems import QUARANTINE_REASONS, resolve_counts
from poolsieve_demo.optout import listed_by_host
from poolsieve_demo.plant import plant_problems
from poolsieve_demo.rows import PoolBuilder, shard_name, truth_params, write_shards
from poolsieve_demo.server import DEFAULT_PORT, EPOCH_FILE, DemoImageServer
from poolsieve_demo.takedown import FOLDER as TAKEDOWN_FOLDER
from poolsieve_demo.takedown import plant_takedown
from poolsieve_demo.trusted import write_trusted
from poolsieve_demo.truth import world_truth

DEFAULT_BASE_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
TRUTH_FILE = "world_truth.json"
PARTS = ("source", "images", "routes.json", "trusted", "eval", TAKEDOWN_FOLDER)


@dataclass(frozen=True)
class DemoWorld:
    """A written world: its root folder and its truth (paths derive from the root)."""

    root: Path
    truth: dict

    @property
    def source_dir(self) -> Path:
        return self.root / "source"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def routes_path(self) -> Path:
        return self.root / "routes.json"

    @property
    def trusted_dir(self) -> Path:
        return self.root / "trusted"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def takedown_dir(self) -> Path:
        """The folder of takedown lists (curation.takedown_lists points at it)."""
        return self.root / TAKEDOWN_FOLDER

    @property
    def truth_path(self) -> Path:
        return self.root / TRUTH_FILE

    @property
    def shard_paths(self) -> list[Path]:
        return [self.source_dir / name for name in self.truth["shards"]]

    @property
    def base_url(self) -> str:
        return self.truth["base_url"]

    @property
    def port(self) -> int:
        return urlsplit(self.base_url).port

    def server(self, **options) -> DemoImageServer:
        """A (not yet started) server for this world on its base URL's port."""
        return DemoImageServer(self.root, self.port, **options)


def load_demo_world(root: str | Path) -> DemoWorld:
    """The world written at ``root`` (FileNotFoundError when it is missing or incomplete)."""
    root = Path(root)
    return DemoWorld(root, json.loads((root / TRUTH_FILE).read_text()))


def write_demo_world(
    root: str | Path,
    seed: int = 0,
    base_url: str = DEFAULT_BASE_URL,
    n_shards: int = 4,
    rows_per_shard: int = 500,
    config: WorldConfig | None = None,
) -> DemoWorld:
    """Write the whole demo world under ``root`` (replacing an earlier one); see the module doc."""
    root, config = Path(root), config or WorldConfig()
    # a 4th child leaves the first three (and what they draw) as they were
    eval_rng, pool_rng, trusted_rng, takedown_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    evals = draw_eval_images(eval_rng, config)
    builder, hosts = _build_pool(pool_rng, base_url, n_shards, rows_per_shard, config)
    problems = plant_problems(builder, config.rates, evals)
    sizes, takedown = _stage_and_publish(
        root, builder, problems, evals, (trusted_rng, takedown_rng), config
    )
    pool_truth = builder.truth(seed, truth_params(n_shards, rows_per_shard, hosts, builder.counts))
    extras = {"config": config.to_json(), "base_url": hosts[0], "alt_base_url": hosts[1]}
    truth = world_truth(pool_truth, problems, {**sizes, **extras}, takedown)
    text = json.dumps(truth, indent=1, sort_keys=True) + "\n"
    write_bytes_atomic(root / TRUTH_FILE, text.encode())
    return DemoWorld(root, json.loads(text))  # the truth exactly as a reader will see it


def _stage_and_publish(
    root: Path, builder, problems: list[dict], evals, rngs: tuple, config: WorldConfig
) -> tuple[dict, dict]:
    """Write every part into a staging folder, then move them into ``root``; returns the
    trusted and eval set sizes, and the takedown list's truth. ``rngs``: (trusted, takedown)."""
    trusted_rng, takedown_rng = rngs
    staging = root / f".world-staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        listed = listed_by_host(problems, [builder.base_url, builder.alt_url])
        served = write_docroot(staging, builder.assets, config.slow_seconds, listed)
        _sync_metadata(builder, served)
        write_shards(staging / "source", builder.shards)
        sizes = {
            "trusted": write_trusted(staging / "trusted", trusted_rng, config),
            "eval": write_eval_sets(staging / "eval", evals),
        }
        takedown = plant_takedown(
            takedown_rng,
            builder,
            problems,
            staging / "images",
            staging / TAKEDOWN_FOLDER,
            config.takedown_per_kind,
        )
        _publish(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sizes, takedown


def _build_pool(rng, base_url: str, n_shards: int, rows_per_shard: int, config: WorldConfig):
    """Every shard's rows built, with the metadata problems planted; the builder and hosts."""
    base = base_url.rstrip("/")
    parts = urlsplit(base)
    alt = f"{parts.scheme}://{config.alt_host}" + (f":{parts.port}" if parts.port else "")
    hosts = (base, alt, config.alt_host_fraction)
    counts = resolve_counts(config.metadata_counts, rows_per_shard)
    builder = PoolBuilder(rng, rows_per_shard, counts, hosts, config)
    builder.build(n_shards)
    return builder, hosts


def _sync_metadata(builder: PoolBuilder, served: dict[str, str]) -> None:
    """Sizes (and sha256 where an image is served) of every non-quarantined row match its URL's
    final image; quarantined rows keep the bad values they were planted with."""
    quarantined = {
        (p["shard"], p["row"]) for p in builder.planted if p["kind"] in QUARANTINE_REASONS
    }
    for s, rows in enumerate(builder.shards):
        for i, row in enumerate(rows):
            if (shard_name(s), i) in quarantined:
                continue
            spec = builder.assets[row["_path"]].spec
            row["original_width"], row["original_height"] = spec.width, spec.height
            row["sha256"] = served.get(row["_path"], row["sha256"])


def _publish(staging: Path, root: Path) -> None:
    """Move the staged parts into ``root``, replacing older ones; drop a stale truth and an
    aged world's epoch file first (a new world starts at epoch 1)."""
    (root / TRUTH_FILE).unlink(missing_ok=True)
    (root / EPOCH_FILE).unlink(missing_ok=True)
    trash = staging / ".old"
    trash.mkdir()
    for name in PARTS:
        if (root / name).exists():
            (root / name).rename(trash / name)
        (staging / name).rename(root / name)
