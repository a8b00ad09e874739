"""A lake's results against the demo world's truth: counts that differ, and how well
eval_decontamination found the planted eval near-duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np

from poolsieve.images.decontamination import RESULT_FILE as DECONTAM_FILE
from poolsieve.images.pixel_features import DetectionRates, detection_rates
from poolsieve.lake import Lake


def compare_with_truth(counts: dict, truth_path: Path) -> dict:
    """Counts (poolsieve.audit.report.lake_counts) that differ from the truth ({} when all match).

    Compares quarantine and dedup counts, and download outcomes when images were downloaded."""
    truth = json.loads(Path(truth_path).read_text())
    expected = {part: truth["expected"][part] for part in ("quarantine", "dedup")}
    if "download" in counts and "download" in truth:
        expected["download"] = truth["download"]["expected"]
    diffs = {}
    for part, want in expected.items():
        want = {k: v for k, v in want.items() if v}
        if counts[part] != want:
            diffs[part] = {"expected": want, "got": counts[part]}
    return diffs


def near_duplicate_rates(root: Path, truth_path: Path) -> DetectionRates:
    """Recall and false-flag rate of eval_decontamination against the planted copies."""
    planted = {d["uid"] for d in json.loads(Path(truth_path).read_text())["eval_near_duplicates"]}
    conn = duckdb.connect()
    rows = conn.execute(
        "SELECT uid, flagged FROM read_parquet($p) WHERE error IS NULL",
        {"p": Lake(root).asset_files("eval_decontamination", DECONTAM_FILE)},
    ).fetchall()
    flags = np.array([f for _, f in rows], dtype=bool)
    truth = np.array([u in planted for u, _ in rows], dtype=bool)
    return detection_rates(flags, truth)
