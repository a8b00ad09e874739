"""Resources: where the pool comes from, where the lake is, DuckDB's limits, the downloader's,
scorer's, embedder's and decontamination's settings, and the demo image server's lifecycle.

Local and production differ only in these values (environment variables or run config):
``POOLSIEVE_SOURCE`` (folder or fsspec URL of pool parquet), ``POOLSIEVE_LAKE`` (lake folder),
``POOLSIEVE_DUCKDB_MEMORY`` (DuckDB memory_limit), ``POOLSIEVE_DUCKDB_THREADS``,
``POOLSIEVE_SCORER`` (checkpoint path or pretrained tag; empty: train on the trusted set),
``POOLSIEVE_SCORER_ARCH``, ``POOLSIEVE_TRUSTED`` and ``POOLSIEVE_EVAL`` (folders),
``POOLSIEVE_DEVICE`` ("auto": CUDA when present), ``POOLSIEVE_EVAL_SUITE`` (DataComp's eval
suite, see poolsieve.curate.suite). With no source configured the lake's demo
world is the pool, its trusted set trains the scorer, its eval sets are the eval sets, and the
downloader allowlists exactly the demo server's host:port pairs.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import dagster as dg
import duckdb

from poolsieve.clip.scorer import ScorerSettings
from poolsieve.curate.features import FeatureSettings
from poolsieve.duck import DuckSettings, connect
from poolsieve.images.address import endpoints_for_hosts
from poolsieve.images.pixel_features import PIXEL_THRESHOLD
from poolsieve.images.settings import DownloadSettings
from poolsieve.lake import Lake
from poolsieve.pool.ingest import IngestParams
from poolsieve_demo.shared import shared_demo_server
from poolsieve_demo.world import TRUTH_FILE, load_demo_world

DEFAULT_LAKE = str(Path.cwd() / "lake")  # ./lake where the code location starts


def demo_world_dir(lake_dir: str) -> Path:
    return Path(lake_dir) / "demo" / "world"


def default_source(lake_dir: str) -> str:
    return str(demo_world_dir(lake_dir) / "source")


class PoolsieveResource(dg.ConfigurableResource):
    """The lake, the pool source and DuckDB's limits for every poolsieve asset."""

    lake_dir: str = DEFAULT_LAKE
    source: str = ""  # empty: the demo source inside the lake
    duckdb_memory_limit: str = "2GB"
    duckdb_threads: int = 2
    max_url_length: int = 2048
    max_image_side: int = 100_000
    # downloader (DataComp's settings otherwise; see DownloadSettings)
    download_timeout: float = 10.0
    download_threads: int = 32
    download_allowlist: list[str] = []  # "ip:port" or CIDR; the demo world's hosts are added
    verify_sha256: bool = False
    min_download_success_rate: float = 0.5  # shard_images warns below it
    # scorer: a checkpoint path / pretrained tag, or trained on trusted_dir at scorer_scale
    scorer_arch: str = "poolsieve-tiny"
    scorer_source: str = ""
    trusted_dir: str = ""  # empty: the demo world's trusted set
    scorer_scale: str = "tiny-cpu"
    scorer_samples: int = 0  # 0: the scale's samples-seen budget
    # embedding
    device: str = "auto"
    embed_batch_size: int = 256
    embed_workers: int = 2
    # decontamination
    eval_dir: str = ""  # empty: the demo world's eval sets
    decontam_threshold: float = PIXEL_THRESHOLD
    # pool features and the DataComp loop
    language_detector: str = "lingua"
    image_clusters: int = 36  # k-means k for the image-based filter
    exemplar_dir: str = ""  # exemplar images (webdataset tars); empty: the trusted set
    train_scale: str = "tiny-cpu"
    train_seed: int = 0
    train_samples: int = 0  # 0: the scale's samples-seen budget (equal for every strategy)
    train_shard_size: int = 1000
    eval_suite_dir: str = ""  # DataComp's eval suite in clip_benchmark's wds layout (optional)

    @property
    def lake(self) -> Lake:
        return Lake(Path(self.lake_dir))

    @property
    def source_url(self) -> str:
        return self.source or default_source(self.lake_dir)

    @property
    def ingest_params(self) -> IngestParams:
        return IngestParams(self.max_url_length, self.max_image_side)

    @property
    def demo_world(self) -> Path | None:
        """The demo world's folder when the pool is the lake's demo world, else None."""
        world = demo_world_dir(self.lake_dir)
        if self.source and Path(self.source) != world / "source":
            return None
        return world if (world / TRUTH_FILE).is_file() else None

    def _demo_part(self, configured: str, part: str) -> str:
        if configured:
            return configured
        if self.demo_world is None:
            raise ValueError(f"no {part} configured and no demo world in {self.lake_dir}")
        return str(self.demo_world / part)

    @property
    def download_settings(self) -> DownloadSettings:
        """DataComp's settings; on the demo world its server's hosts are allowlisted and the
        timeout is held below the world's slow responses (which exist to time out)."""
        world = load_demo_world(self.demo_world) if self.demo_world else None
        demo_hosts = endpoints_for_hosts(world.truth["allowlist_hosts"]) if world else []
        timeout = self.download_timeout
        if world is not None:
            timeout = min(timeout, world.truth["config"]["slow_seconds"] / 2)
        return DownloadSettings(
            timeout=timeout,
            thread_count=self.download_threads,
            allowlist=tuple(self.download_allowlist) + tuple(demo_hosts),
            verify_sha256=self.verify_sha256,
        )

    @property
    def scorer_settings(self) -> ScorerSettings:
        world = self.demo_world
        trusted = self.trusted_dir or (str(world / "trusted") if world else "")
        return ScorerSettings(
            arch=self.scorer_arch,
            source=self.scorer_source,
            trusted_dir=trusted,
            scale=self.scorer_scale,
            samples_seen=self.scorer_samples,
        )

    @property
    def exemplar_tars(self) -> list[Path]:
        folder = self.exemplar_dir or self.scorer_settings.trusted_dir
        return sorted(Path(folder).glob("*.tar")) if folder else []

    @property
    def feature_settings(self) -> FeatureSettings:
        return FeatureSettings(self.language_detector, self.image_clusters, self.train_seed)

    @property
    def eval_path(self) -> str:
        return self._demo_part(self.eval_dir, "eval")

    def connect_memory(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with the same limits (for work that needs no catalog)."""
        settings = DuckSettings(memory_limit=self.duckdb_memory_limit, threads=self.duckdb_threads)
        return connect(":memory:", settings)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A connection to the lake's catalog (waits, bounded, if another run holds it)."""
        self.lake.root.mkdir(parents=True, exist_ok=True)
        settings = DuckSettings(memory_limit=self.duckdb_memory_limit, threads=self.duckdb_threads)
        return connect(self.lake.catalog, settings)


class DemoServerResource(dg.ConfigurableResource):
    """Keeps the demo world's image server up while a step downloads (shared, stopped by PID).

    Does nothing when the pool is not the lake's demo world. See poolsieve_demo.shared.
    """

    lake_dir: str = DEFAULT_LAKE
    source: str = ""

    @contextlib.contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext):
        world = PoolsieveResource(lake_dir=self.lake_dir, source=self.source).demo_world
        if world is None:
            yield self
            return
        port = load_demo_world(world).port
        with shared_demo_server(world, port, Path(self.lake_dir) / "locks") as pid:
            context.log.info(f"demo image server for {world} up as pid {pid} on port {port}")
            yield self


def resource_from_env(**overrides) -> PoolsieveResource:
    """The resource from POOLSIEVE_* environment variables, with ``overrides`` on top."""
    env = os.environ.get
    values = dict(
        lake_dir=env("POOLSIEVE_LAKE", DEFAULT_LAKE),
        source=env("POOLSIEVE_SOURCE", ""),
        duckdb_memory_limit=env("POOLSIEVE_DUCKDB_MEMORY", "2GB"),
        duckdb_threads=int(env("POOLSIEVE_DUCKDB_THREADS", "2")),
        scorer_source=env("POOLSIEVE_SCORER", ""),
        scorer_arch=env("POOLSIEVE_SCORER_ARCH", "poolsieve-tiny"),
        trusted_dir=env("POOLSIEVE_TRUSTED", ""),
        eval_dir=env("POOLSIEVE_EVAL", ""),
        device=env("POOLSIEVE_DEVICE", "auto"),
        eval_suite_dir=env("POOLSIEVE_EVAL_SUITE", ""),
    )
    return PoolsieveResource(**{**values, **overrides})


def demo_server_for(poolsieve: PoolsieveResource) -> DemoServerResource:
    return DemoServerResource(lake_dir=poolsieve.lake_dir, source=poolsieve.source)
