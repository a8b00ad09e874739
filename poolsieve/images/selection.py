"""Metadata mode's "downloading follows selection": which url_dedup-kept uids to download.

``build_selection`` writes ``download_selection/selection.parquet`` (shard, row_idx, uid,
strategies): the union of the uids the chosen strategies' subsets keep, or every kept row, each
with the strategies that keep it. ``selected_uids`` reads one shard's part of it back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve.curate.strategies import pairs_to_uids, read_subset_npy
from poolsieve.images.status import STATUS_FILE
from poolsieve.lake import Lake, commit, tmp_path_for
from poolsieve.sqlrunner import SqlProject

SELECTION_ASSET = "download_selection"
SELECTION_FILE = "selection.parquet"
SELECTION_MODELS = ["download_selection"]


@dataclass
class SelectionResult:
    path: Path
    selection: str  # selected or all
    strategies: list[str]
    per_strategy: dict[str, int]  # uids each strategy's subset keeps
    selected: int  # rows of selection.parquet (the union, or every kept row)
    per_shard: dict[str, int] = field(default_factory=dict)
    #: subset uids that no url_dedup-kept row holds (a subset older than the dedup decisions)
    unmatched: list[str] = field(default_factory=list)
    digest: str = ""  # sha256 of the (shard, uid) list: what the downloads depend on


def selection_path(lake: Lake) -> Path:
    return lake.path(SELECTION_ASSET, SELECTION_FILE)


def subset_uids(lake: Lake, strategies: list[str]) -> pa.Table:
    """(uid, strategy): every uid each strategy's subset.npy keeps (a missing one: clear error)."""
    uids, names = [], []
    for name in strategies:
        npy = lake.partition_dir("subset", name) / "subset.npy"
        if not npy.is_file():
            raise FileNotFoundError(
                f"no subset for strategy {name!r} ({npy}): materialize it first"
            )
        kept = pairs_to_uids(read_subset_npy(npy))
        uids += kept
        names += [name] * len(kept)
    return pa.table({"uid": pa.array(uids, pa.string()), "strategy": pa.array(names, pa.string())})


def build_selection(
    conn: duckdb.DuckDBPyConnection,
    lake: Lake,
    selection: str,
    strategies: list[str],
    project: SqlProject | None = None,
) -> SelectionResult:
    """Write selection.parquet for ``selection`` (selected: the union of ``strategies``' kept
    uids; all: every url_dedup-kept row) and count what it holds."""
    if selection not in ("selected", "all"):
        raise ValueError(f"download_selection {selection!r}: nothing to select (selected or all)")
    decisions = lake.asset_files("url_dedup", "decisions.parquet")
    if not decisions:
        raise FileNotFoundError(
            f"no url_dedup decisions in {lake.location}/url_dedup: ingest first"
        )
    chosen = subset_uids(lake, strategies)
    conn.read_parquet(decisions).create_view("selection_decisions", replace=True)
    conn.register("selection_subset_uids", chosen)
    sources = {"decisions": "selection_decisions", "subset_uids": "selection_subset_uids"}
    (project or SqlProject()).run(
        conn, SELECTION_MODELS, sources, {"everything": selection == "all"}
    )
    table = conn.table("download_selection").to_arrow_table()
    path = _write(table, selection_path(lake))
    selected = set(table.column("uid").to_pylist())
    counts = conn.execute(
        'SELECT shard, count(*) FROM "download_selection" GROUP BY shard ORDER BY shard'
    ).fetchall()
    return SelectionResult(
        path=path,
        selection=selection,
        strategies=list(strategies),
        per_strategy={n: chosen.column("strategy").to_pylist().count(n) for n in strategies},
        selected=table.num_rows,
        per_shard=dict(counts),
        unmatched=sorted(set(chosen.column("uid").to_pylist()) - selected),
        digest=_digest(table),
    )


def _digest(table: pa.Table) -> str:
    digest = hashlib.sha256()
    shards, uids = table.column("shard").to_pylist(), table.column("uid").to_pylist()
    for shard, uid in zip(shards, uids, strict=True):
        digest.update(f"{shard}\0{uid}\n".encode())
    return digest.hexdigest()


def _write(table: pa.Table, final: Path) -> Path:
    tmp = tmp_path_for(final)
    pq.write_table(table, tmp)
    commit(tmp, final)
    return final


def selected_uids(lake: Lake, shard: str) -> set[str]:
    """The uids of ``shard`` the selection downloads (a missing selection: clear error)."""
    path = selection_path(lake)
    if not path.is_file():
        raise FileNotFoundError(f"no download selection ({path}): materialize download_selection")
    table = pq.read_table(path, columns=["uid"], filters=[("shard", "=", shard)])
    return set(table.column("uid").to_pylist())


def missing_reasons(lake: Lake, shards: list[str], missing: set[str]) -> dict[str, int]:
    """Why each of ``missing`` has no image, counted: its download's error category in
    selected_images' status files, or ``not_downloaded`` when no status row holds it."""
    counts: dict[str, int] = {}
    found: set[str] = set()
    for shard in shards:
        path = lake.partition_dir("selected_images", shard) / STATUS_FILE
        if not path.is_file() or not missing:
            continue
        status = pq.read_table(path, columns=["uid", "status", "error_category"]).to_pylist()
        for row in status:
            if row["uid"] in missing and row["uid"] not in found:
                found.add(row["uid"])
                reason = row["error_category"] or row["status"]
                counts[reason] = counts.get(reason, 0) + 1
    if len(missing) > len(found):
        counts["not_downloaded"] = len(missing) - len(found)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
