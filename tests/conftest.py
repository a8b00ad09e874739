"""Shared fixtures: a temporary lake with a real DuckDB catalog, and DataComp parquet writers."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poolsieve.duck import DuckSettings, connect
from poolsieve.lake import Lake

#: real LAION-style rows (img2dataset's fixture, MIT; see tests/data/README.md)
LAION_SAMPLE = Path(__file__).resolve().parent / "data" / "laion_sample_1000.parquet"

DATACOMP_TYPES = {
    "uid": pa.string(),
    "url": pa.string(),
    "text": pa.string(),
    "original_width": pa.int64(),
    "original_height": pa.int64(),
    "clip_b32_similarity_score": pa.float32(),
    "clip_l14_similarity_score": pa.float32(),
    "face_bboxes": pa.list_(pa.list_(pa.float64())),
    "sha256": pa.string(),
}


def uid(i: int) -> str:
    return f"{i:032x}"


_DEFAULT = object()


def row(i: int, url=_DEFAULT, **overrides) -> dict:
    """A valid DataComp row; uid from i, url unique unless given (None is a missing URL)."""
    base = {
        "uid": uid(i),
        "url": f"http://img.example.com/{i}.jpg" if url is _DEFAULT else url,
        "text": f"a photo of thing {i}",
        "original_width": 640,
        "original_height": 480,
        "clip_b32_similarity_score": 0.3,
        "clip_l14_similarity_score": 0.25,
        "face_bboxes": [],
        "sha256": "0" * 64,
    }
    base.update(overrides)
    return base


def write_datacomp(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {name: [r.get(name) for r in rows] for name in DATACOMP_TYPES}
    table = pa.table({n: pa.array(v, type=DATACOMP_TYPES[n]) for n, v in columns.items()})
    pq.write_table(table, path)
    return path


@pytest.fixture
def lake(tmp_path) -> Lake:
    root = tmp_path / "lake"
    root.mkdir()
    return Lake(root)


@pytest.fixture
def conn(lake):
    connection = connect(lake.catalog, DuckSettings(memory_limit="1GB", threads=2))
    yield connection
    connection.close()


@pytest.fixture
def source_dir(tmp_path) -> Path:
    path = tmp_path / "source"
    path.mkdir()
    return path


@pytest.fixture
def instance():
    """A temporary Dagster instance (its own DAGSTER_HOME, removed afterwards)."""
    import dagster as dg

    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def resources(lake, source_dir):
    """Every resource at its default (the environment ignored), on the temporary lake."""
    from poolsieve.pipelines.resources import resources_from_env

    lake_fields = {"lake_dir": str(lake.root), "source": str(source_dir), "duckdb_threads": 2}
    return resources_from_env(env={}, lake=lake_fields)


def materialize_pool(instance, resources, key: str, raise_on_error=True, tags=None):
    """pool_shard + url_dedup for one shard, in process, with the test's resources."""
    import dagster as dg
    from poolsieve.assets.pool_shard import pool_shard
    from poolsieve.assets.url_dedup import url_dedup

    return dg.materialize(
        [pool_shard, url_dedup],
        partition_key=key,
        instance=instance,
        resources=resources.as_dict(),
        raise_on_error=raise_on_error,
        tags=tags,
    )


TESTS = Path(__file__).resolve().parent
LANES = ("unit", "integration", "e2e", "hostile")


def pytest_collection_modifyitems(config, items):
    """Each test carries its lane (the folder under tests/) as a marker; the hostile lane is also
    ``slow`` (minutes-long whole-system checks: ``make test`` skips them, ``make ci`` runs them)."""
    for item in items:
        lane = Path(str(item.path)).resolve().relative_to(TESTS).parts[0]
        if lane not in LANES:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/{{{','.join(LANES)}}}/")
        item.add_marker(lane)
        if lane == "hostile":
            item.add_marker("slow")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 (tests/s3.py), one per test session."""
    from tests.s3 import moto_server

    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def s3_lake_url(s3_server) -> str:
    """An empty lake in a new bucket of the loopback S3 server."""
    return f"s3://{s3_server.bucket()}/lake"
