"""Eval decontamination: exact max-similarity answers, thresholds, and planted near-duplicates."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance

from poolsieve.images.pixel_features import (
    PIXEL_DIM,
    PIXEL_THRESHOLD,
    DetectionRates,
    detection_rates,
    flag_near_duplicates,
    max_similarity,
    pixel_embedding,
    threshold_for_false_flag_rate,
)

EVAL = np.array(
    [
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0],  # ties with row 1: the lower index must win, across blocks too
        [0.6, 0.8, 0.0],
    ]
)
POOL = np.array(
    [
        [2.0, 0.0, 0.0],  # not unit: normalized first -> 1.0 with eval 0
        [0.0, 3.0, 0.0],  # tie between eval 1 and 2 -> 1
        [0.0, 0.0, 1.0],  # orthogonal to all -> 0.0, first index 0
        [0.6, 0.8, 0.0],  # exactly eval 3
        [0.0, 0.0, 0.0],  # empty row (no image) -> 0.0, index 0
        [-1.0, 0.0, 0.0],  # best is 0.0 (eval 1), not -1
    ]
)


@pytest.mark.parametrize("block_size", [1, 2, 3, 4, 8192])
def test_max_similarity_exact_on_hand_made_vectors(block_size):
    sims, args = max_similarity(POOL, EVAL, block_size=block_size)
    np.testing.assert_allclose(sims, [1.0, 1.0, 0.0, 1.0, 0.0, 0.0], atol=1e-6)
    assert args.tolist() == [0, 1, 0, 3, 0, 1]
    assert sims.dtype == np.float32 and args.dtype == np.int64


def test_max_similarity_matches_brute_force_for_any_block_size():
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(300, 16)).astype(np.float16)
    evals = rng.normal(size=(70, 16)).astype(np.float16)
    unit = [
        x.astype(np.float32) / np.linalg.norm(x.astype(np.float32), axis=1, keepdims=True)
        for x in (pool, evals)
    ]
    full = unit[0] @ unit[1].T
    for block_size in (16, 64, 70, 300, 8192):
        sims, args = max_similarity(pool, evals, block_size=block_size)
        np.testing.assert_allclose(sims, full.max(axis=1), atol=1e-5)
        assert np.array_equal(args, full.argmax(axis=1))


def test_max_similarity_without_eval_rows():
    sims, args = max_similarity(POOL, np.zeros((0, 3)))
    assert np.isneginf(sims).all() and (args == -1).all()


def test_flag_threshold_is_inclusive_and_nan_is_not_flagged():
    flags = flag_near_duplicates(np.array([0.9, 0.8, 0.79, np.nan]), 0.8)
    assert flags.tolist() == [True, True, False, False]


def test_threshold_for_false_flag_rate_is_exact():
    unrelated = np.array([0.1, 0.9, 0.5, 0.8, 0.2, 0.3, 0.7, 0.4, 0.6, 0.0], np.float32)
    assert flag_near_duplicates(unrelated, threshold_for_false_flag_rate(unrelated, 0.1)).sum() == 1
    assert (
        flag_near_duplicates(unrelated, threshold_for_false_flag_rate(unrelated, 0.25)).sum() == 2
    )
    assert flag_near_duplicates(unrelated, threshold_for_false_flag_rate(unrelated, 0.0)).sum() == 0
    assert threshold_for_false_flag_rate(unrelated, 1.0) == float("-inf")


def test_detection_rates():
    flags = np.array([True, True, False, True, False, False])
    truth = np.array([True, True, True, False, False, False])
    assert detection_rates(flags, truth) == DetectionRates(2 / 3, 1 / 3, 3, 3)


# --- planted near-duplicates: random shape scenes, their near-copies, unrelated scenes ---


def _color(rng) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def scene(rng, size: int = 128) -> Image.Image:
    """A random scene: a background color and 2-5 ellipses, rectangles or triangles."""
    image = Image.new("RGB", (size, size), _color(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = (int(v) for v in rng.integers(-size // 4, size, 2))
        w, h = (int(v) for v in rng.integers(size // 8, size // 2, 2))
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=_color(rng))
        elif kind == 1:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=_color(rng))
        else:
            draw.polygon(
                [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(3)],
                fill=_color(rng),
            )
    return image


def recompress(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=int(quality))
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def shift(image: Image.Image, rng) -> Image.Image:
    """Move the content 2-5% of the size (crop one side, scale back)."""
    w, h = image.size
    dx, dy = (
        int(v) * int(s)
        for v, s in zip(rng.integers(2, w // 20 + 1, 2), rng.choice([-1, 1], 2), strict=True)
    )
    box = (max(0, dx), max(0, dy), w + min(0, dx), h + min(0, dy))
    return image.crop(box).resize((w, h), Image.BILINEAR)


def brighten(image: Image.Image, rng) -> Image.Image:
    factor = rng.choice([rng.uniform(0.7, 0.85), rng.uniform(1.15, 1.3)])
    return ImageEnhance.Brightness(image).enhance(float(factor))


NEAR_COPIES = {
    "shift": shift,
    "jpeg": lambda image, rng: recompress(image, rng.integers(15, 50)),
    "brightness": brighten,
    "shift+jpeg": lambda image, rng: recompress(shift(image, rng), rng.integers(30, 70)),
}


def planted_set(seed: int, n_eval: int = 120, n_unrelated: int = 1200):
    """Eval scenes; one near-copy of each (kinds in turn); unrelated scenes saved as JPEG."""
    rng = np.random.default_rng(seed)
    evals = [scene(rng) for _ in range(n_eval)]
    kinds = [list(NEAR_COPIES)[i % len(NEAR_COPIES)] for i in range(n_eval)]
    copies = [NEAR_COPIES[k](image, rng) for k, image in zip(kinds, evals, strict=True)]
    unrelated = [recompress(scene(rng), 75) for _ in range(n_unrelated)]
    return evals, copies, kinds, unrelated


@pytest.fixture(scope="module")
def planted():
    evals, copies, kinds, unrelated = planted_set(seed=1)
    sims, args = max_similarity(pixel_embedding(copies + unrelated), pixel_embedding(evals))
    truth = np.r_[np.ones(len(copies), bool), np.zeros(len(unrelated), bool)]
    return sims, args, truth, np.array(kinds)


def test_pixel_features_flag_planted_near_duplicates(planted):
    sims, args, truth, kinds = planted
    rates = detection_rates(flag_near_duplicates(sims, PIXEL_THRESHOLD), truth)
    assert rates.recall >= 0.95 and rates.false_flag_rate <= 0.01, rates
    flags = flag_near_duplicates(sims[truth], PIXEL_THRESHOLD)
    for kind in NEAR_COPIES:  # every kind of near-copy, not just the easy ones
        assert flags[kinds == kind].mean() >= 0.9, kind
    hits = flags & (args[truth] == np.arange(truth.sum()))
    assert hits.sum() == flags.sum()  # a flagged copy points at its own eval image


def test_calibrated_threshold_keeps_its_false_flag_budget(planted):
    sims, _, truth, _ = planted
    threshold = threshold_for_false_flag_rate(sims[~truth], 0.01)
    rates = detection_rates(flag_near_duplicates(sims, threshold), truth)
    assert rates.false_flag_rate <= 0.01 and rates.recall >= 0.95


def test_pixel_embedding_is_unit_deterministic_and_brightness_blind():
    image = scene(np.random.default_rng(3))
    flat = Image.new("RGB", (64, 48), (200, 30, 30))
    feats = pixel_embedding([image, image, ImageEnhance.Brightness(image).enhance(0.8), flat])
    assert feats.dtype == np.float32 and feats.shape == (4, PIXEL_DIM)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-6)
    assert np.array_equal(feats[0], feats[1])
    assert feats[0] @ feats[2] > 0.99
    other_flat = pixel_embedding([Image.new("RGB", (32, 24), (10, 200, 10))])[0]
    assert feats[3] @ other_flat > 0.99  # flat images have only their aspect to compare
    assert feats[0] @ feats[3] < 0.5
    assert pixel_embedding([]).shape == (0, PIXEL_DIM)
