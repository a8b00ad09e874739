"""leaderboard's logic: one row per strategy (subset size, every metric, the average) + plots.

Reads ``<lake>/subset/<s>/summary.json`` and ``<lake>/evaluation/<s>/metrics.json`` of every
strategy that has both; writes ``<lake>/leaderboard/leaderboard.parquet``, ``leaderboard.md`` and
two PNGs: accuracy vs subset size, and rows dropped per reason per filter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.lake import Lake, atomic_file, write_bytes_atomic
from poolsieve.plots import pyplot, save_png

HEADLINE = [
    "classification/top1",
    "classification/mean_per_class_recall",
    "retrieval/mean_recall@1",
    "retrieval/mean_recall@5",
    "average",
]


@dataclass(frozen=True)
class Leaderboard:
    rows: list[dict]
    files: dict[str, Path]
    missing: list[str]  # strategies with no evaluation yet

    def markdown(self) -> str:
        return to_markdown(self.rows)


def collect(lake: Lake, strategies: list[str]) -> tuple[list[dict], list[str]]:
    rows, missing = [], []
    for name in strategies:
        summary = lake.partition_dir("subset", name) / "summary.json"
        metrics = lake.partition_dir("evaluation", name) / "metrics.json"
        if not (summary.is_file() and metrics.is_file()):
            missing.append(name)
            continue
        s, m = json.loads(summary.read_text()), json.loads(metrics.read_text())
        metrics = {k: m["metrics"].get(k) for k in HEADLINE} | m["metrics"]
        rows.append(
            {
                "strategy": name,
                "subset_size": s["kept"],
                "samples_seen": m["samples_seen"],
                "seed": m["seed"],
                "dropped": s["reasons"],
                "note": m.get("skipped", ""),
                **metrics,
            }
        )
    rows.sort(key=lambda r: -(r["average"] if r["average"] is not None else -1.0))
    return rows, missing


def to_markdown(rows: list[dict]) -> str:
    head = "| strategy | subset size | samples seen | " + " | ".join(HEADLINE) + " |"
    lines = [head, "|" + "---|" * (3 + len(HEADLINE))]
    for r in rows:
        values = " | ".join("—" if r[k] is None else f"{r[k]:.3f}" for k in HEADLINE)
        lines.append(f"| {r['strategy']} | {r['subset_size']} | {r['samples_seen']} | {values} |")
    return "\n".join(lines)


def _plots(rows: list[dict], folder: Path) -> dict[str, Path]:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in (r for r in rows if r["classification/top1"] is not None):
        ax.scatter(r["subset_size"], r["classification/top1"], label=r["strategy"])
        ax.annotate(r["strategy"], (r["subset_size"], r["classification/top1"]), fontsize=7)
    ax.set_xlabel("subset size (samples)")
    ax.set_ylabel("zero-shot top-1")
    ax.set_title("accuracy vs subset size (same samples seen)")
    accuracy = save_png(fig, folder / "accuracy_vs_size.png")
    reasons = sorted({k for r in rows for k in r["dropped"]})
    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = [0] * len(rows)
    for reason in reasons:
        heights = [r["dropped"].get(reason, 0) for r in rows]
        ax.bar([r["strategy"] for r in rows], heights, bottom=bottom, label=reason)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("rows dropped")
    ax.legend(fontsize=6)
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    drops = save_png(fig, folder / "drops_per_reason.png")
    return {"accuracy_plot": accuracy, "drops_plot": drops}


def build_leaderboard(lake: Lake, strategies: list[str]) -> Leaderboard:
    rows, missing = collect(lake, strategies)
    folder = lake.path("leaderboard")
    folder.mkdir(parents=True, exist_ok=True)
    flat = [{k: (json.dumps(v) if k == "dropped" else v) for k, v in r.items()} for r in rows]
    table = folder / "leaderboard.parquet"
    if flat:
        with atomic_file(table) as tmp:
            pq.write_table(pa.Table.from_pylist(flat), tmp)
    write_bytes_atomic(folder / "leaderboard.md", (to_markdown(rows) + "\n").encode())
    files = {"table": table, "markdown": folder / "leaderboard.md"}
    if rows:
        files |= _plots(rows, folder)
    return Leaderboard(rows, files, missing)
