"""The pool near-duplicate table and the takedown removals against the truth
(compare.image_duplicate_rates, compare.removal_rates), and the lines ``poolsieve demo`` prints
from them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poolsieve.curate.takedown import ASSET as REMOVALS_ASSET
from poolsieve.curate.takedown import REMOVALS_FILE, REMOVALS_SCHEMA
from poolsieve.images.decontamination import RESULT_FILE, RESULT_SCHEMA
from poolsieve_demo.command import _report_truth
from poolsieve_demo.compare import (
    image_duplicate_lines,
    image_duplicate_rates,
    removal_lines,
    removal_rates,
)

DROPS_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("shard", pa.string()),
        ("rule", pa.string()),
        ("duplicate_of", pa.string()),
        ("distance", pa.float64()),
    ]
)
#: planted copy -> its source; c4 is never dropped
PLANTED = {"c1": "s1", "c2": "s2", "c3": "s3", "c4": "s4"}
#: decoded: the copies, their sources, u1 and u2; u3 failed to decode
DECODED = [*PLANTED, *PLANTED.values(), "u1", "u2"]
DROPS = {  # partition -> (uid, rule, duplicate_of) rows; c1 is dropped by both rules
    "shard_a": [("c1", "phash", "s1"), ("c2", "phash", "u2"), ("u1", "phash", "s2")],
    "shard_b": [("c3", "semantic", "s3"), ("c1", "semantic", "s1")],
}


@pytest.fixture
def truth_path(tmp_path):
    entries = [{"uid": c, "duplicate_of": s, "shard": "shard_a"} for c, s in PLANTED.items()]
    doc = {"expected": {"quarantine": {}, "dedup": {}}, "image_near_duplicates": entries}
    path = tmp_path / "world_truth.json"
    path.write_text(json.dumps(doc))
    return path


def _write(lake, asset: str, partition: str, name: str, rows: list[dict], schema) -> None:
    folder = lake.partition_dir(asset, partition)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / name)


def _decontamination(lake) -> None:
    rows = [{"uid": u, "key": u, "flagged": False, "error": None} for u in DECODED]
    rows.append({"uid": "u3", "key": "u3", "flagged": False, "error": "decode"})
    _write(lake, "eval_decontamination", "shard_a", RESULT_FILE, rows, RESULT_SCHEMA)


def _near_duplicates(lake) -> None:
    for partition, drops in DROPS.items():
        rows = [
            {"uid": u, "shard": partition, "rule": r, "duplicate_of": d, "distance": 1.0}
            for u, r, d in drops
        ]
        _write(lake, "near_duplicates", partition, "near_duplicates.parquet", rows, DROPS_SCHEMA)


def test_no_table_no_rates(lake, truth_path):
    _decontamination(lake)
    assert image_duplicate_rates(lake.root, truth_path) is None


def _hashes(lake) -> None:
    """u1, the other image dropped, was served the same bytes as s2, the one it names."""
    sha = {u: f"{i:064x}" for i, u in enumerate(DECODED)} | {"u1": f"{DECODED.index('s2'):064x}"}
    rows = [{"uid": u, "sha256": v} for u, v in sha.items()]
    schema = pa.schema([("uid", pa.string()), ("sha256", pa.string())])
    _write(lake, "image_hashes", "shard_a", "hashes.parquet", rows, schema)


def test_rates_per_rule_and_for_any_rule(lake, truth_path):
    _decontamination(lake)
    _near_duplicates(lake)
    _hashes(lake)
    rates = image_duplicate_rates(lake.root, truth_path)
    assert list(rates) == ["phash", "semantic", "all"]
    others = {"planted": 4, "others": 6, "on": True}  # s1-s4, u1, u2 (u3 not decoded)
    same = {"other_drops_same_bytes": 1}  # u1 names s2, whose bytes it was served
    assert rates["phash"] == {
        **others,
        "found": 2,
        "found_with_right_source": 1,
        "recall": 0.5,
        "other_drops": 1,
        "false_drop_rate": 1 / 6,
        **same,
    }
    assert rates["semantic"] == {
        **others,
        "other_drops_same_bytes": 0,
        "found": 2,
        "found_with_right_source": 2,
        "recall": 0.5,
        "other_drops": 0,
        "false_drop_rate": 0.0,
    }
    assert rates["all"] == {
        **others,
        "found": 3,
        "found_with_right_source": 2,
        "recall": 0.75,
        "other_drops": 1,
        "false_drop_rate": 1 / 6,
        **same,
    }
    assert image_duplicate_lines(rates)[-1].endswith(
        "16.67% of 6 others dropped (1 of them the same bytes as the image they name)"
    )


def test_a_world_without_planted_copies_has_no_recall(lake, tmp_path):
    """A truth written before format 3 names no copies: every drop is a false one."""
    _decontamination(lake)
    _near_duplicates(lake)
    old = tmp_path / "old_truth.json"
    old.write_text(json.dumps({"eval_near_duplicates": []}))
    rates = image_duplicate_rates(lake.root, old)["all"]
    assert rates["planted"] == 0 and math.isnan(rates["recall"])
    assert rates["other_drops"] == 4 and rates["others"] == len(DECODED)
    assert image_duplicate_lines({"all": rates})[0].startswith(
        "image near-duplicates (any rule): none planted, 40.00% of 10 others dropped"
    )


def test_the_demo_command_prints_one_line_per_rule(lake, truth_path, capsys):
    _decontamination(lake)
    _report_truth({"quarantine": {}, "dedup": {}}, str(lake.root), truth_path)
    assert "image near-duplicates" not in capsys.readouterr().out  # no table yet
    _near_duplicates(lake)
    _report_truth({"quarantine": {}, "dedup": {}}, str(lake.root), truth_path)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "demo ground truth: all counts match"
    assert lines[1:] == [
        "image near-duplicates (phash): 50.0% of 4 planted dropped (25.0% naming their source), "
        "16.67% of 6 others dropped",
        "image near-duplicates (semantic): 50.0% of 4 planted dropped (50.0% naming their "
        "source), 0.00% of 6 others dropped",
        "image near-duplicates (any rule): 75.0% of 4 planted dropped (50.0% naming their "
        "source), 16.67% of 6 others dropped",
    ]
    settings = lake.root / "near_duplicates" / "settings.json"
    settings.write_text(json.dumps({"rules": ["phash"]}))  # the semantic rule was off
    _report_truth({"quarantine": {}, "dedup": {}}, str(lake.root), truth_path)
    semantic = capsys.readouterr().out.splitlines()[2]
    assert semantic == "image near-duplicates (semantic): rule off (curation settings)"


#: the world's takedown targets: t5's phash entry is never matched to it
TARGETS = [("t1", "uid"), ("t2", "url"), ("t3", "sha256"), ("t4", "phash"), ("t5", "phash")]
REMOVED = {  # partition -> (uid, entry, matched_on); shard_c matched nothing
    "shard_a": [("t1", 1, "uid"), ("t2", 2, "url"), ("t3", 3, "sha256_metadata")],
    "shard_b": [("t3", 3, "sha256_image"), ("t4", 5, "phash"), ("o1", 4, "phash")],
    "shard_c": [],
}


def _takedown_truth(tmp_path, entries) -> Path:
    path = tmp_path / "takedown_truth.json"
    doc = {"expected": {"quarantine": {}, "dedup": {}}, "eval_near_duplicates": []}
    path.write_text(json.dumps({**doc, **({"takedown": entries} if entries else {})}))
    return path


def _removals(lake) -> None:
    for partition, matches in REMOVED.items():
        rows = [
            {"uid": u, "shard": partition, "row_idx": k, "list": "requests", "entry": e}
            | {"kind": dict(TARGETS).get(u, "phash"), "matched_on": m, "distance": 0}
            for k, (u, e, m) in enumerate(matches)
        ]
        _write(lake, REMOVALS_ASSET, partition, REMOVALS_FILE, rows, REMOVALS_SCHEMA)


@pytest.fixture
def takedown_truth(tmp_path):
    entries = [
        {"entry": n, "kind": k, "uid": u, "shard": "shard_a", "row": n, "reference": f"r{n}"}
        for n, (u, k) in enumerate(TARGETS, start=1)
    ]
    return _takedown_truth(tmp_path, {"list": "requests", "entries": entries})


def test_no_removals_no_rates(lake, takedown_truth):
    assert removal_rates(lake.root, takedown_truth) is None
    assert removal_lines(None) == []


def test_removal_rates_against_the_planted_requests(lake, takedown_truth, capsys):
    """t4 is removed by t5's entry only (found, not by its own entry); o1 is no target."""
    _removals(lake)
    rates = removal_rates(lake.root, takedown_truth)
    assert rates == {
        "planted": 5,
        "found": 4,
        "found_by_kind": {"uid": (1, 1), "url": (1, 1), "sha256": (1, 1), "phash": (1, 2)},
        "right_entry": 3,
        "other_removed": 1,
        "other_matched_on": {"phash": 1},
        "target_matched_on": {"phash": 1, "sha256_image": 1, "sha256_metadata": 1}
        | {"uid": 1, "url": 1},
    }
    want = (
        "takedown requests: 80.0% of 5 planted rows removed (uid 1/1, url 1/1, sha256 1/1, "
        "phash 1/2), 1 by another entry only, 1 other row removed (pHash neighbours)"
    )
    assert removal_lines(rates) == [want]
    _report_truth({"quarantine": {}, "dedup": {}}, str(lake.root), takedown_truth)
    assert capsys.readouterr().out.splitlines()[-1] == want


def test_every_request_found_by_its_own_entry(lake, tmp_path):
    entries = [
        {"entry": n, "kind": k, "uid": u, "shard": "shard_a", "row": n, "reference": f"r{n}"}
        for n, (u, k) in enumerate(TARGETS[:3], start=1)
    ]
    truth = _takedown_truth(tmp_path, {"list": "requests", "entries": entries})
    _removals(lake)
    rates = removal_rates(lake.root, truth)
    assert (rates["found"], rates["right_entry"], rates["other_removed"]) == (3, 3, 2)
    assert removal_lines(rates) == [
        "takedown requests: 100.0% of 3 planted rows removed (uid 1/1, url 1/1, sha256 1/1), "
        "2 other rows removed (pHash neighbours)"
    ]


def test_a_world_without_requests_counts_every_removal_as_other(lake, tmp_path):
    """A truth written before format 4 plants no requests."""
    _removals(lake)
    rates = removal_rates(lake.root, _takedown_truth(tmp_path, None))
    assert rates["planted"] == rates["found"] == 0 and rates["found_by_kind"] == {}
    assert removal_lines(rates) == [
        "takedown requests: none planted, 5 other rows removed "
        "(pHash neighbours, same image bytes, same metadata sha256, same URL, same uid)"
    ]
