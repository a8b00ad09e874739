"""``poolsieve run`` again recomputes only what changed (DataComp metadata mode, no image server).

A second run over the same source skips every shard and every step that is up to date; a new file
runs its own shard steps (and the pool-wide steps after them), the old shards' feature files stay
byte-identical; ``--force`` runs everything again.
"""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import row
from tests.datacomp_pool import write_shard

POOLSIEVE = str(Path(sys.executable).parent / "poolsieve")
ROWS = 40

pytestmark = pytest.mark.timeout(900)


def _shard(source: Path, n: int) -> None:
    rows = [row(n * 1000 + i, text=f"a photo of a red car number {i}") for i in range(ROWS)]
    write_shard(source / f"part-{n:05d}.parquet", rows, seed=n)


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    exemplars = tmp_path / "exemplars.npy"
    if not exemplars.is_file():
        rng = np.random.default_rng(0)
        emb = rng.standard_normal((5, 768)).astype(np.float32)
        np.save(exemplars, emb / np.linalg.norm(emb, axis=1, keepdims=True))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "POOLSIEVE_POOL_MODE": "metadata",
        "POOLSIEVE_PARAM_PROFILE": "datacomp",
        "POOLSIEVE_CLUSTER_EMBEDDINGS": "l14_img",
        "POOLSIEVE_EXEMPLARS": str(exemplars),
        "POOLSIEVE_IMAGE_CLUSTERS": "4",
    }
    args = ["run", "--source", str(tmp_path / "source"), "--lake", str(tmp_path / "lake")]
    proc = subprocess.run(
        [POOLSIEVE, *args, *extra], env=env, capture_output=True, text=True, timeout=800
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _ran(out: str, what: str) -> int:
    """How many runs of ``what`` (a shard or asset name) the progress lines show."""
    line = re.compile(rf"^\s+(\[\d+/\d+\])?\s*\S*{re.escape(what)}\S*\s+ok\s+[\d.]+s$")
    return sum(1 for text in out.splitlines() if line.match(text))


def _digests(lake: Path, asset: str) -> dict[str, str]:
    return {
        str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((lake / asset).rglob("*"))
        if p.is_file()
    }


def test_a_second_run_recomputes_only_the_new_shard(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for n in range(2):
        _shard(source, n)
    first = _run(tmp_path).stdout
    assert _ran(first, "part-00000.parquet") >= 2 and _ran(first, "part-00001.parquet") >= 2
    lake = tmp_path / "lake"
    features = _digests(lake, "shard_features")
    mtimes = {p: p.stat().st_mtime_ns for p in (lake / "shard_features").rglob("*.parquet")}

    again = _run(tmp_path).stdout
    assert "up to date" in again
    assert _ran(again, "part-0000") == 0, again
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # not even rewritten

    _shard(source, 2)
    grown = _run(tmp_path).stdout
    assert _ran(grown, "part-00002.parquet") >= 2, grown
    assert _ran(grown, "part-00000.parquet") == 0 and _ran(grown, "part-00001.parquet") == 0
    after = _digests(lake, "shard_features")
    assert {k: v for k, v in after.items() if "part-00002" not in k} == features

    forced = _run(tmp_path, "--force").stdout
    for n in range(3):
        assert _ran(forced, f"part-{n:05d}.parquet") >= 2, forced
