"""A lake on object storage: a local working copy mirrored to an fsspec location.

``POOLSIEVE_LAKE=s3://bucket/prefix`` (any fsspec URL) keeps the lake there; every process that
uses it (the CLI, a Dagster step on a Ray worker) works in a local working copy, its cache
(``POOLSIEVE_LAKE_CACHE``, by default under ``~/.cache/poolsieve/lakes/``). Code keeps using
local paths; what crosses the wire goes through this module only:

- **reads** pull: :meth:`Mirror.pull` brings a file or a folder of the remote lake into the
  working copy, downloading only what changed (size and modification time, as rsync does) and
  removing local files the remote no longer has. ``Lake.path``, ``Lake.partition_dir`` and
  ``Lake.asset_files`` pull before they answer, so a step on a fresh worker reads what another
  machine wrote.
- **writes** push: every lake write is already atomic locally (a temporary, then a rename: see
  poolsieve.lake), and the rename pushes. A file becomes one object PUT, which object stores
  make visible whole or not at all (on a filesystem without atomic puts, a temporary object is
  moved into place). A folder replaced whole (``replace_dir``: a shard's images, a trained model)
  is first marked ``.poolsieve-writing``, then uploaded, then its stale objects removed, then
  marked complete with the list of its files (``.poolsieve-complete.json``); readers skip a
  folder being written.

Not mirrored: the DuckDB catalog (each machine keeps its own: the registry, pool order and shard
identity are lake files), DuckDB's spill folder and the lock files (``LOCAL_ONLY``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import fsspec

#: names at the lake's top that stay on the machine that made them
LOCAL_ONLY = {"catalog.duckdb", "catalog.duckdb.wal", "duckdb_tmp", "locks", "demo"}
#: what the working copy holds of each remote object (in LOCAL_ONLY's locks/)
INDEX = "locks/mirror.sqlite"
WRITING = ".poolsieve-writing"
COMPLETE = ".poolsieve-complete.json"
#: protocols whose single-object PUT is atomic (readers see the old object or the new one)
ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}


class LakeSyncError(RuntimeError):
    """The remote lake could not be read or written; the message names the object."""


@dataclass(frozen=True)
class Mirror:
    """The remote side of a lake whose working copy is ``local``."""

    local: Path
    url: str
    options: tuple = ()

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return _filesystem(self.url, self.options)[0]

    @property
    def base(self) -> str:
        return _filesystem(self.url, self.options)[1]

    def remote(self, local: Path) -> str:
        """The remote path of ``local`` (a path inside the working copy)."""
        rel = Path(local).relative_to(self.local).as_posix()
        return self.base if rel == "." else f"{self.base}/{rel}"

    # -- reads ---------------------------------------------------------------------------------

    def pull(self, local: Path) -> None:
        """Make ``local`` (a file or folder of the working copy) what the remote lake holds."""
        if _local_only(self.local, local):
            return
        found = self._listing(self.remote(local))
        for rel, info in found.items():
            self._fetch(info, local / rel if rel else local)
        self._prune(local, set(found))

    def exists(self, local: Path) -> bool:
        """Whether the remote lake holds ``local`` (a file, or a folder with files)."""
        return bool(self._listing_raw(self.remote(local)))

    def glob(self, pattern: str) -> list[str]:
        """Remote paths, relative to the lake, matching ``pattern`` (relative, fsspec glob)."""
        return sorted(self._glob(pattern))

    def pull_matching(self, pattern: str) -> list[Path]:
        """The working-copy paths of what matches ``pattern``, brought up to date: the glob's
        own listing says which files changed (one listing, not one per file); a matched folder
        is pulled whole."""
        found = []
        for rel, info in sorted(self._glob(pattern).items()):
            local = self.local / rel
            if info.get("type") == "directory":
                self.pull(local)
            elif not _local_only(self.local, local):
                self._fetch(info, local)
            found.append(local)
        return found

    def _glob(self, pattern: str) -> dict[str, dict]:
        self.fs.invalidate_cache()
        hits = self.fs.glob(f"{self.base}/{pattern}", detail=True)
        return {PurePosixPath(h).relative_to(self.base).as_posix(): i for h, i in hits.items()}

    def _listing(self, remote: str) -> dict[str, dict]:
        """relative name -> info of every file to take under ``remote`` ("" when it is a file)."""
        self.fs.invalidate_cache()  # another machine may have written since: list afresh
        try:
            found = self.fs.find(remote, detail=True, withdirs=False)
        except FileNotFoundError:
            return {}
        except Exception as err:  # botocore's errors are not OSErrors
            raise LakeSyncError(
                f"cannot list {remote} in the lake {self.url}: {err} (check the address, "
                "POOLSIEVE_LAKE_OPTIONS and the store's credentials)"
            ) from err
        if list(found) == [remote]:
            return {"": found[remote]} if found[remote].get("type") == "file" else {}
        files = {PurePosixPath(p).relative_to(remote).as_posix(): i for p, i in found.items()}
        return _readable(files)

    def _fetch(self, info: dict, local: Path) -> None:
        if _index(self.local).holds(local, _version(info)):
            return
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.pull-{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            self.fs.get_file(info["name"], str(tmp))
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise LakeSyncError(f"cannot read {info['name']} from {self.url}: {err}") from err
        os.replace(tmp, local)
        _index(self.local).record(local, _version(info))

    # -- writes --------------------------------------------------------------------------------

    def push_file(self, local: Path) -> None:
        """Upload one committed file (one object, visible whole)."""
        if _local_only(self.local, local):
            return
        remote = self.remote(local)
        try:
            if self.fs.protocol and set(_protocols(self.fs)) & ATOMIC_PUT:
                self.fs.put_file(str(local), remote)
            else:
                tmp = f"{remote}.{os.getpid()}.{threading.get_ident()}.push.tmp"
                self.fs.put_file(str(local), tmp)
                self.fs.mv(tmp, remote)
            _index(self.local).record(local, _version(self.fs.info(remote)))
        except OSError as err:
            raise LakeSyncError(f"cannot write {remote} to {self.url}: {err}") from err

    def push_dir(self, local: Path) -> None:
        """Upload a folder that replaced its previous version whole (see the module's doc)."""
        if _local_only(self.local, local):
            return
        remote = self.remote(local)
        self.fs.pipe_file(f"{remote}/{WRITING}", b"")
        names = sorted(
            p.relative_to(local).as_posix()
            for p in local.rglob("*")
            if p.is_file() and p.name not in (WRITING, COMPLETE)
        )
        for name in names:
            self.push_file(local / name)
        stale = set(self._listing_raw(remote)) - set(names) - {WRITING, COMPLETE}
        for name in stale:
            self.fs.rm_file(f"{remote}/{name}")
        doc = json.dumps({"files": names}, indent=1).encode()
        self.fs.pipe_file(f"{remote}/{COMPLETE}", doc)
        self.fs.rm_file(f"{remote}/{WRITING}")

    def remove(self, local: Path) -> None:
        """Remove a file or folder from the remote lake (it was removed from the working copy)."""
        remote = self.remote(local)
        if self.fs.exists(remote):
            self.fs.rm(remote, recursive=True)
        _index(self.local).forget_tree(local)

    def _prune(self, local: Path, keep: set[str]) -> None:
        """Remove what the working copy took from (or gave to) the remote lake and the remote
        no longer holds. Files this machine wrote and has not pushed yet (a commit between its
        rename and its upload) are not the index's, so a concurrent pull leaves them."""
        index = _index(self.local)
        if local.is_file() or not local.exists():
            if "" not in keep and index.forget(local):
                local.unlink(missing_ok=True)
            return
        for path in sorted(local.rglob("*"), reverse=True):
            rel = path.relative_to(local).as_posix()
            if path.is_file() and rel not in keep and index.forget(path):
                path.unlink(missing_ok=True)
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()

    def _listing_raw(self, remote: str) -> list[str]:
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(remote, withdirs=False)
        except FileNotFoundError:
            return []
        return [PurePosixPath(p).relative_to(remote).as_posix() for p in found]


_FILESYSTEMS: dict[tuple, tuple] = {}
_LOCK = threading.Lock()


def _filesystem(url: str, options: tuple) -> tuple[fsspec.AbstractFileSystem, str]:
    """One filesystem object per (url, options) in a process (fsspec's own cache does too)."""
    key = (url, options)
    with _LOCK:
        if key not in _FILESYSTEMS:
            fs, base = fsspec.core.url_to_fs(url, **dict(options))
            _FILESYSTEMS[key] = (fs, base.rstrip("/"))
        return _FILESYSTEMS[key]


def _protocols(fs) -> tuple:
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)


def _split(rel: str) -> tuple[str, str]:
    folder, _, name = rel.rpartition("/")
    return folder, name


def _readable(files: dict) -> dict:
    """``files`` less the markers and what lies under a folder being written. (A replacement
    removes its stale objects before it marks the folder complete, so a complete folder holds
    only its own files, and those committed into it since.)"""
    writing = {_split(rel)[0] for rel in files if _split(rel)[1] == WRITING}
    return {
        rel: info
        for rel, info in files.items()
        if _split(rel)[1] not in (WRITING, COMPLETE) and not _under(rel, writing)
    }


def _under(rel: str, folders: set[str]) -> bool:
    parts = rel.split("/")[:-1]
    return any("/".join(parts[:end]) in folders for end in range(len(parts) + 1))


def _version(info: dict) -> str:
    """What changes when a remote object changes: its ETag, else its size and mtime."""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return str(etag).strip('"')
    mtime = next((info[k] for k in ("mtime", "LastModified", "created") if info.get(k)), "")
    return f"{info.get('size')}:{getattr(mtime, 'isoformat', lambda: mtime)()}"


class _Index:
    """Which remote version each working-copy file holds, so a pull downloads only what
    changed. A file edited locally since (another size or mtime) counts as not held. SQLite:
    the processes sharing a working copy (a node's Ray workers) share it safely."""

    def __init__(self, root: Path):
        path = root / INDEX
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS held (path TEXT PRIMARY KEY, version TEXT, stat TEXT)"
        )
        self.root = root

    def holds(self, local: Path, version: str) -> bool:
        row = self.conn.execute(
            "SELECT version, stat FROM held WHERE path = ?", (self._key(local),)
        ).fetchone()
        return row is not None and row == (version, _stat(local))

    def record(self, local: Path, version: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO held VALUES (?, ?, ?)",
            (self._key(local), version, _stat(local)),
        )

    def forget(self, local: Path) -> bool:
        """Drop ``local``'s entry; whether there was one."""
        cursor = self.conn.execute("DELETE FROM held WHERE path = ?", (self._key(local),))
        return cursor.rowcount > 0

    def forget_tree(self, local: Path) -> None:
        key = self._key(local)
        self.conn.execute("DELETE FROM held WHERE path = ? OR path LIKE ?", (key, f"{key}/%"))

    def _key(self, local: Path) -> str:
        return Path(local).relative_to(self.root).as_posix()


def _stat(local: Path) -> str | None:
    try:
        st = local.stat()
    except FileNotFoundError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


_INDEXES: dict[tuple, _Index] = {}


def _index(root: Path) -> _Index:
    """This process's (and thread's) connection to ``root``'s index."""
    key = (root, os.getpid(), threading.get_ident())
    if key not in _INDEXES:
        _INDEXES[key] = _Index(root)
    return _INDEXES[key]


def _local_only(root: Path, local: Path) -> bool:
    rel = Path(local).relative_to(root).parts
    return bool(rel) and rel[0] in LOCAL_ONLY


_MIRRORS: dict[Path, Mirror] = {}


def register(mirror: Mirror) -> None:
    """Route pushes of files under ``mirror.local`` to ``mirror`` in this process."""
    _MIRRORS[mirror.local] = mirror


def after_write(path: Path, action: str) -> None:
    """Tell the mirror holding ``path``, if any, that it was committed (``push_file``),
    replaced whole (``push_dir``) or removed (``remove``) in the working copy."""
    mirror = mirror_of(path)
    if mirror is not None:
        getattr(mirror, action)(Path(path))


def mirror_of(path: Path) -> Mirror | None:
    """The mirror whose working copy holds ``path`` (None: a plain local lake)."""
    if not _MIRRORS:
        return None
    path = Path(os.path.abspath(path))
    for parent in (path, *path.parents):
        if parent in _MIRRORS:
            return _MIRRORS[parent]
    return None
