"""The pool near-duplicate table against the truth (compare.image_duplicate_rates), and the lines
``poolsieve demo`` prints from it."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poolsieve.images.decontamination import RESULT_FILE, RESULT_SCHEMA
from poolsieve_demo.command import _report_truth
from poolsieve_demo.compare import image_duplicate_lines, image_duplicate_rates

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


def test_rates_per_rule_and_for_any_rule(lake, truth_path):
    _decontamination(lake)
    _near_duplicates(lake)
    rates = image_duplicate_rates(lake.root, truth_path)
    assert list(rates) == ["phash", "semantic", "all"]
    others = {"planted": 4, "others": 6, "on": True}  # s1-s4, u1, u2 (u3 not decoded)
    assert rates["phash"] == {
        **others,
        "found": 2,
        "found_with_right_source": 1,
        "recall": 0.5,
        "other_drops": 1,
        "false_drop_rate": 1 / 6,
    }
    assert rates["semantic"] == {
        **others,
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
    }


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
