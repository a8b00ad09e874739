"""The demo world ages: ``age_world(root)`` moves a written world from epoch 1 to epoch 2.

Grain: one aged row per picked pool row, at most one aging kind each. Per shard, exactly
``problem_count(rate, rows_per_shard)`` rows of each kind (defaults AGING_RATES):

* ``dead``: the URL path now answers 404;
* ``reencoded``: the same picture re-encoded (JPEG/WebP at a lower quality, PNG at another
  compression level): new bytes and sha256, ``imagehash.phash`` within REENCODE_MAX_BITS bits;
* ``replaced``: a different picture of the same size and format, phash more than
  REPLACE_MIN_BITS bits away.

Why: pool health re-fetches downloaded URLs and measures link rot and hash drift; the truth must
say which rows rotted and how. Only rows nothing else in the truth depends on are picked: rows
whose download succeeds (route ``ok``, no headers) with no metadata problem, that no metadata
duplicate copies, with no content problem or opt-out signal, that no near-duplicate copies, no
takedown target, and whose URL path and uid no other row shares.

Deterministic from the world's seed (its own SeedSequence stream, so nothing the world drew
changes). New bodies go under ``images/epoch2/`` (epoch-1 files stay as they were); each aged
path's route gains ``epochs: {"2": route}`` (routes.json); the truth gains ``aging`` (truth.py)
and then ``epoch.json`` (server.EPOCH_FILE) is written, atomically and last: the running server
follows it without a restart. Aging an aged world again is a no-op returning its record; asking
an aged world for an earlier epoch is refused (no going back: rewrite the world instead).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import imagehash
import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from poolsieve.lake import write_bytes_atomic
from poolsieve_demo.docroot import ROUTES_VERSION
from poolsieve_demo.problems import problem_count
from poolsieve_demo.render import FORMATS, encode, render
from poolsieve_demo.server import EPOCH_FILE, read_epoch
from poolsieve_demo.specs import sample_spec
from poolsieve_demo.truth import AGING_KINDS, TRUTH_FORMAT, aging_of
from poolsieve_demo.world import TRUTH_FILE

#: share of each shard's rows aged with each kind (see problem_count)
AGING_RATES: dict[str, float] = {"dead": 0.03, "reencoded": 0.02, "replaced": 0.02}
AGED_EPOCH = 2  # the one epoch a world can age to
REENCODE_MAX_BITS = 4  # a re-encoded picture's phash is at most this far from the original's
REPLACE_MIN_BITS = 16  # a replacement's phash is more than this far
REPLACE_DRAWS = 8  # replacement pictures drawn per row before the row is passed over
#: the SeedSequence spawn key's first element for aging (world.py spawns children 0..3)
AGING_STREAM = 4
#: PIL format -> the re-encoding's save options (render.encode: JPEG 90, PNG 1, WEBP 80/method 0)
REENCODE = {
    "JPEG": {"quality": 70},
    "PNG": {"compress_level": 9},
    "WEBP": {"quality": 55, "method": 4},
}
#: the truth format aging needs (5: opt-outs planted; older worlds are rewritten, not aged)
MIN_TRUTH_FORMAT = 5


@dataclass(frozen=True)
class _Row:
    """One candidate pool row: where it is and what its URL path serves at epoch 1."""

    shard: str
    row: int
    uid: str
    url: str
    path: str
    route: dict
    data: bytes


@dataclass(frozen=True)
class _Aged:
    """One aged row: its truth entry, the new body (None: dead) and its epoch route."""

    entry: dict
    data: bytes | None
    route: dict


def current_epoch(root: str | Path) -> int:
    """The epoch the world at ``root`` serves (its epoch.json; 1 when never aged)."""
    return read_epoch(Path(root))


def resolve_aging_rates(rates: dict[str, float] | None) -> dict[str, float]:
    """AGING_RATES overridden by ``rates``; unknown kinds and rates outside [0, 1] are refused."""
    resolved = {**AGING_RATES, **(rates or {})}
    unknown = sorted(set(resolved) - set(AGING_KINDS))
    if unknown or any(not 0 <= r <= 1 for r in resolved.values()):
        raise ValueError(
            f"aging rates: unknown kinds {unknown} or values outside [0, 1]: {resolved}"
        )
    return resolved


def age_world(root: str | Path, epoch: int = AGED_EPOCH, rates: dict | None = None) -> dict:
    """Move the world at ``root`` to ``epoch`` and return the truth's ``aging`` record (see the
    module doc). ``epoch`` equal to the world's: a no-op returning its record (finishing an
    interrupted aging's epoch.json); earlier: ValueError; only 1 and 2 exist."""
    root = Path(root)
    truth = json.loads((root / TRUTH_FILE).read_text())
    if truth.get("version", 0) < MIN_TRUTH_FORMAT:
        raise ValueError(
            f"{root / TRUTH_FILE}: truth format {truth.get('version')} is older than "
            f"{MIN_TRUTH_FORMAT}; rewrite the world before aging it"
        )
    record = aging_of(truth)
    if epoch < record["epoch"]:
        raise ValueError(
            f"{root}: the world is at epoch {record['epoch']}; aging never goes back to "
            f"epoch {epoch} (rewrite the world for a fresh epoch 1)"
        )
    if epoch not in (record["epoch"], AGED_EPOCH):
        raise ValueError(f"{root}: epoch {epoch} does not exist (epochs: 1, {AGED_EPOCH})")
    if epoch == record["epoch"]:
        return _already(root, record, rates)
    record = _age(root, truth, resolve_aging_rates(rates), epoch)
    _write_epoch(root, epoch)
    return record


def serve_epoch(root: str | Path, epoch: int) -> None:
    """Make the world's server answer as at ``epoch`` (1, or the epoch the world was aged to)
    without changing what its truth says happened: the demo serves epoch 1 while it downloads,
    so the downloads match the truth's expectations, and :func:`age_world` serves the aged
    epoch again."""
    root = Path(root)
    aged = aging_of(json.loads((root / TRUTH_FILE).read_text()))["epoch"]
    if epoch not in (1, aged):
        raise ValueError(f"{root}: the world was aged to epoch {aged}; it serves 1 or {aged}")
    if current_epoch(root) != epoch:
        _write_epoch(root, epoch)


def _write_epoch(root: Path, epoch: int) -> None:
    write_bytes_atomic(root / EPOCH_FILE, (json.dumps({"epoch": epoch}) + "\n").encode())


def _already(root: Path, record: dict, rates: dict | None) -> dict:
    """The record of a world already at the asked epoch (its epoch.json written if missing)."""
    if record["epoch"] > 1 and rates is not None and resolve_aging_rates(rates) != record["rates"]:
        raise ValueError(
            f"{root}: already aged to epoch {record['epoch']} at rates {record['rates']}, "
            f"not {resolve_aging_rates(rates)}"
        )
    if current_epoch(root) != record["epoch"]:
        _write_epoch(root, record["epoch"])
    return record


def _age(root: Path, truth: dict, rates: dict[str, float], epoch: int) -> dict:
    """Plan, then write the new bodies, routes.json and the truth (epoch.json: the caller)."""
    document = json.loads((root / "routes.json").read_text())
    aged = plan_aging(root, truth, document["routes"], rates, epoch)
    for item in aged:
        if item.data is not None:
            write_bytes_atomic(root / "images" / item.entry["file"], item.data)
        path = urlsplit(item.entry["url"]).path
        document["routes"][path]["epochs"] = {str(epoch): item.route}
    document["version"] = ROUTES_VERSION
    routes_text = json.dumps(document, indent=1, sort_keys=True) + "\n"
    write_bytes_atomic(root / "routes.json", routes_text.encode())
    entries = [item.entry for item in aged]
    record = {
        "epoch": epoch,
        "rates": rates,
        **{k: [e["uid"] for e in entries if e["kind"] == k] for k in AGING_KINDS},
        "rows": entries,
    }
    truth = {**truth, "aging": record, "version": TRUTH_FORMAT}
    truth_text = json.dumps(truth, indent=1, sort_keys=True) + "\n"
    write_bytes_atomic(root / TRUTH_FILE, truth_text.encode())
    return json.loads(json.dumps(record))  # exactly as a reader of the truth will see it


def plan_aging(
    root: Path, truth: dict, routes: dict[str, dict], rates: dict[str, float], epoch: int
) -> list[_Aged]:
    """Every aged row in pool order ((shard, row)), nothing written."""
    counts = {k: problem_count(rates[k], truth["params"]["rows_per_shard"]) for k in AGING_KINDS}
    pool = {
        name: pq.read_table(root / "source" / name, columns=["uid", "url"]).to_pylist()
        for name in truth["shards"]
    }
    eligible = _eligible(truth, pool)
    aged = []
    for s, name in enumerate(truth["shards"]):
        rows = [i for i, _ in enumerate(pool[name]) if (name, i) in eligible]
        seq = np.random.SeedSequence(truth["seed"], spawn_key=(AGING_STREAM, epoch, s))
        rng = np.random.default_rng(seq)
        order = [rows[k] for k in rng.permutation(len(rows)).tolist()]
        candidates = (_candidate(root, name, i, pool[name][i], routes) for i in order)
        aged += _age_shard(name, candidates, counts, rng, epoch)
    return sorted(aged, key=lambda a: (a.entry["shard"], a.entry["row"]))


def _eligible(truth: dict, pool: dict[str, list[dict]]) -> set[tuple[str, int]]:
    """(shard, row) of the rows no other part of the truth names (see the module doc), whose
    URL path and uid are the row's alone."""
    taken = set()
    for p in truth.get("planted", []):
        taken.add((p["shard"], p["row"]))
        if p.get("original"):
            taken.add((p["original"]["shard"], p["original"]["row"]))
    for p in truth.get("problems", []):
        taken.add((p["shard"], p["row"]))
        if "source_shard" in p:
            taken.add((p["source_shard"], p["source_row"]))
    for key in ("eval_near_duplicates", "image_near_duplicates"):
        taken |= {(d["shard"], d["row"]) for d in truth.get(key, [])}
    taken |= {(e["shard"], e["row"]) for e in (truth.get("takedown") or {}).get("entries", [])}
    rows = [(name, i, r) for name, shard in pool.items() for i, r in enumerate(shard)]
    paths = Counter(_url_path(r["url"]) for _, _, r in rows)
    uids = Counter(r["uid"] for _, _, r in rows)
    return {
        (name, i)
        for name, i, r in rows
        if (name, i) not in taken
        and (path := _url_path(r["url"])) is not None
        and paths[path] == 1
        and uids[r["uid"]] == 1
    }


def _url_path(url: str | None) -> str | None:
    try:
        return urlsplit(url).path if url and "://" in url else None
    except ValueError:
        return None


def _candidate(root: Path, shard: str, i: int, row: dict, routes: dict) -> _Row | None:
    """The row as a candidate, or None when its path is no plain image route with a file."""
    path = _url_path(row["url"])
    route = routes.get(path)
    if route is None or route["kind"] != "ok" or "headers" in route or "epochs" in route:
        return None
    file = root / "images" / route["file"]
    if not file.is_file():
        return None
    return _Row(shard, i, row["uid"], row["url"], path, route, file.read_bytes())


def _age_shard(
    shard: str, candidates, counts: dict[str, int], rng: np.random.Generator, epoch: int
) -> list[_Aged]:
    """The shard's aged rows: each kind takes the next candidates it can age, in turn."""
    aged = []
    for kind in AGING_KINDS:
        made = 0
        while made < counts[kind]:
            row = next(candidates, False)
            if row is False:
                raise ValueError(
                    f"{shard}: too few clean rows to age {counts[kind]} as {kind!r} "
                    f"({made} aged); lower the aging rates"
                )
            item = None if row is None else MAKERS[kind](row, rng, epoch)
            if item is not None:
                aged.append(item)
                made += 1
    return aged


def _phash(data: bytes) -> imagehash.ImageHash:
    return imagehash.phash(Image.open(io.BytesIO(data)))


def _entry(row: _Row, kind: str, data: bytes | None, epoch: int) -> dict:
    """The truth's row for ``row`` aged as ``kind`` to ``data`` (None: dead)."""
    after = None if data is None else hashlib.sha256(data).hexdigest()
    distance = None if data is None else int(_phash(row.data) - _phash(data))
    return {
        "uid": row.uid,
        "shard": row.shard,
        "row": row.row,
        "url": row.url,
        "kind": kind,
        "sha256_before": hashlib.sha256(row.data).hexdigest(),
        "sha256_after": after,
        "phash_distance": distance,
        "file": None if data is None else f"epoch{epoch}/{row.route['file']}",
    }


def _dead(row: _Row, rng: np.random.Generator, epoch: int) -> _Aged:
    return _Aged(_entry(row, "dead", None, epoch), None, {"kind": "404"})


def _served(row: _Row, kind: str, data: bytes, epoch: int) -> _Aged:
    entry = _entry(row, kind, data, epoch)
    return _Aged(entry, data, {**row.route, "file": entry["file"]})


def _reencoded(row: _Row, rng: np.random.Generator, epoch: int) -> _Aged | None:
    """The same picture re-encoded (None when the bytes or the phash do not qualify)."""
    image = Image.open(io.BytesIO(row.data))
    out = io.BytesIO()
    image.save(out, image.format, **REENCODE[image.format])
    data = out.getvalue()
    if data == row.data:
        return None
    item = _served(row, "reencoded", data, epoch)
    return item if item.entry["phash_distance"] <= REENCODE_MAX_BITS else None


def _replaced(row: _Row, rng: np.random.Generator, epoch: int) -> _Aged | None:
    """A different picture of the row's size and format, drawn until its phash is far."""
    size = Image.open(io.BytesIO(row.data)).size
    ext = Path(row.path).suffix.lstrip(".")
    if ext not in FORMATS:
        return None
    before = _phash(row.data)
    for _ in range(REPLACE_DRAWS):
        data = encode(render(sample_spec(rng, size)), ext)
        if int(before - _phash(data)) > REPLACE_MIN_BITS:
            return _served(row, "replaced", data, epoch)
    return None


MAKERS: dict[str, Callable] = {"dead": _dead, "reencoded": _reencoded, "replaced": _replaced}
