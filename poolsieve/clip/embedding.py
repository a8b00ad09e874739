"""clip_embeddings' logic: embed one shard's downloaded images and captions with the scorer.

Writes ``<lake>/clip_embeddings/<shard>/``:

* ``embeddings.parquet``: uid, key, image_emb / text_emb (float16, L2-normalized), clip_score;
  one row per downloaded sample whose image decodes, in key order (img2dataset's keys number the
  shard's kept rows, so this is row order, whatever order the downloads finished in);
* ``embeddings.npz``: DataComp's sidecar, row-aligned with ``pool_shard/<shard>/rows.parquet``
  (the shard's metadata parquet): ``uid``, ``<prefix>_img``, ``<prefix>_txt``, ``<prefix>_score``;
  rows without an embedding (dropped by dedup, failed download, undecodable) hold zero vectors and
  a NaN score, so a filter can never mistake them for a real score.

Each file is written atomically; re-materializing a shard replaces exactly these two files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from poolsieve.clip.encode import EmbedResult, ProgressFn, embed_webdataset
from poolsieve.clip.models import LoadedClip
from poolsieve.clip.npz import check_alignment, npz_prefix, write_embeddings_parquet, write_npz
from poolsieve.images.status import STATUS_FILE
from poolsieve.lake import Lake, upstream_file


@dataclass(frozen=True)
class ShardEmbeddings:
    result: EmbedResult
    parquet: Path
    npz: Path
    prefix: str
    downloaded: int  # successful downloads of the shard: each one is embedded or skipped
    alignment_problems: list[str]


def shard_tars(lake: Lake, shard: str, asset: str = "shard_images") -> list[Path]:
    """The shard's downloaded webdataset tars in ``asset`` (shard_images, or metadata mode's
    selected_images); its download must have finished."""
    upstream_file(lake, asset, shard, STATUS_FILE)  # the download finished
    return sorted(lake.partition_dir(asset, shard).glob("*.tar"))


def embed_shard(
    lake: Lake,
    shard: str,
    clip: LoadedClip,
    batch_size: int = 256,
    num_workers: int = 2,
    progress: ProgressFn | None = None,
) -> ShardEmbeddings:
    """Embed every downloaded sample of ``shard`` and write its parquet and npz."""
    metadata = upstream_file(lake, "pool_shard", shard, "rows.parquet")
    result = embed_webdataset(
        shard_tars(lake, shard),
        clip.model,
        clip.preprocess,
        clip.tokenizer,
        batch_size=batch_size,
        num_workers=num_workers,
        device=clip.device,
        progress=progress,
    )
    out = lake.partition_dir("clip_embeddings", shard)
    prefix = npz_prefix(clip.arch)
    parquet = write_embeddings_parquet(result, out / "embeddings.parquet")
    npz = write_npz(out / "embeddings.npz", metadata, {prefix: result})
    problems = check_alignment(npz, metadata)
    return ShardEmbeddings(result, parquet, npz, prefix, downloaded_count(lake, shard), problems)


def downloaded_count(lake: Lake, shard: str) -> int:
    """Successful downloads of ``shard`` (its download_status rows with status success)."""
    status = pq.read_table(
        upstream_file(lake, "shard_images", shard, STATUS_FILE), columns=["status"]
    )
    return pc.sum(pc.equal(status.column("status"), "success")).as_py() or 0
