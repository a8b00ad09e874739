"""Metadata mode's download selection: the settings' validation and the union of the subsets."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from poolsieve.pipelines.resources import CurationResource, check_selection

from poolsieve.curate.strategies import write_subset_npy
from poolsieve.images.selection import (
    build_selection,
    missing_reasons,
    selected_uids,
    selection_path,
)
from poolsieve.images.status import STATUS_FILE
from tests.conftest import uid

KNOWN = ["basic", "laion", "no_filter"]


def test_selection_defaults_to_none_and_every_strategy():
    assert CurationResource().selection(KNOWN) == ("none", KNOWN)


@pytest.mark.parametrize(
    ("value", "names", "want"),
    [
        ("selected", "laion, basic", ("selected", ["laion", "basic"])),
        ("ALL", "", ("all", KNOWN)),
        ("selected", "basic,basic,", ("selected", ["basic"])),
    ],
)
def test_selection_values_are_read(value, names, want):
    assert check_selection(value, names, KNOWN) == want


def test_a_bad_selection_names_the_setting_and_its_values():
    with pytest.raises(ValueError, match=r"download_selection .*'some'.*none, selected, all"):
        check_selection("some", "", KNOWN)


def test_an_unknown_strategy_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown strategies \['clip'\]; known: \['basic'"):
        check_selection("selected", "basic,clip", KNOWN)


def _decisions(lake, shard: str, rows: list[tuple[int, bool]]) -> None:
    folder = lake.partition_dir("url_dedup", shard)
    folder.mkdir(parents=True)
    table = pa.table(
        {
            "shard": [shard] * len(rows),
            "row_idx": list(range(len(rows))),
            "uid": [uid(i) for i, _ in rows],
            "keep": [keep for _, keep in rows],
            "reason": [None if keep else "duplicate_url" for _, keep in rows],
        }
    )
    pq.write_table(table, folder / "decisions.parquet")


@pytest.fixture
def pool(lake):
    """Two shards (uid 3 dropped by dedup) and three subsets."""
    _decisions(lake, "a.parquet", [(1, True), (2, True), (3, False)])
    _decisions(lake, "b.parquet", [(4, True), (5, True), (6, True)])
    for name, ids in {"basic": [1, 4], "laion": [4, 5], "no_filter": [1, 2, 4, 5, 6]}.items():
        folder = lake.partition_dir("subset", name)
        folder.mkdir(parents=True)
        write_subset_npy(folder / "subset.npy", [uid(i) for i in ids])
    return lake


def test_selected_is_the_union_with_the_strategies_keeping_each(pool):
    with duckdb.connect() as conn:
        result = build_selection(conn, pool, "selected", ["basic", "laion"])
    rows = pq.read_table(selection_path(pool)).to_pylist()
    assert [(r["shard"], r["row_idx"], r["uid"], r["strategies"]) for r in rows] == [
        ("a.parquet", 0, uid(1), ["basic"]),
        ("b.parquet", 0, uid(4), ["basic", "laion"]),
        ("b.parquet", 1, uid(5), ["laion"]),
    ]
    assert result.selected == 3 and result.per_strategy == {"basic": 2, "laion": 2}
    assert result.per_shard == {"a.parquet": 1, "b.parquet": 2} and result.unmatched == []
    assert selected_uids(pool, "a.parquet") == {uid(1)}
    assert selected_uids(pool, "b.parquet") == {uid(4), uid(5)}
    assert selected_uids(pool, "c.parquet") == set()


def test_the_data_version_digest_follows_the_uids_not_the_strategy_order(pool):
    with duckdb.connect() as conn:
        first = build_selection(conn, pool, "selected", ["basic", "laion"])
        reordered = build_selection(conn, pool, "selected", ["laion", "basic"])
        narrower = build_selection(conn, pool, "selected", ["basic"])
    assert reordered.digest == first.digest != narrower.digest


def test_all_is_every_kept_row(pool):
    with duckdb.connect() as conn:
        result = build_selection(conn, pool, "all", ["basic"])
    rows = pq.read_table(selection_path(pool)).to_pylist()
    assert [r["uid"] for r in rows] == [uid(i) for i in (1, 2, 4, 5, 6)]
    assert {r["uid"]: r["strategies"] for r in rows}[uid(2)] == []
    assert result.selected == 5


def test_a_subset_uid_that_dedup_dropped_is_reported(pool):
    write_subset_npy(pool.partition_dir("subset", "basic") / "subset.npy", [uid(1), uid(3)])
    with duckdb.connect() as conn:
        result = build_selection(conn, pool, "selected", ["basic"])
    assert result.unmatched == [uid(3)] and result.selected == 1


def test_a_missing_subset_is_a_clear_error(pool):
    with duckdb.connect() as conn, pytest.raises(FileNotFoundError, match="'nope'.*materialize"):
        build_selection(conn, pool, "selected", ["nope"])


def test_missing_images_are_counted_by_their_download_error(pool):
    folder = pool.partition_dir("selected_images", "a.parquet")
    folder.mkdir(parents=True)
    status = pa.table(
        {
            "uid": [uid(1), uid(2)],
            "status": ["failed", "success"],
            "error_category": ["http_404", None],
        }
    )
    pq.write_table(status, folder / STATUS_FILE)
    shards = ["a.parquet", "b.parquet"]
    assert missing_reasons(pool, shards, {uid(1), uid(9)}) == {"http_404": 1, "not_downloaded": 1}
    assert missing_reasons(pool, shards, set()) == {}


def test_a_download_of_zero_rows_writes_an_empty_status(tmp_path):
    from poolsieve.images.download import download_shard

    empty = pa.table({c: pa.array([], pa.string()) for c in ("uid", "url", "text")})
    result = download_shard(empty, tmp_path / "out")
    assert (result.success, result.failed) == (0, 0)
    assert pq.read_table(result.status_path).num_rows == 0
