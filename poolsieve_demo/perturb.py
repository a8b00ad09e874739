"""Near-duplicate perturbations: how a pool image that copies an eval image differs from it.

Grain: one image -> one slightly changed image of the same size. Each change is one a re-upload
picks up on the web (a small crop-shift, a JPEG re-encode, a brightness tweak); an embedding-based
decontamination check must still see the copy as the eval image.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance

PERTURBATIONS = ("shift", "jpeg", "brightness")


def _shift(image: Image.Image, seed: int) -> Image.Image:
    """Shift by 2-4 px right and down, repeating the edge pixels."""
    dx, dy = (int(v) for v in np.random.default_rng(seed).integers(2, 5, 2))
    pixels = np.asarray(image)
    shifted = np.pad(pixels, ((dy, 0), (dx, 0), (0, 0)), mode="edge")
    return Image.fromarray(shifted[: pixels.shape[0], : pixels.shape[1]])


def _jpeg(image: Image.Image) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=65)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def perturb(image: Image.Image, kind: str, seed: int) -> Image.Image:
    """``image`` changed by one of PERTURBATIONS (deterministic from ``seed``)."""
    if kind == "shift":
        return _shift(image, seed)
    if kind == "jpeg":
        return _jpeg(image)
    if kind == "brightness":
        return ImageEnhance.Brightness(image).enhance(0.88 if seed % 2 else 1.12)
    raise ValueError(f"unknown perturbation {kind!r}")
