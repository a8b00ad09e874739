"""The lake: one root holding every asset's files plus the DuckDB catalog.

The root is a local folder, or any fsspec URL (``s3://bucket/prefix``): then ``Lake.root`` is
this machine's working copy of it and poolsieve.mirror moves files between the two (reads pull,
commits push), so the code below and every asset see local paths either way.

Layout (one folder per asset and partition, so re-materializing a partition replaces exactly it)::

    <root>/catalog.duckdb                     this machine's views for ad-hoc SQL (not shared)
    <root>/url_registry/                      URL registry, pool order, shard identity
    <root>/pool_shard/<shard>/rows.parquet    normalized rows
    <root>/pool_shard/<shard>/quarantine.parquet
    <root>/url_dedup/<shard>/decisions.parquet

Every file is written under a temporary name and renamed into place, so readers never see a
half-written file and a crashed run leaves the previous version intact. A temporary name says
who wrote it (``.<name>.<host>-<pid>.<uuid>.tmp``), so :func:`sweep_temporaries` (run by the CLI
at start) removes those of writers that are gone and leaves those of running writers alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from poolsieve import mirror as mirrors

#: the assets that write one folder per shard (lake/<asset>/<shard>/), in pipeline order
SHARD_ASSETS = [
    "pool_shard",
    "url_dedup",
    "shard_features",
    "shard_images",
    "clip_embeddings",
    "eval_decontamination",
    "image_hashes",
]
#: the per-shard assets of DataComp's metadata mode (curation.mode "metadata"): no download
METADATA_SHARD_ASSETS = ["pool_shard", "url_dedup", "shard_features", "metadata_embeddings"]


def shard_assets(mode: str) -> list[str]:
    """The per-shard assets a shard's run materializes in ``mode`` (download or metadata)."""
    return METADATA_SHARD_ASSETS if mode == "metadata" else SHARD_ASSETS


@dataclass(frozen=True)
class Lake:
    """The lake at ``root``; with ``remote`` (an fsspec URL), ``root`` is its working copy."""

    root: Path
    remote: str | None = None
    options: tuple = ()  # fsspec storage options of ``remote``, as sorted (key, value) pairs

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))
        if self.remote is not None:  # an absolute working copy: pushes find it by path
            object.__setattr__(self, "root", Path(os.path.abspath(self.root)))
            mirrors.register(mirrors.Mirror(self.root, self.remote, self.options))

    @classmethod
    def at(cls, location: str | Path, cache: str | Path | None = None, options=None) -> Lake:
        """The lake at ``location``: a folder, or an fsspec URL whose working copy is ``cache``
        (default: ``~/.cache/poolsieve/lakes/<hash of the URL>``)."""
        location = str(location)
        if not is_remote(location):
            return cls(Path(location.removeprefix("file://")))
        digest = hashlib.sha256(location.encode()).hexdigest()[:16]
        cache = Path(cache) if cache else Path.home() / ".cache/poolsieve/lakes" / digest
        return cls(cache, location.rstrip("/"), tuple(sorted((options or {}).items())))

    @property
    def location(self) -> str:
        """Where the lake is: its URL, or its folder."""
        return self.remote or str(self.root)

    @property
    def mirror(self) -> mirrors.Mirror | None:
        return mirrors.mirror_of(self.root) if self.remote else None

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.duckdb"

    def path(self, *parts: str) -> Path:
        """A file or folder of the lake, brought up to date in the working copy first."""
        local = self.root.joinpath(*parts)
        if self.remote is not None:
            self.mirror.pull(local)
        return local

    def partition_dir(self, asset: str, partition: str) -> Path:
        """The folder of one asset partition (partition keys may hold '/', so they are quoted)."""
        return self.path(asset, _folder_name(partition))

    def partition_file(self, asset: str, partition: str, name: str) -> Path:
        """One file of an asset partition (only it is brought here, not its folder)."""
        return self.path(asset, _folder_name(partition), name)

    def has_partition(self, asset: str, partition: str) -> bool:
        """Whether ``asset`` has a folder for ``partition``, without bringing it here."""
        local = self.root / asset / _folder_name(partition)
        if self.remote is None:
            return local.is_dir()
        return self.mirror.exists(local)

    def asset_files(self, asset: str, filename: str) -> list[str]:
        """``filename`` of every partition of ``asset`` that has it, as literal paths for DuckDB;
        folders under a hidden (temporary) name, a crash's leftovers, are not partitions."""
        return sorted(literal_path(p) for p in self.glob(f"{asset}/*/{filename}"))

    def glob(self, pattern: str) -> list[Path]:
        """Lake files matching ``pattern`` (relative to the root), up to date in the working
        copy; names under a hidden (temporary) folder or file are not the lake's."""
        if self.remote is None:
            found = self.root.glob(pattern)
        else:
            found = self.mirror.pull_matching(pattern)
        return sorted(p for p in found if not _hidden(p.relative_to(self.root)))


def _folder_name(partition: str) -> str:
    return quote(partition, safe="")


def is_remote(location: str) -> bool:
    """Whether ``location`` is an fsspec URL other than a local file (``s3://``, ``gs://``...)."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme not in ("", "file", "local")


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def remove(path: Path) -> None:
    """Remove a lake file or folder, from the remote lake too when there is one."""
    path = Path(path)
    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    mirrors.after_write(path, "remove")


#: the characters DuckDB's file readers take as a glob pattern
_GLOB_CHARS = re.compile(r"([*?\[])")


def literal_path(path: str | Path) -> str:
    """``path`` as a DuckDB file pattern that matches exactly that file.

    DuckDB reads every file name as a glob, so a source file named ``part-*.parquet`` would also
    read ``part-1.parquet``. Each glob character becomes a one-character class (``[*]``), which
    matches only itself; paths without one are unchanged.
    """
    return _GLOB_CHARS.sub(r"[\1]", str(path))


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def tmp_path_for(final: Path) -> Path:
    """A sibling temporary name for an atomic write of ``final``, naming this host and process."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.with_name(f".{final.name}.{_host_tag()}-{os.getpid()}.{uuid.uuid4().hex}.tmp")


#: a temporary name; ``writer`` is absent in names from before writers were recorded
_TMP_NAME = re.compile(r"^\..+?(?:\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+))?\.[0-9a-f]{32}\.tmp$")


def sweep_temporaries(root: Path, max_age_s: float = 6 * 3600, depth: int = 4) -> list[Path]:
    """Remove temporaries a crashed writer left under ``root`` (``depth`` levels down): those
    of a process of this host that is gone, and any older than ``max_age_s`` (another host's, or
    unnamed). Returns what was removed."""
    removed = []
    for path in _temporaries(Path(root), depth):
        if _writer_gone(path, max_age_s):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _temporaries(folder: Path, depth: int):
    if depth == 0 or not folder.is_dir():
        return
    for entry in folder.iterdir():
        if _TMP_NAME.match(entry.name):
            yield entry
        elif entry.is_dir() and not entry.is_symlink():
            yield from _temporaries(entry, depth - 1)


def _writer_gone(path: Path, max_age_s: float) -> bool:
    match = _TMP_NAME.match(path.name)
    try:
        age = time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    if match["pid"] and match["host"] == _host_tag() and not _alive(int(match["pid"])):
        return True
    return age > max_age_s


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def commit(tmp: Path, final: Path) -> None:
    """Atomically move a finished temporary file into place (and into the remote lake)."""
    os.replace(tmp, final)
    mirrors.after_write(final, "push_file")


@contextlib.contextmanager
def atomic_file(final: Path):
    """A temporary path to write ``final`` through: committed when the block ends, removed if it
    raises (for writers that want a path: pyarrow, matplotlib)."""
    tmp = tmp_path_for(final)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    commit(tmp, final)


def write_bytes_atomic(final: Path, data: bytes) -> None:
    tmp = tmp_path_for(final)
    tmp.write_bytes(data)
    commit(tmp, final)


def write_parquet_if_changed(final: Path, table) -> bool:
    """Write ``table`` as ``final`` (parquet, atomically) unless the file already holds exactly
    those bytes; whether it wrote. An unchanged file keeps its mtime, so what is fingerprinted
    by it (pool_features' parts) is not rebuilt."""
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    data = buffer.getvalue()
    if final.exists() and final.read_bytes() == data:
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(final, data)
    return True


def file_sha256(path: str | Path, filesystem=None, chunk: int = 1 << 20) -> str:
    """sha256 of a file (local path, or a path on an fsspec filesystem)."""
    digest = hashlib.sha256()
    opener = filesystem.open if filesystem is not None else open
    with opener(str(path), "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def upstream_file(lake: Lake, asset: str, shard: str, name: str) -> Path:
    """A file an earlier asset wrote for ``shard``; a clear error when it is not there yet."""
    path = lake.partition_file(asset, shard, name)
    if not path.exists():
        raise FileNotFoundError(
            f"shard {shard!r} has no {asset} output ({path}): materialize {asset} for it first"
        )
    return path


def replace_dir(new: Path, final: Path) -> None:
    """Put folder ``new`` in place of ``final``; the old version is removed only afterwards."""
    old = tmp_path_for(final) if final.exists() else None
    if old is not None:
        os.rename(final, old)
    os.rename(new, final)
    if old is not None:
        shutil.rmtree(old)
    mirrors.after_write(final, "push_dir")


def write_json(final: Path, doc: dict) -> None:
    """``doc`` as indented JSON, written atomically."""
    write_bytes_atomic(final, (json.dumps(doc, indent=1) + "\n").encode())
