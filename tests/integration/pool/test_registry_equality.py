"""The bucket-partitioned URL registry decides exactly as the single-file registry did: on one
pool, materialized in several orders (re-ingests, deciding before later shards arrive, one shard
at a time or all at once), every shard's decisions.parquet is byte for byte the one the old SQL
over one table writes for the pool's final content."""

from __future__ import annotations

import hashlib
import random

import pytest

from poolsieve.duck import DuckSettings, connect
from poolsieve.lake import Lake
from poolsieve.pool import registry
from poolsieve.pool.dedup import dedup_shards
from poolsieve.pool.ingest import ingest_shard
from tests.conftest import row, write_datacomp
from tests.integration.pool.single_file_registry import fill_from_lake, reference_decisions

SHARDS = [f"part-{i}.parquet" for i in range(6)]
SEQ = {s: i for i, s in enumerate(SHARDS)}
SETTINGS = DuckSettings(memory_limit="1GB", threads=2)


def _uid(i: int) -> str:
    """A DataComp-like uid (an md5): its key spreads over every uid group."""
    return hashlib.md5(str(i).encode()).hexdigest()


def _url(k: int, rng: random.Random) -> str:
    """One of a few hundred images, spelled as crawls spell it (same normalized URL)."""
    base = f"site{k % 9}.example.com/img/{k}.jpg"
    return rng.choice(
        [f"http://{base}", f"HTTP://{base.upper().split('/')[0]}:80/{base.split('/', 1)[1]}",
         f"http://{base}#frag", f"http://{base}?utm_source=feed"]
    )  # fmt: skip


def _shard_rows(index: int, seed: int, n: int = 120) -> list[dict]:
    """Rows of one shard: URLs drawn from 300 (repeats within and across shards, in every
    bucket group), uids new or taken from earlier and later shards' uid ranges (uid repeats
    across shards), a few invalid rows (quarantined: gaps in row_idx), a uid twice in the file."""
    rng = random.Random(seed * 1000 + index)
    rows = []
    for j in range(n):
        i = index * 1000 + j if rng.random() > 0.15 else rng.randrange(6) * 1000 + rng.randrange(n)
        url = _url(rng.randrange(300), rng) if rng.random() > 0.03 else None
        rows.append(row(0, url=url, uid=_uid(i)))
    rows.append(row(0, url=_url(1, rng), uid=rows[0]["uid"]))  # uid_repeated in the file
    return rows


@pytest.fixture
def pool(tmp_path):
    source = tmp_path / "source"
    return {
        "source": source,
        "write": lambda shard, seed: write_datacomp(source / shard, _shard_rows(SEQ[shard], seed)),
    }


def _run(lake: Lake, pool, steps: list[tuple]) -> None:
    """Run ingest / decide steps on ``lake`` (an in-memory DuckDB, as the assets use)."""
    with connect(":memory:", SETTINGS) as conn:
        for step, *args in steps:
            if step == "write":
                pool["write"](*args)
            elif step == "ingest":
                ingest_shard(conn, lake, args[0], SEQ[args[0]], str(pool["source"] / args[0]))
            else:
                dedup_shards(conn, lake, list(args))


def _assert_as_single_file_registry(lake: Lake, tmp_path) -> None:
    with connect(":memory:", SETTINGS) as conn:
        fill_from_lake(conn, lake, SEQ)
        expected = reference_decisions(conn, SHARDS, tmp_path / "reference")
        dropped = conn.execute("SELECT count(*) FROM decided WHERE NOT keep").fetchall()[0][0]
        reasons = conn.execute("SELECT DISTINCT reason FROM decided").fetchall()
    assert dropped > 50 and {r for (r,) in reasons} == {None, "duplicate_url", "duplicate_uid"}
    for shard in SHARDS:
        decided = lake.partition_dir("url_dedup", shard) / "decisions.parquet"
        assert decided.read_bytes() == expected[shard].read_bytes(), shard


def _writes(seed: int) -> list[tuple]:
    return [("write", s, seed) for s in SHARDS]


def _in_order(order: list[str]) -> list[tuple]:
    """Ingest then decide each shard in ``order``, then decide every shard again (a shard
    decided before an earlier one was ingested is stale until then)."""
    steps = [step for s in order for step in (("ingest", s), ("decide", s))]
    return steps + [("decide", s) for s in reversed(SHARDS)]


SCENARIOS = {
    # pool order: each shard decided once, right after its ingest, with only earlier shards in
    "pool_order": [step for s in SHARDS for step in (("ingest", s), ("decide", s))],
    "reversed": _in_order(SHARDS[::-1]),
    "shuffled": _in_order(random.Random(7).sample(SHARDS, len(SHARDS))),
    "all_at_once": [("ingest", s) for s in SHARDS[::-1]] + [("decide", *SHARDS)],
    # part-2 ingested with other content, decided, re-ingested with its own: the registry holds
    # exactly its latest files; then part-4 changes for good
    "reingest": [
        *[("ingest", s) for s in SHARDS],
        ("write", SHARDS[2], 99),
        ("ingest", SHARDS[2]),
        ("decide", *SHARDS),
        ("write", SHARDS[2], 1),
        ("ingest", SHARDS[2]),
        ("ingest", SHARDS[0]),  # the same content again: the same files
        ("write", SHARDS[4], 42),
        ("ingest", SHARDS[4]),
        *[("decide", s) for s in SHARDS],
    ],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_decisions_equal_the_single_file_registrys_in_any_materialization_order(
    tmp_path, pool, scenario
):
    lake = Lake(tmp_path / "lake")
    _run(lake, pool, _writes(1) + SCENARIOS[scenario])
    _assert_as_single_file_registry(lake, tmp_path)
    records = registry.shard_records(lake)
    files = sorted(p.name for p in (lake.root / "url_registry").rglob("*.parquet"))
    assert set(files) == {f"{s}.{r['version']}.parquet" for s, r in records.items()}


@pytest.mark.parametrize("partitions", [1, 4, 64])
def test_any_partitioning_decides_the_same(tmp_path, pool, partitions):
    lake = Lake(tmp_path / "lake")
    assert registry.check_layout(lake, partitions) == partitions
    _run(lake, pool, _writes(1) + SCENARIOS["shuffled"])
    _assert_as_single_file_registry(lake, tmp_path)
    groups = {p.name for p in (lake.root / "url_registry" / "by_url").iterdir()}
    assert groups <= {f"bucket={g}" for g in range(partitions)}
    assert len(groups) == partitions if partitions <= 4 else len(groups) > 50
