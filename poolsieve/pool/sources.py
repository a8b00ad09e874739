"""The pool source: a folder or fsspec URL of parquet files, one file = one shard partition.

A shard's partition key is its path relative to the source root (posix separators). Refresh
planning compares the current listing with the registered partitions and with the signature
(size, modification time) each file had when it was last requested or materialized.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import fsspec


class SourceError(FileNotFoundError):
    """The pool source cannot be listed as given; the message names it and says why."""


@dataclass(frozen=True)
class SourceFile:
    key: str  # partition key: path relative to the source root
    path: str  # full path or URL, readable with `filesystem`
    size: int
    mtime: str

    @property
    def signature(self) -> str:
        return f"{self.size}:{self.mtime}"


@dataclass
class SourceListing:
    root: str
    files: list[SourceFile]
    ignored: list[str] = field(default_factory=list)  # files that are not *.parquet
    filesystem: object = None

    def by_key(self) -> dict[str, SourceFile]:
        return {f.key: f for f in self.files}


@dataclass
class RefreshPlan:
    new: list[str]  # in the source, not yet a partition
    changed: list[str]  # a partition whose file signature differs from the known one
    removed: list[str]  # a partition whose file is gone from the source
    unchanged: list[str]

    @property
    def to_run(self) -> list[str]:
        return self.new + self.changed


def open_source(source: str):
    """(filesystem, root path) for a folder or fsspec URL."""
    fs, root = fsspec.core.url_to_fs(source)
    return fs, root.rstrip("/")


def source_identity(source: str) -> str:
    """The source as the lake records it: an absolute path, or protocol://path for a URL (so
    ``./pool``, ``pool/`` and its absolute path are one source)."""
    fs, root = open_source(source)
    return _full_path(fs, root)


def scan_source(source: str) -> SourceListing:
    """List the source's parquet files, sorted by key; other files are listed as ignored."""
    fs, root = open_source(source)
    if not fs.exists(root):
        raise SourceError(f"pool source {source!r} does not exist")
    if fs.isfile(root):
        raise SourceError(
            f"pool source {source!r} is a file: give the folder that holds it "
            "(every *.parquet file below the folder is a shard)"
        )
    files, ignored = [], []
    for path, info in sorted(fs.find(root, detail=True).items()):
        key = path[len(root) :].lstrip("/")
        if key.split("/")[-1].startswith((".", "_")):
            continue
        if not key.endswith(".parquet"):
            ignored.append(key)
            continue
        files.append(SourceFile(key, _full_path(fs, path), int(info.get("size", 0)), _mtime(info)))
    return SourceListing(source, files, ignored, fs)


def _full_path(fs, path: str) -> str:
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    return path if protocol in ("file", "local") else f"{protocol}://{path}"


def _mtime(info: dict) -> str:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        if info.get(key) is not None:
            return str(info[key])
    return ""


def plan_refresh(
    listing: SourceListing, registered: list[str], known_signatures: dict[str, str]
) -> RefreshPlan:
    """What a refresh must do: register `new`, re-run `changed`, report `removed`."""
    current = listing.by_key()
    registered_set = set(registered)
    new = [k for k in current if k not in registered_set]
    changed = [
        k
        for k in current
        if k in registered_set and known_signatures.get(k) != current[k].signature
    ]
    removed = [k for k in registered if k not in current]
    unchanged = [k for k in current if k in registered_set and k not in changed]
    return RefreshPlan(new, changed, removed, unchanged)
