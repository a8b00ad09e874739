"""The trusted set: clean image-caption pairs for training the scorer (as Data Filtering Networks do).

Grain: one sample = ``{key}.jpg`` + ``{key}.txt`` (a clean English caption) + ``{key}.json``
(shape, color, texture, label), in webdataset tar shards ``trusted-00000.tar`` ...; ``sizes.json``
maps each shard to its sample count, which is where open_clip looks for ``num_samples``. Tar
members carry fixed metadata (mtime 0, no owner), so the same seed gives the same bytes.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

from poolsieve_demo.captions import clean_caption
from poolsieve_demo.concepts import label_of
from poolsieve_demo.config import WorldConfig
from poolsieve_demo.render import ImageSpec, encode, render
from poolsieve_demo.specs import ordinary_size, sample_spec


def trusted_shard_name(index: int) -> str:
    return f"trusted-{index:05d}.tar"


def _members(key: str, spec: ImageSpec, caption: str) -> list[tuple[str, bytes]]:
    meta = {
        "shape": spec.shape,
        "color": spec.color,
        "texture": spec.texture,
        "label": label_of(spec.color, spec.shape),
    }
    return [
        (f"{key}.jpg", encode(render(spec), "jpg")),
        (f"{key}.txt", caption.encode()),
        (f"{key}.json", json.dumps(meta, sort_keys=True).encode()),
    ]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_trusted(trusted_dir: Path, rng: np.random.Generator, config: WorldConfig) -> dict:
    """Write the trusted shards and sizes.json; returns {"shards": [...], "num_samples": n}."""
    trusted_dir.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, int] = {}
    for start in range(0, config.trusted_samples, config.trusted_shard_size):
        name = trusted_shard_name(len(sizes))
        stop = min(start + config.trusted_shard_size, config.trusted_samples)
        with tarfile.open(trusted_dir / name, "w", format=tarfile.USTAR_FORMAT) as tar:
            for k in range(start, stop):
                spec = sample_spec(rng, ordinary_size(rng, *config.clean_sizes))
                for member, data in _members(f"t{k:07d}", spec, clean_caption(rng, spec)):
                    _add(tar, member, data)
        sizes[name] = stop - start
    (trusted_dir / "sizes.json").write_text(json.dumps(sizes, indent=2) + "\n")
    return {"shards": list(sizes), "num_samples": config.trusted_samples}
