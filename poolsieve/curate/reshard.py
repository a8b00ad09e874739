"""train_shards' logic: reshard a subset's downloaded samples into webdataset tars for training.

DataComp resharder semantics: a sample is written once per time its uid is listed in the subset
(a uid listed k times appears k times; copies get keys ``<key>_<i>`` so keys stay unique), the
output follows the input shards' order and, within a shard, its keys' order (img2dataset numbers
keys by row; its tars hold samples in the order downloads finished, which varies run to run, so
the same subset gives the same training batches only in key order), and shards are named
deterministically
``shard-00000.tar``... with ``sizes.json`` (open_clip's sample count). Tar members get fixed
metadata (mtime 0, no owner), so the same subset gives the same bytes. Written into a temporary
folder swapped in whole.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from poolsieve.clip.encode import _grouped_members
from poolsieve.lake import replace_dir, tmp_path_for

MEMBER_SUFFIXES = ("jpg", "txt", "json")


@dataclass(frozen=True)
class ReshardResult:
    out_dir: Path
    tars: list[Path]
    samples: int
    missing: list[str]  # subset uids no input tar holds (never downloaded)


def _samples(tars: list[Path]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(uid, {suffix: bytes}) of every sample of the input tars, tar by tar, in key order."""
    for path in tars:
        with tarfile.open(path) as tf:
            for _, group in sorted(_grouped_members(tf), key=lambda kv: kv[0]):
                data = {s: tf.extractfile(group[s]).read() for s in MEMBER_SUFFIXES if s in group}
                if "jpg" in data and "json" in data:
                    yield json.loads(data["json"]).get("uid", ""), data


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tf.addfile(info, io.BytesIO(data))


class _ShardWriter:
    def __init__(self, folder: Path, per_shard: int):
        self.folder, self.per_shard = folder, per_shard
        self.sizes: dict[str, int] = {}
        self.tar: tarfile.TarFile | None = None

    def write(self, key: str, data: dict[str, bytes]) -> None:
        if self.tar is None or self.sizes[self.name] == self.per_shard:
            self.close()
            self.name = f"shard-{len(self.sizes):05d}.tar"
            self.tar = tarfile.open(self.folder / self.name, "w")  # noqa: SIM115
            self.sizes[self.name] = 0
        for suffix, blob in data.items():
            _add(self.tar, f"{key}.{suffix}", blob)
        self.sizes[self.name] += 1

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()
            self.tar = None


def reshard(input_tars: list[Path], uids: list[str], out_dir: Path, per_shard: int = 1000):
    """Write every listed uid's sample (k times if listed k times) into ``out_dir``."""
    wanted, found = Counter(uids), set()
    work = tmp_path_for(out_dir)
    work.mkdir()
    writer = _ShardWriter(work, per_shard)
    try:
        for uid, data in _samples(input_tars):
            for copy in range(wanted.get(uid, 0)):
                writer.write(uid if copy == 0 else f"{uid}_{copy}", data)
            if uid in wanted:
                found.add(uid)
        writer.close()
        (work / "sizes.json").write_text(json.dumps(writer.sizes, indent=1) + "\n")
        replace_dir(work, out_dir)
    finally:
        writer.close()
        shutil.rmtree(work, ignore_errors=True)
    return ReshardResult(
        out_dir,
        [out_dir / n for n in writer.sizes],
        sum(writer.sizes.values()),
        sorted(set(wanted) - found),
    )
