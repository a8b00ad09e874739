"""Embed img2dataset webdataset tars with a CLIP: image/text embeddings and the CLIP score.

Grain: one result row per sample whose image decodes, in key order, whatever order img2dataset
wrote the tars' members in and whatever ``num_workers`` is; every other sample is in ``skipped``.

Why key order: img2dataset's threads write each sample when its download finishes, so a tar's
member order changes from run to run, while its keys number the input rows (the shard's row
order). Sorted by key, the same images form the same batches and give the same rows every time, so
a seeded run is reproducible byte for byte (a batch's floats can depend on its other images).

How the order stays fixed: the main process first reads the tar headers and each sample's small
.txt/.json (tarfile seeks over the image bytes) and builds an index of samples with the byte offset
of each image. Decoding is a map-style ``Dataset`` over that index; the ``DataLoader`` hands whole
batches of consecutive indices to its workers and returns them in index order, so workers decode
batch b+1.. while the main process runs the model on batch b, and the output never depends on which
worker finished first. Knowing the sample count up front also gives the progress callback a total
and an ETA. (The webdataset library streams tars and splits work across workers by shard, so with
one tar per shard only one worker would decode, and the order would depend on the split.)

The CLIP score is DataComp's: cosine similarity of the L2-normalized image and text embeddings
(not multiplied by the logit scale). Embeddings are returned as float16 (half the bytes; a
unit vector's components lose ~1e-3 at most), scores as float32 computed from the float32
embeddings before that rounding.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")

# progress(done, total_or_None, images_per_second, eta_seconds_or_None)
ProgressFn = Callable[[int, int | None, float, float | None], None]


@dataclass
class EmbedResult:
    """Embeddings of one set of tars: row i of every array belongs to ``keys[i]``/``uids[i]``.

    ``skipped`` maps the key of every sample left out to why (``no_image``, ``decode_error: ...``),
    so rows read = rows embedded + rows skipped.
    """

    keys: list[str]
    uids: list[str]
    image_emb: np.ndarray  # (n, d) float16, L2-normalized
    text_emb: np.ndarray  # (n, d) float16, L2-normalized
    scores: np.ndarray  # (n,) float32, cosine(image, text)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class Sample:
    """One webdataset sample: where its image bytes sit in its tar, its caption and uid."""

    tar: str
    key: str
    image_offset: int
    image_size: int
    caption: str
    uid: str
    #: the downloader's sha256 of the bytes as served (img2dataset's json; "" when absent): the
    #: image in the tar may have been re-encoded since
    served_sha256: str = ""


def _split_name(name: str) -> tuple[str, str]:
    """webdataset's rule: the key is the path up to the first dot of the file name."""
    folder, _, base = name.rpartition("/")
    stem, _, suffix = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), suffix.lower()


def _grouped_members(tf: tarfile.TarFile):
    """Yield (key, {suffix: member}) for consecutive members sharing a key."""
    key, group = None, {}
    for member in tf:
        if not member.isfile():
            continue
        member_key, suffix = _split_name(member.name)
        if member_key != key and group:
            yield key, group
            group = {}
        key = member_key
        group[suffix] = member
    if group:
        yield key, group


def _read_text(tf: tarfile.TarFile, member: tarfile.TarInfo | None) -> str:
    if member is None:
        return ""
    return tf.extractfile(member).read().decode("utf-8", errors="replace")


def sample_bytes(samples: Sequence[Sample]):
    """Each sample with its image's bytes, read at its offset (one open handle per tar)."""
    handles = {}
    try:
        for s in samples:
            handle = handles.get(s.tar) or handles.setdefault(s.tar, open(s.tar, "rb"))  # noqa: SIM115
            handle.seek(s.image_offset)
            yield s, handle.read(s.image_size)
    finally:
        for handle in handles.values():
            handle.close()


def decode_image(data: bytes) -> tuple[Image.Image | None, str]:
    """The decoded image, or None and why (``decode_error: ...``): never raises."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image, ""
    except Exception as error:  # an undecodable image is recorded, never fatal
        return None, f"decode_error: {type(error).__name__}: {error}"[:200]


def index_tar(path: str | Path, skipped: dict[str, str]) -> list[Sample]:
    """The samples of one tar in key order (not member order: see the module doc); samples
    without an image go to ``skipped``."""
    samples = []
    with tarfile.open(path, "r:") as tf:
        for key, group in _grouped_members(tf):
            image = next((group[s] for s in IMAGE_SUFFIXES if s in group), None)
            if image is None:
                skipped[key] = "no_image"
                continue
            meta = json.loads(_read_text(tf, group.get("json")) or "{}")
            caption = _read_text(tf, group.get("txt"))
            samples.append(
                Sample(
                    str(path),
                    key,
                    image.offset_data,
                    image.size,
                    caption,
                    meta.get("uid", ""),
                    meta.get("sha256") or "",
                )
            )
    return sorted(samples, key=lambda s: s.key)


class DecodedSamples(Dataset):
    """Map-style dataset: index i -> (preprocessed image, caption tokens, decoded ok).

    ``draft_size`` lets libjpeg decode at a reduced DCT scale (1/2, 1/4, 1/8) that still covers
    the model's input size: a 512 px JPEG decodes at 256 px for a 224 px model, and at 64 px for
    a 32 px one (what it saves: bench/README.md, embed). Pixels then differ slightly from a full
    decode + resize (as with any change of resampling kernel); pass ``None`` for the exact
    reference decode.
    """

    def __init__(self, samples, preprocess, tokenizer, draft_size: int | None):
        self.samples = samples
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.draft_size = draft_size
        self._files: dict[str, object] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, sample: Sample) -> bytes:
        if self._pid != os.getpid():  # a forked worker must not share the parent's file offsets
            self._files, self._pid = {}, os.getpid()
        handle = self._files.get(sample.tar)
        if handle is None:
            handle = self._files[sample.tar] = open(sample.tar, "rb")  # noqa: SIM115
        handle.seek(sample.image_offset)
        return handle.read(sample.image_size)

    def _image(self, sample: Sample) -> torch.Tensor:
        image = Image.open(io.BytesIO(self._read(sample)))
        if self.draft_size:
            image.draft("RGB", (self.draft_size, self.draft_size))
        return self.preprocess(image.convert("RGB"))

    def __getitem__(self, i: int):
        sample = self.samples[i]
        tokens = self.tokenizer([sample.caption])[0]
        try:
            return self._image(sample), tokens, ""
        except Exception as error:  # a corrupt image skips its sample, with the reason
            return None, tokens, f"decode_error: {type(error).__name__}: {error}"[:200]

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files = {}


def collate(items):
    """Stack a batch; a failed image becomes a zero tensor whose row is dropped after the model."""
    shape = next((img.shape for img, _, _ in items if img is not None), None)
    images = [img if img is not None else torch.zeros(shape or (3, 1, 1)) for img, _, _ in items]
    errors = [err for _, _, err in items]
    return torch.stack(images), torch.stack([tok for _, tok, _ in items]), errors


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def embed_batch(model, images: torch.Tensor, tokens: torch.Tensor, device: torch.device):
    """Normalized image/text embeddings (float32, on the CPU) and their cosine similarity.

    Autocast (fp16) only on CUDA: on CPUs without native bf16/fp16 matmuls it is several times
    slower than fp32. Normalization and the score are computed in fp32 either way.
    """
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else None
    with torch.inference_mode(), amp or contextlib.nullcontext():
        image_emb = model.encode_image(images.to(device, non_blocking=True))
        text_emb = model.encode_text(tokens.to(device, non_blocking=True))
    image_emb = F.normalize(image_emb.float(), dim=-1)
    text_emb = F.normalize(text_emb.float(), dim=-1)
    scores = (image_emb * text_emb).sum(dim=-1)
    return image_emb.cpu(), text_emb.cpu(), scores.cpu()


def model_image_size(model) -> int | None:
    """The square input size of an open_clip model's vision tower (None if it has none)."""
    size = getattr(getattr(model, "visual", None), "image_size", None)
    if size is None:
        return None
    return max(size) if isinstance(size, Sequence) else int(size)


class RateMeter:
    """Counts done items and reports rate and ETA to a progress callback."""

    def __init__(self, total: int | None, progress: ProgressFn | None):
        self.total, self.progress = total, progress
        self.done, self.start = 0, time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is None:
            return
        rate = self.done / max(self.seconds, 1e-9)
        eta = (self.total - self.done) / rate if self.total is not None and rate > 0 else None
        self.progress(self.done, self.total, rate, eta)


def progress_logger(log: Callable[[str], None], every_s: float = 10.0) -> ProgressFn:
    """A progress callback that logs count, rate and ETA at most every ``every_s`` seconds."""
    last = [float("-inf")]

    def report(done, total, rate, eta):
        now = time.monotonic()
        if now - last[0] < every_s and done != total:
            return
        last[0] = now
        eta_txt = f", ETA {eta:.0f} s" if eta is not None else ""
        log(f"embedded {done}/{total if total is not None else '?'} at {rate:.1f} img/s{eta_txt}")

    return report


def _loader(dataset, batch_size: int, num_workers: int, device: torch.device) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        prefetch_factor=2 if num_workers else None,
    )


def _run(model, loader, samples, device, meter, skipped):
    """Model over every batch; returns the kept row numbers and per-batch (img, txt, score)."""
    kept, parts, start = [], [], 0
    for images, tokens, errors in loader:
        ok = np.array([not e for e in errors])
        for row in np.flatnonzero(~ok):
            skipped[samples[start + row].key] = errors[row]
        if ok.any():  # a batch of only failed images has nothing to embed (and no image shape)
            img, txt, score = (t.numpy()[ok] for t in embed_batch(model, images, tokens, device))
            parts.append((img.astype(np.float16), txt.astype(np.float16), score))
            kept.extend(start + np.flatnonzero(ok))
        start += len(errors)
        meter.add(len(errors))
    return kept, parts


def _assemble(samples, kept, parts, skipped, seconds, dim) -> EmbedResult:
    def cat(i, dtype):
        if not parts:
            return np.zeros((0, dim) if i < 2 else (0,), dtype)
        return np.concatenate([p[i] for p in parts]).astype(dtype)

    return EmbedResult(
        keys=[samples[i].key for i in kept],
        uids=[samples[i].uid for i in kept],
        image_emb=cat(0, np.float16),
        text_emb=cat(1, np.float16),
        scores=cat(2, np.float32),
        skipped=skipped,
        seconds=seconds,
    )


def embed_webdataset(
    tar_paths: Sequence[str | Path],
    model,
    preprocess,
    tokenizer,
    batch_size: int = 256,
    num_workers: int = 2,
    device: str | torch.device | None = None,
    progress: ProgressFn | None = None,
    jpeg_draft: bool = True,
) -> EmbedResult:
    """Embed every sample of ``tar_paths`` (img2dataset webdataset: .jpg, .txt, .json with uid).

    The model is put in eval mode and moved to ``device`` (CUDA when available if None).
    ``jpeg_draft`` decodes JPEGs at the smallest DCT scale that covers the model's input size
    (see ``DecodedSamples``). Results are in key order, deterministic and independent of
    ``num_workers``, of the order of ``tar_paths`` and of the order of each tar's members.
    """
    device = pick_device(device)
    model.eval().to(device)
    skipped: dict[str, str] = {}
    samples = [s for path in tar_paths for s in index_tar(path, skipped)]
    samples.sort(key=lambda s: (s.key, s.tar))  # one order whatever the tars' order
    draft = model_image_size(model) if jpeg_draft else None
    dataset = DecodedSamples(samples, preprocess, tokenizer, draft)
    meter = RateMeter(len(samples), progress)
    try:
        kept, parts = _run(
            model,
            _loader(dataset, batch_size, num_workers, device),
            samples,
            device,
            meter,
            skipped,
        )
    finally:
        dataset.close()
    dim = parts[0][0].shape[1] if parts else getattr(model.visual, "output_dim", 0)
    return _assemble(samples, kept, parts, skipped, meter.seconds, dim)
