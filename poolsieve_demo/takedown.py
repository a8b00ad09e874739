"""Planted takedown requests: ``<world>/takedown/requests.csv``, one takedown list (the format
of poolsieve/curate/takedown.py) whose entries each name one clean pool row.

Grain: one entry per target row. Per shard, exactly ``config.takedown_per_kind`` entries of each
kind, each on its own row:

* ``uid``: the row's uid;
* ``url``: the row's URL changed only in ways normalize_url erases (upper-case scheme and host,
  utm_ tracking parameters), checked against the SQL macro when written;
* ``sha256``: the sha256 of the bytes the server serves for the row (the row's metadata sha256
  is the same: world._sync_metadata), so it matches on both;
* ``phash``: ``str(imagehash.phash(image))`` of the served image.

Targets are base rows with no planted problem that copy nothing and that nothing copies (no
metadata duplicate's original, no ``near_duplicate_image`` source), so each downloads and no
other row shares its uid, URL or bytes. A pHash entry may still take a near-identical picture
of another row: the demo summary measures that, the world does not promise it away. Entries are
numbered in pool order; each has a ``reference`` ``demo-req-NNNN`` and a ``reason``.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from poolsieve_demo.metadata_problems import verify_urls
from poolsieve_demo.rows import PoolBuilder, shard_name

FOLDER = "takedown"
LIST_NAME = "requests"
LIST_FILE = f"{LIST_NAME}.csv"
#: what an entry names, in the order each shard's kinds are drawn
KINDS = ("uid", "url", "sha256", "phash")
COLUMNS = (*KINDS, "reason", "reference")
REASONS = {
    "uid": "copyright: the rights holder's request",
    "url": "privacy: a person in the image",
    "sha256": "copyright: an exact copy of a listed work",
    "phash": "privacy: any copy of this picture",
}


def plant_takedown(
    rng: np.random.Generator,
    b: PoolBuilder,
    problems: list[dict],
    images_dir: Path,
    folder: Path,
    per_kind: int,
) -> dict:
    """Draw the targets, write ``folder/requests.csv`` (a header only when ``per_kind`` is 0)
    and return the truth's ``takedown`` part: {"list", "entries": [{entry, kind, uid, shard,
    row, reference}]}. ``images_dir``: the docroot, already written."""
    targets = []
    for s, rows in enumerate(_candidates(b, problems)):
        targets += _draw(rng, s, rows, per_kind)
    entries, records, urls = [], [], []
    for number, (s, i, kind) in enumerate(sorted(targets), start=1):
        row, reference = b.shards[s][i], f"demo-req-{number:04d}"
        value = _value(kind, row, images_dir, reference)
        records.append({kind: value, "reason": REASONS[kind], "reference": reference})
        if kind == "url":
            urls.append(("takedown_url", value, row["url"]))
        entries.append(
            {
                "entry": number,
                "kind": kind,
                "uid": row["uid"],
                "shard": shard_name(s),
                "row": i,
                "reference": reference,
            }
        )
    verify_urls(urls, [])  # each url entry normalizes like its target's URL (the SQL macro)
    _write_list(folder / LIST_FILE, records)
    return {"list": LIST_NAME, "entries": entries}


def _candidates(b: PoolBuilder, problems: list[dict]) -> list[list[int]]:
    """Per shard, the base rows a takedown may target (see the module doc), in row order."""
    taken = {(p["shard"], p["row"]) for p in problems}
    taken |= {(p["source_shard"], p["source_row"]) for p in problems if "source_shard" in p}
    taken |= {(o["shard"], o["row"]) for p in b.planted if (o := p["original"]) is not None}
    per_shard: list[list[int]] = [[] for _ in b.shards]
    for s, i in b.base:
        asset = b.assets[b.shards[s][i]["_path"]]
        if (shard_name(s), i) not in taken and asset.route == "ok" and not asset.is_copy:
            per_shard[s].append(i)
    return per_shard


def _draw(rng: np.random.Generator, s: int, rows: list[int], per_kind: int) -> list[tuple]:
    """(shard index, row, kind) for ``per_kind`` rows of each kind, drawn from ``rows``."""
    kinds = [k for k in KINDS for _ in range(per_kind)]
    if len(kinds) > len(rows):
        raise ValueError(
            f"shard {s}: {len(kinds)} takedown targets asked, only {len(rows)} clean rows left"
        )
    picked = rng.choice(rows, len(kinds), replace=False).tolist() if kinds else []
    return list(zip([s] * len(kinds), picked, rng.permutation(kinds).tolist(), strict=True))


def _value(kind: str, row: dict, images_dir: Path, token: str) -> str:
    """What the entry of ``kind`` says of ``row`` (its served image read from the docroot)."""
    if kind == "uid":
        return row["uid"]
    if kind == "url":
        return url_entry(row["url"], token)
    data = (images_dir / row["_path"].lstrip("/")).read_bytes()
    if kind == "sha256":
        return hashlib.sha256(data).hexdigest()
    return str(imagehash.phash(Image.open(io.BytesIO(data))))


def url_entry(url: str, token: str) -> str:
    """``url`` with its scheme and host in upper case and utm_ parameters added: a request as a
    person pastes it from a shared link; normalize_url gives ``url``'s normal form back."""
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    sep = "&" if "?" in path else "?"
    return f"{scheme.upper()}://{host.upper()}/{path}{sep}utm_source=takedown&utm_campaign={token}"


def _write_list(path: Path, records: list[dict]) -> None:
    """The list as CSV: a header, then one row per entry (unset cells empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
