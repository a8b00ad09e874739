"""Resources: where the pool comes from, where the lake is, and DuckDB's limits.

Local and production differ only in these values (environment variables or run config):
``POOLSIEVE_SOURCE`` (folder or fsspec URL of pool parquet), ``POOLSIEVE_LAKE`` (lake folder),
``POOLSIEVE_DUCKDB_MEMORY`` (DuckDB memory_limit) and ``POOLSIEVE_DUCKDB_THREADS``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import duckdb

from poolsieve.duck import DuckSettings, connect
from poolsieve.ingest import IngestParams
from poolsieve.lake import Lake
from poolsieve.paths import REPO_ROOT

DEFAULT_LAKE = str(REPO_ROOT / "lake")


def default_source(lake_dir: str) -> str:
    return str(Path(lake_dir) / "demo" / "source")


class PoolsieveResource(dg.ConfigurableResource):
    """The lake, the pool source and DuckDB's limits for every poolsieve asset."""

    lake_dir: str = DEFAULT_LAKE
    source: str = ""  # empty: the demo source inside the lake
    duckdb_memory_limit: str = "2GB"
    duckdb_threads: int = 2
    max_url_length: int = 2048
    max_image_side: int = 100_000

    @property
    def lake(self) -> Lake:
        return Lake(Path(self.lake_dir))

    @property
    def source_url(self) -> str:
        return self.source or default_source(self.lake_dir)

    @property
    def ingest_params(self) -> IngestParams:
        return IngestParams(self.max_url_length, self.max_image_side)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A connection to the lake's catalog (waits, bounded, if another run holds it)."""
        self.lake.root.mkdir(parents=True, exist_ok=True)
        settings = DuckSettings(memory_limit=self.duckdb_memory_limit, threads=self.duckdb_threads)
        return connect(self.lake.catalog, settings)


def resource_from_env() -> PoolsieveResource:
    lake_dir = os.environ.get("POOLSIEVE_LAKE", DEFAULT_LAKE)
    return PoolsieveResource(
        lake_dir=lake_dir,
        source=os.environ.get("POOLSIEVE_SOURCE", ""),
        duckdb_memory_limit=os.environ.get("POOLSIEVE_DUCKDB_MEMORY", "2GB"),
        duckdb_threads=int(os.environ.get("POOLSIEVE_DUCKDB_THREADS", "2")),
    )
