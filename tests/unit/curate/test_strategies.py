"""Filters (dbt_like_sql/filters/): exact semantics on hand-made pool_features, subset files.

Every filter in the folder is run by the parametrized tests (YAML column tests, conservation), so
a new filter file is tested without a test edit; ``test_a_new_filter_file_is_a_new_strategy``
shows the partition appears with no Python change.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from poolsieve.curate.strategies import (
    SUBSET_DTYPE,
    build_subset,
    pairs_to_uids,
    param_profiles,
    read_subset_npy,
    strategy_names,
    strategy_params,
    uid_pairs,
    write_subset_npy,
)
from poolsieve.lake import Lake
from poolsieve.sqlrunner import SqlProject, column_test_failures
from tests.unit.curate.pool_rows import decide, feature_row, write_features

ROWS = [
    feature_row(1),
    feature_row(2, ineligible_reason="duplicate_url", dedup_keep=False),
    feature_row(3, ineligible_reason="download_failed", download_status="failed", clip_score=None),
    feature_row(4, ineligible_reason="eval_near_duplicate", eval_near_duplicate=True),
    feature_row(5, language="fr", text="une étoile rouge sur fond uni"),
    feature_row(6, text="IMG_2041.JPG"),
    feature_row(7, width=100, height=80),
    feature_row(8, width=1000, height=200),
    feature_row(9, clip_score=0.1),
    feature_row(10, clip_score=0.95, text="a photo of something nice"),
    feature_row(11, exemplar_cluster=False),
    feature_row(12, clip_score=0.27),
]


def _features(tmp_path, rows) -> str:
    return write_features(tmp_path, rows)


def _decide(tmp_path, name, rows=ROWS, profile="", project=None) -> dict[int, str | None]:
    return decide(tmp_path, name, rows, profile, project)


INELIGIBLE = {2: "duplicate_url", 3: "download_failed", 4: "eval_near_duplicate"}


def test_no_filter_keeps_every_eligible_row(tmp_path):
    decided = _decide(tmp_path, "no_filter")
    assert {i: r for i, r in decided.items() if r} == INELIGIBLE


def test_basic_is_datacomps_rule(tmp_path):
    decided = _decide(tmp_path, "basic")
    assert decided[5] == "not_english" and decided[6] == "caption_too_short"
    assert decided[7] == "image_too_small" and decided[8] == "aspect_ratio"
    assert decided[1] is None and decided[9] is None  # basic ignores CLIP scores
    assert _decide(tmp_path, "basic", profile="tiny-cpu")[7] is None  # tiny-cpu's min side: 32


def test_clip_score_threshold_and_laion(tmp_path):
    decided = _decide(tmp_path, "clip_score_threshold")  # B/32 >= 0.25
    assert decided[9] == "clip_score_below_threshold" and decided[12] is None
    laion = _decide(tmp_path, "laion")  # English and >= 0.28
    assert laion[12] == "clip_score_below_threshold" and laion[5] == "not_english"
    assert laion[1] is None


def test_text_based_needs_english_and_a_concept_word(tmp_path):
    decided = _decide(tmp_path, "text_based")
    assert decided[10] == "no_concept_word" and decided[6] == "no_concept_word"
    assert decided[5] == "not_english" and decided[1] is None  # "star"


def test_image_based_needs_an_exemplar_cluster(tmp_path):
    decided = _decide(tmp_path, "image_based")
    assert decided[11] == "not_in_exemplar_cluster" and decided[1] is None
    assert decided[6] == "caption_too_short"  # "IMG_2041.JPG": one word; more than 1 is needed


def _scores(tmp_path, scores, fraction):
    rows = [feature_row(i, clip_score=s) for i, s in enumerate(scores, start=1)]
    project = SqlProject()
    project.model("clip_score_top30").spec["params"]["fraction"] = fraction
    return _decide(tmp_path, "clip_score_top30", rows, project=project)


def test_top_fraction_keeps_ties_at_the_threshold(tmp_path):
    # N = 5, index int(0.3 * 5) = 1 of the descending scores -> threshold 0.8; all three 0.8 kept
    decided = _scores(tmp_path, [0.8, 0.9, 0.8, 0.5, 0.8], 0.3)
    assert [i for i, r in decided.items() if r is None] == [1, 2, 3, 5]
    assert decided[4] == "clip_score_below_top_fraction"


def test_top_fraction_edges(tmp_path):
    assert all(r is None for r in _scores(tmp_path, [0.1, 0.2, 0.3], 1.0).values())
    only_best = _scores(tmp_path, [0.1, 0.2, 0.3], 0.0)  # index 0 -> the maximum
    assert [i for i, r in only_best.items() if r is None] == [3]


def test_intersection_carries_the_first_reason(tmp_path):
    decided = _decide(tmp_path, "image_and_clip")
    both = _decide(tmp_path, "image_based"), _decide(tmp_path, "clip_score_top30")
    for i, reason in decided.items():
        assert (reason is None) == (both[0][i] is None and both[1][i] is None)
        assert reason == (both[0][i] or both[1][i])


@pytest.mark.parametrize("name", strategy_names())
def test_every_filter_passes_its_yaml_tests_and_conserves_rows(tmp_path, name):
    project = SqlProject()
    decided = _decide(tmp_path, name, project=project)
    assert len(decided) == len(ROWS)  # every uid decided once: kept or dropped with a reason
    assert all(decided[i] == r for i, r in INELIGIBLE.items())  # no filter revives a dropped row
    with duckdb.connect() as conn:
        conn.read_parquet(_features(tmp_path, ROWS)).create_view("pool_features")
        project.run(
            conn, [name], {"pool_features": "pool_features"}, strategy_params(project, name)
        )
        for model in project.plan([name]):
            assert column_test_failures(conn, model, model.name) == []


def test_subset_file_is_sorted_u8_pairs_that_round_trip(tmp_path):
    uids = [
        "ffffffffffffffff0000000000000001",
        "00000000000000010000000000000002",
        "0000000000000001000000000000000a",
        "8000000000000000ffffffffffffffff",
    ]
    pairs = uid_pairs(uids)
    assert pairs.dtype == SUBSET_DTYPE == np.dtype("u8,u8")
    assert pairs_to_uids(pairs) == sorted(uids)  # sorted pairs = sorted hex strings
    path = write_subset_npy(tmp_path / "s.npy", uids)
    assert pairs_to_uids(read_subset_npy(path)) == sorted(uids)
    np.save(tmp_path / "bad.npy", pairs[::-1])
    with pytest.raises(ValueError, match="not sorted"):
        read_subset_npy(tmp_path / "bad.npy")
    np.save(tmp_path / "dtype.npy", np.arange(3))
    with pytest.raises(ValueError, match="dtype"):
        read_subset_npy(tmp_path / "dtype.npy")


def test_subset_writes_decisions_npy_and_summary(tmp_path):
    with duckdb.connect() as conn:
        result = build_subset(conn, Lake(tmp_path / "lake"), _features(tmp_path, ROWS), "basic", "")
    kept = pairs_to_uids(read_subset_npy(result.files["npy"]))
    assert kept == sorted(f"{i:032x}" for i in (1, 9, 10, 11, 12))
    assert result.kept + sum(result.reasons.values()) == len(ROWS)
    assert result.params["min_side"] == 200 and result.sql_hash


def test_unknown_strategy_and_missing_features_fail_clearly(tmp_path):
    with duckdb.connect() as conn, pytest.raises(ValueError, match="unknown strategy"):
        build_subset(conn, Lake(tmp_path), tmp_path / "x.parquet", "nope", "")
    with duckdb.connect() as conn, pytest.raises(FileNotFoundError, match="materialize it first"):
        build_subset(conn, Lake(tmp_path), tmp_path / "x.parquet", "basic", "")


def test_a_profile_replaces_some_params_and_an_unknown_one_is_refused():
    project = SqlProject()
    assert param_profiles(project) == ["datacomp", "tiny-cpu"]
    default = {"score_column": "clip_score", "language_column": "language"}
    assert strategy_params(project, "laion", "tiny-cpu") == {"min_score": 0.92, **default}
    assert strategy_params(project, "laion") == {"min_score": 0.28, **default}
    assert strategy_params(project, "no_filter", "tiny-cpu") == {}  # no such profile: params
    with pytest.raises(ValueError, match="unknown parameter profile 'tiny_cpu'"):
        strategy_params(project, "basic", "tiny_cpu")
