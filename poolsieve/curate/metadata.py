"""DataComp's metadata mode: the ``.npz`` of embeddings beside each pool parquet, validated in place.

DataComp ships, beside every metadata parquet ``part-00001.parquet``, a ``part-00001.npz`` whose
arrays ``b32_img``, ``b32_txt``, ``l14_img``, ``l14_txt`` (float16, L2-normalized, one row per
parquet row, in the parquet's order) hold the OpenAI ViT-B/32 and ViT-L/14 embeddings behind the
parquet's ``clip_b32_similarity_score`` / ``clip_l14_similarity_score``. The file carries no uids,
so alignment is checked through those scores: row i's dot(img, txt) must equal the parquet's score
of row i within :data:`ALIGNMENT_TOLERANCE`. A missing file, a missing key, a row count that
differs from the parquet's, or a misaligned row fails the shard, naming the file (and the first
bad row).

The arrays are never copied into the lake (``npz.json`` records where the file is and its sha256)
and never loaded whole: an ``.npz`` is a zip, where ``np.load(mmap_mode=...)`` cannot map, so the
arrays are streamed from the zip member in row batches (memory: one batch of each key read).
"""

from __future__ import annotations

import contextlib
import json
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow.parquet as pq

from poolsieve.lake import Lake, file_sha256, upstream_file, write_json
from poolsieve.pool.sources import open_source

ASSET = "metadata_embeddings"
INFO_FILE = "npz.json"
DATACOMP_KEYS = ("b32_img", "b32_txt", "l14_img", "l14_txt")
#: img/txt pair prefix -> the pool_shard rows column holding the source's score of that pair
SCORE_COLUMNS = {"l14": "clip_l14_similarity_score", "b32": "clip_b32_similarity_score"}
#: |dot(img, txt) - score| allowed. Rounding both unit vectors to float16 moves the dot by at
#: most 7e-5 (d = 512 or 768, float32 sums; 2e-4 with float16 sums; measured over 100k random
#: pairs); 1e-2 leaves room for scores computed under fp16 autocast, while a row of another
#: sample differs by ~0.05 on real pools (scores spread over 0.1-0.45).
ALIGNMENT_TOLERANCE = 1e-2
BATCH_ROWS = 8192


class NpzError(ValueError):
    """The shard's .npz cannot be used: the message names the file and what is wrong."""


@dataclass(frozen=True)
class NpzInfo:
    """What metadata_embeddings records for one shard (``npz.json``)."""

    path: str  # the .npz: a local path or protocol://path
    sha256: str
    rows: int
    keys: list[str]
    dims: dict[str, int]
    size: int  # bytes; image_embeddings refuses a file whose size changed since
    pairs_checked: list[str]
    max_score_difference: float


def npz_location(source: str, shard: str) -> tuple[object, str, str]:
    """(filesystem, parquet path, expected .npz path) of ``shard`` in pool source ``source``."""
    fs, root = open_source(source)
    parquet = f"{root}/{shard}"
    stem = parquet[: -len(".parquet")] if parquet.endswith(".parquet") else parquet
    return fs, parquet, f"{stem}.npz"


# -- streaming the arrays of an .npz -------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool


def _read_header(handle) -> Member:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f"npy format version {version} is not supported (1.0 and 2.0 are)")
    return Member(tuple(shape), np.dtype(dtype), bool(fortran))


class NpzReader:
    """The arrays of one .npz (a zip of .npy files), read in row batches without loading them."""

    def __init__(self, zf: zipfile.ZipFile, label: str):
        self.zf, self.label = zf, label
        self.names = {n[: -len(".npy")]: n for n in zf.namelist() if n.endswith(".npy")}

    def member(self, key: str) -> Member:
        with self.zf.open(self.names[key]) as handle:
            return _read_header(handle)

    def batches(self, key: str, rows: int | None = None) -> Iterator[np.ndarray]:
        """Row batches of array ``key`` (first axis), in order (``rows``: BATCH_ROWS)."""
        rows = rows or BATCH_ROWS
        with self.zf.open(self.names[key]) as handle:
            info = _read_header(handle)
            if info.dtype.hasobject:
                raise NpzError(f"{self.label}: {key} holds Python objects, not numbers")
            if info.fortran and len(info.shape) > 1:  # rows are not contiguous: read it whole
                yield np.load(handle, allow_pickle=False)
                return
            per_row = int(np.prod(info.shape[1:], dtype=np.int64)) * info.dtype.itemsize
            for start in range(0, info.shape[0] if info.shape else 0, rows):
                count = min(rows, info.shape[0] - start)
                yield _read_rows(handle, info, count, per_row, self.label, key)


def _read_rows(handle, info: Member, count: int, per_row: int, label: str, key: str):
    data = handle.read(count * per_row)
    if len(data) != count * per_row:
        raise NpzError(f"{label}: {key} is truncated (fewer rows stored than its header says)")
    return np.frombuffer(data, info.dtype).reshape((count, *info.shape[1:]))


@contextlib.contextmanager
def open_npz(fs, path: str) -> Iterator[NpzReader]:
    """An NpzReader over ``path`` on ``fs``; NpzError when it is not a readable .npz."""
    with fs.open(path, "rb") as raw:
        try:
            zf = zipfile.ZipFile(raw)
        except zipfile.BadZipFile as err:
            raise NpzError(f"{path}: not a readable .npz ({err})") from None
        with zf:
            yield NpzReader(zf, path)


# -- validation ------------------------------------------------------------------------------------


def required_keys(cluster_embeddings: str) -> list[str]:
    """The keys a shard's .npz must hold: the clustered key and its text partner (alignment is
    checked on that pair); ``scorer`` clusters poolsieve's own embeddings, so L/14's pair."""
    prefix = cluster_embeddings.split("_")[0] if cluster_embeddings != "scorer" else "l14"
    if prefix not in SCORE_COLUMNS:
        raise ValueError(
            f"cluster_embeddings {cluster_embeddings!r}: use scorer, l14_img or b32_img"
        )
    return [f"{prefix}_img", f"{prefix}_txt"]


def validate_npz(lake: Lake, source: str, shard: str, keys: list[str]) -> NpzInfo:
    """Check the .npz beside ``shard``'s source parquet: ``keys`` present, every DataComp key
    with the parquet's row count, img and txt of a pair of one width, and the pairs of ``keys``
    row-aligned with the parquet's scores (read from pool_shard's rows: row_idx = source row)."""
    fs, parquet, path = npz_location(source, shard)
    if not fs.exists(path):
        raise FileNotFoundError(
            f"shard {shard!r}: no DataComp .npz at {path} (expected beside {parquet}, same stem)"
        )
    rows = _source_rows(fs, parquet)
    scores = _scores(lake, shard, rows)
    with open_npz(fs, path) as npz:
        members = _check_members(npz, keys, rows, parquet)
        prefixes = [p for p in SCORE_COLUMNS if any(k.startswith(f"{p}_") for k in keys)]
        pairs, worst = _check_alignment(npz, members, scores, parquet, prefixes)
    dims = {k: int(m.shape[1]) for k, m in sorted(members.items())}
    size = int(fs.info(path).get("size", 0))
    return NpzInfo(
        _full(fs, path), file_sha256(path, fs), rows, sorted(members), dims, size, pairs, worst
    )


def _full(fs, path: str) -> str:
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    return path if protocol in ("file", "local") else f"{protocol}://{path}"


def _source_rows(fs, parquet: str) -> int:
    with fs.open(parquet, "rb") as handle:
        return pq.ParquetFile(handle).metadata.num_rows


def _scores(lake: Lake, shard: str, rows: int) -> dict[str, np.ndarray]:
    """Per pair prefix, the source's score of every source row (NaN: quarantined or absent)."""
    columns = ["row_idx", *SCORE_COLUMNS.values()]
    table = pq.read_table(upstream_file(lake, "pool_shard", shard, "rows.parquet"), columns=columns)
    row_idx = table["row_idx"].to_numpy()
    if len(row_idx) and int(row_idx.max()) >= rows:
        raise NpzError(
            f"shard {shard!r}: pool_shard holds source row {int(row_idx.max())} but the source "
            f"parquet now has {rows} rows: the file changed since it was ingested; re-ingest it"
        )
    out = {}
    for prefix, column in SCORE_COLUMNS.items():
        full = np.full(rows, np.nan, np.float64)
        values = table[column].to_numpy(zero_copy_only=False).astype(np.float64)
        full[row_idx] = values  # NULL -> NaN
        out[prefix] = full
    return out


def _check_members(npz: NpzReader, keys: list[str], rows: int, parquet: str) -> dict[str, Member]:
    missing = [k for k in keys if k not in npz.names]
    if missing:
        raise NpzError(
            f"{npz.label}: missing keys {missing} (it has {sorted(npz.names)}; DataComp's .npz "
            f"holds {list(DATACOMP_KEYS)})"
        )
    members = {k: npz.member(k) for k in DATACOMP_KEYS if k in npz.names}
    for key, m in members.items():
        if len(m.shape) != 2 or m.dtype.kind != "f":
            raise NpzError(f"{npz.label}: {key} is {m.dtype} {m.shape}, expected 2-D floats")
        if m.shape[0] != rows:
            raise NpzError(f"{npz.label}: {key} has {m.shape[0]} rows, {parquet} has {rows}")
    for prefix in SCORE_COLUMNS:
        img, txt = members.get(f"{prefix}_img"), members.get(f"{prefix}_txt")
        if img and txt and img.shape[1] != txt.shape[1]:
            raise NpzError(
                f"{npz.label}: {prefix}_img is {img.shape[1]} wide, {prefix}_txt {txt.shape[1]}"
            )
    return members


def _check_alignment(
    npz: NpzReader, members, scores, parquet: str, prefixes: list[str]
) -> tuple[list[str], float]:
    """The img/txt pairs of ``prefixes`` against the parquet's scores (a pair is read whole, so
    only the pairs used are); the first bad row fails."""
    pairs = [p for p in prefixes if f"{p}_img" in members and f"{p}_txt" in members]
    checked = [p for p in pairs if np.isfinite(scores[p]).any()]
    if not checked:
        raise NpzError(
            f"{npz.label}: row alignment cannot be checked: it needs an img/txt pair (l14 or b32) "
            f"whose score column ({', '.join(SCORE_COLUMNS.values())}) {parquet} fills"
        )
    found = [(_first_bad(npz, p, scores[p]), p) for p in checked]
    bad = [(row, p, dot) for (row, dot, _), p in found if row is not None]
    if bad:
        row, prefix, dot = min(bad)
        raise NpzError(
            f"{npz.label}: not row-aligned with {parquet}: first bad row {row}: "
            f"dot({prefix}_img, {prefix}_txt) = {dot:.4f} but {SCORE_COLUMNS[prefix]} = "
            f"{scores[prefix][row]:.4f} (tolerance {ALIGNMENT_TOLERANCE})"
        )
    return checked, max(worst for (_, _, worst), _ in found)


def _first_bad(npz: NpzReader, prefix: str, score: np.ndarray):
    """(first row beyond tolerance or None, its dot, largest difference seen)."""
    start, worst = 0, 0.0
    pairs = zip(npz.batches(f"{prefix}_img"), npz.batches(f"{prefix}_txt"), strict=True)
    for img, txt in pairs:
        dots = np.einsum("ij,ij->i", img.astype(np.float32), txt.astype(np.float32))
        diff = np.abs(dots - score[start : start + len(dots)])
        off = np.flatnonzero(diff > ALIGNMENT_TOLERANCE)  # NaN scores compare False: skipped
        if off.size:
            return start + int(off[0]), float(dots[off[0]]), worst
        worst = max(worst, float(np.nanmax(diff, initial=0.0)))
        start += len(dots)
    return None, 0.0, worst


# -- the lake record and the embeddings other assets read ------------------------------------------


def write_info(lake: Lake, shard: str, info: NpzInfo) -> str:
    path = lake.partition_dir(ASSET, shard) / INFO_FILE
    write_json(path, asdict(info))
    return str(path)


def read_info(lake: Lake, shard: str) -> dict:
    return json.loads(upstream_file(lake, ASSET, shard, INFO_FILE).read_text())


def recorded_problem(lake: Lake, shard: str) -> str:
    """What is wrong with the shard's npz.json now ("" when nothing): it names a file of the
    recorded size whose row count is pool_shard's (normalized + quarantined rows)."""
    info = read_info(lake, shard)
    fs, path = open_source(info["path"])
    if not fs.exists(path) or int(fs.info(path).get("size", 0)) != info["size"]:
        return f"{info['path']}: gone or changed since it was validated"
    rows = sum(
        pq.read_metadata(upstream_file(lake, "pool_shard", shard, f)).num_rows
        for f in ("rows.parquet", "quarantine.parquet")
    )
    if rows != info["rows"]:
        return f"{info['path']}: {info['rows']} rows recorded, pool_shard read {rows}"
    return ""


def image_embeddings(
    lake: Lake, shard: str, key: str = "l14_img", take: np.ndarray | None = None
) -> tuple[list[str], np.ndarray]:
    """(uids, float32 [n, d] unit rows) of ``key`` for ``shard``'s normalized rows (pool_shard's
    rows.parquet), in row_idx order: npz row = source row_idx. A zero row stays zero. ``take``
    (ascending positions in that order) reads only those rows (image_centroids' sample)."""
    info = read_info(lake, shard)
    if key not in info["keys"]:
        raise ValueError(f"shard {shard!r}: {info['path']} has no {key!r} (it has {info['keys']})")
    fs, path = open_source(info["path"])
    if int(fs.info(path).get("size", 0)) != info["size"]:
        raise ValueError(
            f"{info['path']} changed since metadata_embeddings validated it: re-materialize "
            f"metadata_embeddings for shard {shard!r}"
        )
    uids, row_idx = npz_row_uids(lake, shard)
    if take is not None:
        uids, row_idx = [uids[i] for i in take], row_idx[take]
    emb = read_npz_rows(fs, path, key, row_idx, info["dims"][key])
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb /= np.where(norms > 0, norms, 1.0)
    return uids, emb


def npz_row_uids(lake: Lake, shard: str) -> tuple[list[str], np.ndarray]:
    """(uids, source row_idx) of ``shard``'s normalized rows, in row_idx order (the order
    image_embeddings returns rows in)."""
    table = pq.read_table(
        upstream_file(lake, "pool_shard", shard, "rows.parquet"), columns=["uid", "row_idx"]
    ).sort_by("row_idx")
    return table["uid"].to_pylist(), table["row_idx"].to_numpy()


def read_npz_rows(fs, path: str, key: str, row_idx: np.ndarray, dim: int) -> np.ndarray:
    """Rows ``row_idx`` (ascending) of array ``key`` as float32. A local .npz whose member is
    stored uncompressed (np.savez; DataComp's files) is memory-mapped, so only the rows asked
    for are read; any other is streamed in row batches."""
    with open_npz(fs, path) as npz:
        mapped = _mapped_member(fs, path, npz, key)
        if mapped is not None:
            return np.asarray(mapped[row_idx], dtype=np.float32).reshape(len(row_idx), dim)
        return _select_rows(npz.batches(key), row_idx, dim)


def _mapped_member(fs, path: str, npz: NpzReader, key: str) -> np.ndarray | None:
    """A read-only memmap of ``key`` when the file is local and the member is stored as a
    C-order 2-D array; None otherwise."""
    if _full(fs, path) != path or key not in npz.names:
        return None
    zinfo = npz.zf.getinfo(npz.names[key])
    if zinfo.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as raw:
        raw.seek(zinfo.header_offset)
        local = raw.read(30)
        if local[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        raw.seek(zinfo.header_offset + 30 + name_len + extra_len)
        member = _read_header(raw)
        start = raw.tell()
    if member.fortran or len(member.shape) != 2 or member.dtype.hasobject:
        return None
    return np.memmap(path, member.dtype, "r", offset=start, shape=member.shape)


def _select_rows(batches: Iterator[np.ndarray], row_idx: np.ndarray, dim: int) -> np.ndarray:
    """The rows ``row_idx`` (ascending) of a streamed array, as float32."""
    out = np.empty((len(row_idx), dim), np.float32)
    start = done = 0
    for batch in batches:
        end = start + len(batch)
        upto = int(np.searchsorted(row_idx, end))
        out[done:upto] = batch[row_idx[done:upto] - start]
        done, start = upto, end
    return out
