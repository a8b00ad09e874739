"""Eval decontamination: how close is each pool image to its nearest eval image, and flag it.

Grain: one value per pool row -- the max cosine similarity to any eval image and which one.

The feature is ``pixel_embedding``: no model, deterministic, it matches copies of the same
picture (re-encoded, resized, shifted a few pixels, re-exposed), never semantic ones. A weak
scorer's CLIP embeddings cannot tell such copies from unrelated images, so these are used
whenever the scorer is not a strong pretrained model, and beside it otherwise.
``PIXEL_THRESHOLD`` and the alternatives, with their recall and false-flag figures:
docs/decisions.md. ``threshold_for_false_flag_rate`` calibrates a threshold on images known to
be unrelated to the eval set. ``max_similarity`` works a block at a time, so memory stays
bounded by ``block_size``^2 floats whatever the sizes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

PIXEL_THRESHOLD = 0.94  # pixel_embedding cosine; how it was chosen: docs/decisions.md
LAYOUT_SIZE, FFT_SIZE, ASPECT_SCALE = 24, 128, 4.0
PIXEL_WEIGHTS = (1.0, 2.0, 1.0)  # layout, texture spectrum, aspect
#: copy_embedding's smaller grids: kept for every pool image (image_hashes), so 1,314 dims
#: (2.6 KB as float16) instead of 10,050; what it costs in separation: docs/decisions.md
COPY_LAYOUT_SIZE, COPY_FFT_SIZE = 16, 32


def feature_dim(layout_size: int, fft_size: int) -> int:
    return 3 * layout_size**2 + fft_size * (fft_size // 2 + 1) + 2


PIXEL_DIM = feature_dim(LAYOUT_SIZE, FFT_SIZE)
COPY_DIM = feature_dim(COPY_LAYOUT_SIZE, COPY_FFT_SIZE)


def _unit_rows(block: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float32 rows scaled to unit length; zero rows stay zero (similarity 0 to everything)."""
    return F.normalize(torch.as_tensor(block).float(), dim=1)


def max_similarity(
    pool_emb: np.ndarray, eval_emb: np.ndarray, block_size: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """For each pool row: the max cosine similarity to any eval row and its eval index.

    Rows are L2-normalized here (zero rows give 0). Ties go to the lowest eval index, also across
    blocks. With no eval rows every max is -inf and every index -1. Pool and eval are taken a
    block at a time (float16 input is converted per block), so a 1M-row pool is never copied to
    float32 as a whole.
    """
    n = len(pool_emb)
    best = np.full(n, -np.inf, np.float32)
    index = np.full(n, -1, np.int64)
    eval_blocks = [
        (start, _unit_rows(eval_emb[start : start + block_size]).T)
        for start in range(0, len(eval_emb), block_size)
    ]
    for start in range(0, n, block_size):
        pool = _unit_rows(pool_emb[start : start + block_size])
        sims, args = _block_max(pool, eval_blocks)
        best[start : start + len(pool)] = sims.numpy()
        index[start : start + len(pool)] = args.numpy()
    return best, index


def _block_max(pool: torch.Tensor, eval_blocks) -> tuple[torch.Tensor, torch.Tensor]:
    """Running max over eval blocks; only a strictly larger value replaces an earlier index."""
    best = torch.full((len(pool),), float("-inf"))
    index = torch.full((len(pool),), -1, dtype=torch.int64)
    for offset, eval_t in eval_blocks:
        sims, args = (pool @ eval_t).max(dim=1)  # first maximal index within the block
        better = sims > best
        best = torch.where(better, sims, best)
        index = torch.where(better, args + offset, index)
    return best, index


def flag_near_duplicates(max_sim: np.ndarray, threshold: float) -> np.ndarray:
    """True where a pool row is at least ``threshold`` similar to some eval row (NaN: False)."""
    max_sim = np.asarray(max_sim, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(max_sim, nan=-np.inf) >= threshold


def threshold_for_false_flag_rate(unrelated_max_sim: np.ndarray, max_rate: float) -> float:
    """The lowest threshold flagging at most ``max_rate`` of rows known to be unrelated.

    Calibrate on images known to share nothing with the eval set (their max similarity to it),
    then use the threshold on the pool. It is just above the k-th largest unrelated similarity,
    k = floor(max_rate * n), so exactly at most k unrelated rows reach it.
    """
    sims = np.sort(np.asarray(unrelated_max_sim, dtype=np.float32))[::-1]
    if len(sims) == 0:
        raise ValueError("need at least one unrelated similarity to calibrate on")
    k = int(np.floor(max_rate * len(sims)))
    if k >= len(sims):
        return float("-inf")
    return float(np.nextafter(sims[k], np.float32(np.inf)))


@dataclass(frozen=True)
class DetectionRates:
    """How a threshold did on rows with known truth."""

    recall: float  # share of true near-duplicates flagged
    false_flag_rate: float  # share of unrelated rows flagged
    near_duplicates: int
    unrelated: int


def detection_rates(flags: np.ndarray, is_near_duplicate: np.ndarray) -> DetectionRates:
    """Recall and false-flag rate of ``flags`` against planted truth (NaN when a side is empty)."""
    flags = np.asarray(flags, dtype=bool)
    truth = np.asarray(is_near_duplicate, dtype=bool)
    dups, clean = int(truth.sum()), int((~truth).sum())
    recall = float(flags[truth].mean()) if dups else float("nan")
    false_rate = float(flags[~truth].mean()) if clean else float("nan")
    return DetectionRates(recall, false_rate, dups, clean)


def _layout(image: Image.Image, size: int) -> np.ndarray:
    """Where things are and in which color: a blurred size x size RGB thumbnail (blur radius
    1 px at 24 px), channels centered."""
    thumb = image.convert("RGB").resize((size, size), Image.BOX)
    blurred = thumb.filter(ImageFilter.GaussianBlur(size / LAYOUT_SIZE))
    pixels = np.asarray(blurred, np.float32).reshape(-1, 3)
    return _unit(pixels - pixels.mean(axis=0))


def _spectrum(image: Image.Image, size: int) -> np.ndarray:
    """Which textures: |FFT| of a size x size grey thumbnail, blind to shifts (phase is
    dropped)."""
    grey = np.asarray(image.convert("L").resize((size, size), Image.BOX), np.float32)
    return _unit(np.sqrt(np.abs(np.fft.rfft2(grey - grey.mean()))))


def _aspect(image: Image.Image) -> np.ndarray:
    """The aspect ratio as a unit 2-vector: copies keep it, unrelated images often do not."""
    angle = ASPECT_SCALE * np.log(image.width / image.height)
    return np.array([np.cos(angle), np.sin(angle)], np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.ravel().astype(np.float32)
    return x / max(float(np.linalg.norm(x)), 1e-6)


def _pixel_feature(image: Image.Image, layout_size: int, fft_size: int) -> np.ndarray:
    parts = (_layout(image, layout_size), _spectrum(image, fft_size), _aspect(image))
    return np.concatenate(
        [np.sqrt(w / sum(PIXEL_WEIGHTS)) * p for w, p in zip(PIXEL_WEIGHTS, parts, strict=True)]
    )


def pixel_embedding(
    images: Iterable[Image.Image], layout_size: int = LAYOUT_SIZE, fft_size: int = FFT_SIZE
) -> np.ndarray:
    """(n, PIXEL_DIM) float32 unit rows; cosine = weighted mean of three similarities.

    Layout (blurred color thumbnail, weight 1), texture spectrum (weight 2) and aspect (weight
    1). Centering and unit-normalizing each part removes global brightness/contrast scaling; the
    blur and the 24 px grid absorb JPEG noise and few-pixel shifts; the spectrum ignores shifts.
    A flat image has no layout or texture, so it matches only flat images of its aspect.
    """
    rows = [_pixel_feature(image, layout_size, fft_size) for image in images]
    if not rows:
        return np.zeros((0, feature_dim(layout_size, fft_size)), np.float32)
    feats = np.stack(rows).astype(np.float32)
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


def copy_embedding(images: Iterable[Image.Image]) -> np.ndarray:
    """(n, COPY_DIM) float32 unit rows: pixel_embedding on the smaller grids, the feature
    near_duplicates' semantic rule compares with ``semantic_features="pixel"``."""
    return pixel_embedding(images, COPY_LAYOUT_SIZE, COPY_FFT_SIZE)
