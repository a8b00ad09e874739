"""The demo world's pool: schema, truth bookkeeping, planted metadata problems (quarantine and
duplicates), and the real ingest + dedup on them."""

from __future__ import annotations

import json
import math
import re

import pyarrow.parquet as pq
import pytest

from poolsieve.pool.urlnorm import normalize_url, normalize_urls
from poolsieve_demo import WorldConfig, write_demo_world
from poolsieve_demo.metadata_problems import DETAILS, DUPLICATE_KINDS, PLANT_KINDS, url_variant
from poolsieve_demo.rows import SCHEMA

UID_RE = re.compile(r"[0-9a-f]{32}")
DATACOMP_TYPES = {
    "uid": "string",
    "url": "string",
    "text": "string",
    "original_width": "int64",
    "original_height": "int64",
    "clip_b32_similarity_score": "float",
    "clip_l14_similarity_score": "float",
    "face_bboxes": "list<element: list<element: double>>",
    "sha256": "string",
}


#: the pool at its default size; the trusted and eval sets as small as they go
TINY = WorldConfig(trusted_samples=10, trusted_shard_size=10, eval_per_class=1, retrieval_images=4)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return write_demo_world(tmp_path_factory.mktemp("demo") / "world", config=TINY)


@pytest.fixture(scope="module")
def rows(pool):
    return {p.name: pq.read_table(p).to_pylist() for p in pool.shard_paths}


def test_layout_and_datacomp_schema(pool):
    assert [p.name for p in pool.shard_paths] == pool.truth["shards"]
    assert [p.name for p in sorted(pool.source_dir.iterdir())] == pool.truth["shards"]
    assert json.loads(pool.truth_path.read_text()) == pool.truth
    for path in pool.shard_paths:
        schema = pq.read_schema(path)
        assert {f.name: str(f.type) for f in schema} == DATACOMP_TYPES
        assert schema.names == list(DATACOMP_TYPES)
        assert schema.equals(SCHEMA)
        assert pq.read_metadata(path).num_rows == 500


def test_truth_counts_add_up(pool):
    expected = pool.truth["expected"]
    per_shard = expected["per_shard"]
    for c in per_shard.values():
        assert c["read"] == c["quarantined"] + c["normalized"]
        assert c["normalized"] == c["keep"] + c["duplicate_url"] + c["duplicate_uid"]
        assert c["quarantined"] == sum(c["quarantine_reasons"].values())
    assert pool.truth["rows_total"] == sum(c["read"] for c in per_shard.values()) == 2000
    for key, total in expected["dedup"].items():
        assert total == sum(c[key] for c in per_shard.values())
    assert sum(expected["quarantine"].values()) == sum(c["quarantined"] for c in per_shard.values())
    assert len(pool.truth["planted"]) == 2000 - expected["dedup"]["keep"]


def test_default_pool_plants_every_kind_and_detail(pool):
    seen = {(p["kind"], p["detail"]) for p in pool.truth["planted"]}
    every = {(kind, detail) for kind in PLANT_KINDS for detail in DETAILS[kind]}
    assert seen == every - {("normalized_url_dup", "default_port")}  # the URLs name their port
    assert 0.01 <= pool.truth["expected"]["quarantine"]["url_missing"] / 2000 <= 0.03


def test_every_url_variant_normalizes_like_its_url():
    """Including those the world's URLs (which name their port) never need, e.g. default_port."""
    for url in ("http://cdn.example.test/img/0000001.jpg", "http://127.0.0.1:8808/img/2.png"):
        for detail in DETAILS["normalized_url_dup"]:
            variant = url_variant(url, detail, "abcd1234")
            if variant is not None:
                assert variant != url and normalize_url(variant) == normalize_url(url), detail
    assert url_variant("http://a.test/x.jpg", "default_port", "t") == "http://a.test:80/x.jpg"


def test_clean_rows_are_unique_and_valid(pool, rows):
    planted = {(p["shard"], p["row"]) for p in pool.truth["planted"]}
    clean = [r for s, rs in rows.items() for i, r in enumerate(rs) if (s, i) not in planted]
    assert all(
        UID_RE.fullmatch(r["uid"]) and re.fullmatch(r"[0-9a-f]{64}", r["sha256"]) for r in clean
    )
    assert len({r["uid"] for r in clean}) == len(clean)
    norms = normalize_urls(r["url"] for r in clean)
    assert None not in norms and len(set(norms)) == len(clean)
    assert {r["url"].split("/")[2] for r in clean} == {"127.0.0.1:8808", "localhost:8808"}


def _scheme(url):
    match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", url.strip())
    return match.group(1).lower() if match else ""


def _bad_size(r):
    sizes = [r["original_width"], r["original_height"]]
    return any(v is not None and not 0 < v <= 100_000 for v in sizes)


def _bad_score(r):
    scores = [r["clip_b32_similarity_score"], r["clip_l14_similarity_score"]]
    return any(v is not None and (math.isnan(v) or abs(v) > 1) for v in scores)


def _check_quarantine_property(kind, row, orig):
    url = row["url"]
    checks = {
        "url_missing": lambda: url is None or url.strip() == "",
        "url_scheme": lambda: bool(url.strip()) and _scheme(url) not in ("http", "https"),
        "url_unparseable": lambda: (
            _scheme(url) in ("http", "https") and (normalize_url(url) is None or len(url) > 2048)
        ),
        "size_invalid": lambda: _bad_size(row),
        "score_invalid": lambda: _bad_score(row),
        "uid_malformed": lambda: row["uid"] is None or not UID_RE.fullmatch(row["uid"]),
        "uid_repeated": lambda: row["uid"] == orig["uid"],
    }
    assert checks[kind](), (kind, row)


def _check_duplicate_property(entry, row, orig):
    kind = entry["kind"]
    assert entry["duplicate_of"] == orig["uid"]
    if kind == "cross_shard_uid_dup":
        assert row["uid"] == orig["uid"] and entry["original"]["shard"] < entry["shard"]
        return
    assert row["uid"] != orig["uid"] and UID_RE.fullmatch(row["uid"])
    if kind == "exact_url_dup":
        assert row["url"] == orig["url"]
    else:
        assert row["url"] != orig["url"], entry
        assert normalize_url(row["url"]) == normalize_url(orig["url"]) is not None, entry


def test_planted_rows_have_their_stated_property(pool, rows):
    for entry in pool.truth["planted"]:
        row = rows[entry["shard"]][entry["row"]]
        at = entry["original"]
        orig = rows[at["shard"]][at["row"]] if at else None
        if orig is not None:
            assert (at["shard"], at["row"]) < (entry["shard"], entry["row"])
        if entry["kind"] in DUPLICATE_KINDS:
            assert entry["expect"] == DUPLICATE_KINDS[entry["kind"]]
            _check_duplicate_property(entry, row, orig)
        else:
            assert entry["expect"] == f"quarantine:{entry['kind']}"
            _check_quarantine_property(entry["kind"], row, orig)


def _run_pipeline(pool, lake_root):
    from poolsieve.duck import connect
    from poolsieve.lake import Lake
    from poolsieve.pool.dedup import dedup_shards
    from poolsieve.pool.ingest import ingest_shard

    lake = Lake(lake_root)
    lake.root.mkdir(parents=True)
    conn = connect(lake.catalog)
    try:
        ingested = {
            p.name: ingest_shard(conn, lake, p.name, seq, str(p))
            for seq, p in enumerate(pool.shard_paths)
        }
        decided = dedup_shards(conn, lake, [p.name for p in pool.shard_paths])
    finally:
        conn.close()
    return lake, ingested, decided


def _outcomes(lake, shards):
    """(shard, row) -> (outcome, duplicate_of) for every row that is not a plain keep."""
    out = {}
    for shard in shards:
        quarantine = pq.read_table(lake.partition_dir("pool_shard", shard) / "quarantine.parquet")
        for r in quarantine.to_pylist():
            out[(r["shard"], r["row_idx"])] = (f"quarantine:{r['reason']}", None)
        decisions = pq.read_table(lake.partition_dir("url_dedup", shard) / "decisions.parquet")
        for r in decisions.to_pylist():
            assert r["keep"] == (r["reason"] is None)
            if not r["keep"]:
                out[(r["shard"], r["row_idx"])] = (r["reason"], r["duplicate_of"])
    return out


def test_pipeline_matches_truth_exactly(pool, tmp_path):
    lake, ingested, decided = _run_pipeline(pool, tmp_path / "lake")
    for shard, want in pool.truth["expected"]["per_shard"].items():
        got = ingested[shard]
        assert (got.rows_read, got.rows_quarantined, got.rows_normalized) == (
            want["read"],
            want["quarantined"],
            want["normalized"],
        )
        assert got.quarantine_reasons == want["quarantine_reasons"]
        dedup = decided[shard]
        assert (dedup.rows_in, dedup.rows_kept) == (want["normalized"], want["keep"])
        dups = {k: want[k] for k in ("duplicate_url", "duplicate_uid") if want[k]}
        assert dedup.reasons == dups
    expected = {
        (p["shard"], p["row"]): (p["expect"], p["duplicate_of"]) for p in pool.truth["planted"]
    }
    assert _outcomes(lake, pool.truth["shards"]) == expected


def _nan_only_pool(tmp_path):
    """One shard whose only invalid scores are NaN: its Parquet min/max (NaN-free) look finite."""
    config = WorldConfig(**{**TINY.to_json(), "metadata_counts": {"score_invalid": 2}})
    return write_demo_world(tmp_path / "world", n_shards=1, rows_per_shard=200, config=config)


def test_nan_only_pool_plants_nan_scores_only(tmp_path):
    planted = _nan_only_pool(tmp_path).truth["planted"]
    assert [p["detail"] for p in planted if p["kind"] == "score_invalid"] == ["nan_b32", "nan_l14"]


def test_pipeline_quarantines_nan_scores_despite_finite_column_stats(tmp_path):
    """DuckDB would fold isnan() to false from pyarrow's NaN-free min/max (duckdb#25521)."""
    pool = _nan_only_pool(tmp_path)
    _, ingested, _ = _run_pipeline(pool, tmp_path / "lake")
    assert ingested["shard_00000.parquet"].quarantine_reasons.get("score_invalid") == 2
