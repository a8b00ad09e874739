"""DataComp's rules on hand-made pool_features rows (the ``datacomp`` profile; metadata mode).

Rows give the counts (words, characters) directly: how captions are counted is shard_features'
business; here the rules given the counts. Scores tied at the threshold, the threshold over every
scored row (ineligible ones too), missing scores and sizes, the column each rule reads, and one
seeded pool checked filter by filter against a plain-Python statement of DataComp's baselines.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from poolsieve.curate.strategies import strategy_names, strategy_params
from poolsieve.sqlrunner import SqlProject
from tests.unit.curate.pool_rows import decide, feature_row

DC = "datacomp"


def _metadata_row(i: int, **overrides) -> dict:
    """A metadata-mode row: no download, no scorer score."""
    base = {"download_status": None, "clip_score": None, "width": None, "height": None}
    return feature_row(i, **{**base, **overrides})


def _kept(decided: dict) -> list[int]:
    return sorted(i for i, reason in decided.items() if reason is None)


def test_top_fraction_threshold_is_over_every_scored_row_ineligible_ones_too(tmp_path):
    # 10 scored rows, the two best dropped by dedup: index int(0.3 * 10) = 3 -> 0.7, so 0.8 and
    # 0.7 stay. Over the 8 eligible rows only it would be index 2 -> 0.6 (three kept).
    rows = [
        _metadata_row(i, clip_l14_score=i / 10)
        | ({"ineligible_reason": "duplicate_url"} if i >= 9 else {})
        for i in range(1, 11)
    ]
    decided = decide(tmp_path, "clip_score_top30", rows, DC)
    assert _kept(decided) == [7, 8]
    assert decided[9] == decided[10] == "duplicate_url"
    assert decided[6] == "clip_score_below_top_fraction"


def test_ties_at_the_threshold_are_all_kept(tmp_path):
    scores = [0.9, 0.5, 0.5, 0.5, 0.5, 0.3, 0.2, 0.1, 0.1, 0.1]  # index 3 -> 0.5: five >= 0.5
    rows = [_metadata_row(i, clip_l14_score=s) for i, s in enumerate(scores, start=1)]
    assert _kept(decide(tmp_path, "clip_score_top30", rows, DC)) == [1, 2, 3, 4, 5]


def test_missing_scores_are_dropped_and_not_counted(tmp_path):
    # NULL and NaN: dropped as no_clip_score and outside N. N = 5 -> index 1 -> 0.8 (two kept);
    # counting the two missing rows would give index 2 -> 0.7 (three kept)
    scores = [None, float("nan"), 0.9, 0.8, 0.7, 0.6, 0.5]
    rows = [_metadata_row(i, clip_l14_score=s) for i, s in enumerate(scores, start=1)]
    decided = decide(tmp_path, "clip_score_top30", rows, DC)
    assert _kept(decided) == [3, 4]
    assert decided[1] == decided[2] == "no_clip_score"
    laion = decide(tmp_path, "laion", [_metadata_row(1, clip_b32_score=None), _metadata_row(2)], DC)
    assert laion == {1: "no_clip_score", 2: None}
    scorer = [feature_row(1, clip_score=None), feature_row(2, clip_score=0.5)]
    assert decide(tmp_path, "clip_score_threshold", scorer) == {1: "no_clip_score", 2: None}


def test_each_clip_filter_reads_the_score_its_yaml_names(tmp_path):
    rows = [
        _metadata_row(1, clip_b32_score=0.29, clip_l14_score=0.10),
        _metadata_row(2, clip_b32_score=0.27, clip_l14_score=0.40),
        _metadata_row(3, clip_b32_score=0.20, clip_l14_score=0.30),
        _metadata_row(4, clip_b32_score=0.25, clip_l14_score=0.05),
    ]
    assert _kept(decide(tmp_path, "clip_score_top30", rows, DC)) == [2, 3]  # L/14: index 1: 0.3
    assert _kept(decide(tmp_path, "laion", rows, DC)) == [1]  # B/32 >= 0.28
    assert _kept(decide(tmp_path, "clip_score_threshold", rows, DC)) == [1, 2, 4]  # B/32 >= 0.25


def test_laion_reads_the_language_its_yaml_names(tmp_path):
    rows = [
        feature_row(1, language="en", language_cld3="fr"),
        feature_row(2, language="fr", language_cld3="en"),
        feature_row(3, language="en", language_cld3=None),
    ]
    assert decide(tmp_path, "laion", rows, DC) == {1: "not_english", 2: None, 3: "not_english"}
    assert decide(tmp_path, "laion", rows) == {1: None, 2: "not_english", 3: None}


def test_basic_boundaries_given_counts(tmp_path):
    rows = [
        _metadata_row(1, caption_words=2, caption_chars=20),  # more than 2 words needed
        _metadata_row(2, caption_words=3, caption_chars=5),  # more than 5 characters needed
        _metadata_row(3, caption_words=3, caption_chars=6),
        _metadata_row(4, meta_width=199, meta_height=400),
        _metadata_row(5, meta_width=200, meta_height=600),  # aspect exactly 3: kept
        _metadata_row(6, meta_width=601, meta_height=200),
        _metadata_row(7, meta_width=None),
        _metadata_row(8, meta_height=None),
        _metadata_row(9, language=None),
        _metadata_row(10, caption_words=None, caption_chars=None),
        _metadata_row(11, language="de", meta_width=None),  # language is checked first
    ]
    assert decide(tmp_path, "basic", rows, DC) == {
        1: "caption_too_short",
        2: "caption_too_short",
        3: None,
        4: "image_too_small",
        5: None,
        6: "aspect_ratio",
        7: "image_size_missing",
        8: "image_size_missing",
        9: "not_english",
        10: "caption_too_short",
        11: "not_english",
    }


def test_basic_size_source(tmp_path):
    rows = [
        feature_row(1, width=1000, height=1000, meta_width=100, meta_height=100),
        feature_row(2, width=100, height=100, meta_width=1000, meta_height=1000),
        feature_row(3, width=None, height=None),
    ]
    assert decide(tmp_path, "basic", rows, DC) == {1: "image_too_small", 2: None, 3: None}
    default = decide(tmp_path, "basic", rows)  # size_source image: the downloaded image's
    assert default == {1: None, 2: "image_too_small", 3: "image_size_missing"}


def test_image_based_given_counts_and_missing_clusters(tmp_path):
    rows = [
        _metadata_row(1, caption_words=1),
        _metadata_row(2, caption_words=2, caption_chars=6),
        _metadata_row(3, exemplar_cluster=None, image_cluster=None),
        _metadata_row(4, exemplar_cluster=False),
    ]
    assert decide(tmp_path, "image_based", rows, DC) == {
        1: "caption_too_short",
        2: None,
        3: "not_in_exemplar_cluster",
        4: "not_in_exemplar_cluster",
    }


def test_the_datacomp_profile_is_datacomps_numbers():
    project = SqlProject()
    assert strategy_params(project, "clip_score_top30", DC) == {
        "fraction": 0.3,
        "score_column": "clip_l14_score",
    }
    assert strategy_params(project, "laion", DC) == {
        "min_score": 0.28,
        "score_column": "clip_b32_score",
        "language_column": "language_cld3",
    }
    assert strategy_params(project, "basic", DC) == {
        "min_words": 2,
        "min_chars": 5,
        "min_side": 200,
        "max_aspect": 3.0,
        "size_source": "metadata",
    }
    assert strategy_params(project, "image_based", DC) == {"min_words": 1, "min_chars": 5}
    assert strategy_params(project, "image_and_clip", DC) == {
        "min_words": 1,
        "min_chars": 5,
        "fraction": 0.3,
        "score_column": "clip_l14_score",
    }


def test_a_column_choice_outside_the_list_names_its_yaml():
    project = SqlProject()
    project.model("laion").spec["profiles"][DC]["language_column"] = "text"
    with pytest.raises(ValueError, match=r"laion\.yml: profile 'datacomp': language_column 'text'"):
        strategy_params(project, "laion", DC)
    project.model("clip_score_top30").spec["params"]["score_column"] = "url"
    with pytest.raises(ValueError, match=r"clip_score_top30\.yml: score_column 'url' is not one"):
        strategy_params(project, "image_and_clip")  # found through the ref too


def test_a_column_empty_over_the_pool_is_refused_with_the_way_out(tmp_path):
    rows = [_metadata_row(i) for i in range(1, 4)]  # metadata mode: no clip_score anywhere
    with pytest.raises(ValueError, match=r"clip_score_top30\.yml.*param_profile datacomp"):
        decide(tmp_path, "image_and_clip", rows)
    no_cld3 = [feature_row(1, language_cld3=None)]
    with pytest.raises(ValueError, match="laion_language_detector"):
        decide(tmp_path, "laion", no_cld3, DC)
    nothing_eligible = [_metadata_row(1, ineligible_reason="duplicate_url")]
    assert decide(tmp_path, "clip_score_top30", nothing_eligible) == {1: "duplicate_url"}


# -- a seeded pool against a plain statement of DataComp's baselines ---------------------------


def _random_pool(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)

    def maybe(value, p_missing=0.05):
        return None if rng.random() < p_missing else value

    rows = []
    for i in range(1, n + 1):
        rows.append(
            _metadata_row(
                i,
                caption_words=rng.randint(0, 6),
                caption_chars=rng.randint(2, 30),
                language=rng.choice(["en", "en", "en", "fr", "de", None]),
                language_cld3=rng.choice(["en", "en", "fr", "ja"]),
                clip_b32_score=maybe(float(np.float32(round(rng.uniform(0.1, 0.45), 2)))),
                clip_l14_score=maybe(float(np.float32(round(rng.uniform(0.05, 0.4), 2)))),
                meta_width=maybe(rng.choice([64, 199, 200, 300, 600, 601, 1024])),
                meta_height=maybe(rng.choice([64, 199, 200, 300, 600, 601, 1024])),
                exemplar_cluster=rng.random() < 0.4,
                phash_duplicate_of=f"{i - 1:032x}" if rng.random() < 0.1 else None,
                semantic_duplicate_of=f"{i - 1:032x}" if rng.random() < 0.1 else None,
                ineligible_reason="duplicate_url" if rng.random() < 0.1 else None,
            )
        )
    return rows


def _datacomp(rows: list[dict]) -> dict[str, set[int]]:
    """DataComp's baselines (baselines/apply_filter.py), per row; then dedup's ineligibility."""
    l14 = [r["clip_l14_score"] for r in rows if r["clip_l14_score"] is not None]
    ranked = sorted(l14, reverse=True)
    n = int(len(ranked) * 0.3)
    threshold = ranked[n] if n < len(ranked) else float("-inf")

    def sizes_ok(r):
        w, h = r["meta_width"], r["meta_height"]
        return w is not None and h is not None and min(w, h) >= 200 and max(w, h) / min(w, h) <= 3

    def caption(r, words):
        return r["language"] == "en" and r["caption_words"] > words and r["caption_chars"] > 5

    rules = {
        "no_filter": lambda r: True,
        "basic": lambda r: caption(r, 2) and sizes_ok(r),
        "clip_score_top30": lambda r: (r["clip_l14_score"] or float("-inf")) >= threshold,
        "laion": lambda r: r["language_cld3"] == "en" and (r["clip_b32_score"] or 0) >= 0.28,
        "clip_score_threshold": lambda r: (r["clip_b32_score"] or 0) >= 0.25,
        "image_based": lambda r: caption(r, 1) and r["exemplar_cluster"],
    }
    rules["image_and_clip"] = lambda r: rules["image_based"](r) and rules["clip_score_top30"](r)
    rules["image_and_clip_dedup"] = lambda r: (
        rules["image_and_clip"](r)
        and r["phash_duplicate_of"] is None
        and r["semantic_duplicate_of"] is None
    )
    eligible = [r for r in rows if r["ineligible_reason"] is None]
    return {name: {r["row_idx"] for r in eligible if rule(r)} for name, rule in rules.items()}


@pytest.mark.parametrize("name", [s for s in strategy_names() if s != "text_based"])
def test_a_seeded_pool_matches_datacomps_baselines(tmp_path, name):
    rows = _random_pool(400, seed=12)
    expected = _datacomp(rows)[name]
    assert 0 < len(expected) < 400
    assert set(_kept(decide(tmp_path, name, rows, DC))) == expected
