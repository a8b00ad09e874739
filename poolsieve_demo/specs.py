"""Draw image specs: which concept, texture, size and layout an image gets.

Grain: one call -> one ImageSpec (or one (width, height)). Every draw comes from the caller's
numpy Generator, so the world is a pure function of its seed. Three size regimes: ordinary web
images (48-640 px, aspect <= 3), tiny ones (both sides < 32 px) and extreme banners or
skyscrapers (aspect 4.5-8); the last two are the pool's planted size problems.
"""

from __future__ import annotations

import math

import numpy as np

from poolsieve_demo.concepts import COLORS, RGB, SHAPES, TEXTURES
from poolsieve_demo.render import ImageSpec

TINY_MAX_SIDE = 31  # "tiny" means both sides < 32 px
EXTREME_ASPECT = (4.5, 8.0)  # "extreme" means max/min side > 4


def _oriented(rng: np.random.Generator, long: int, short: int) -> tuple[int, int]:
    return (long, short) if rng.random() < 0.5 else (short, long)


def ordinary_size(
    rng: np.random.Generator, min_side: int, max_side: int, max_aspect: float
) -> tuple[int, int]:
    """(width, height): long side log-uniform in [min_side, max_side], aspect <= max_aspect."""
    long = round(math.exp(rng.uniform(math.log(min_side), math.log(max_side))))
    aspect = math.exp(rng.uniform(0.0, math.log(max_aspect)))
    # ceil, not round: rounding the short side down could push the aspect past max_aspect
    return _oriented(rng, long, min(long, max(min_side, math.ceil(long / aspect))))


def tiny_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height), both sides in [8, 31]."""
    return tuple(int(v) for v in rng.integers(8, TINY_MAX_SIDE + 1, 2))


def extreme_size(rng: np.random.Generator, max_side: int) -> tuple[int, int]:
    """(width, height) with aspect in EXTREME_ASPECT and long side in [320, max_side]."""
    long = int(rng.integers(320, max(321, max_side + 1)))
    short = max(32, math.ceil(long / rng.uniform(*EXTREME_ASPECT)))
    return _oriented(rng, long, short)


def _pick(rng: np.random.Generator, names, given: str | None) -> str:
    return given if given is not None else list(names)[rng.integers(len(names))]


def sample_spec(
    rng: np.random.Generator,
    size: tuple[int, int],
    shape: str | None = None,
    color: str | None = None,
    texture: str | None = None,
) -> ImageSpec:
    """A spec of the given size; concept and texture uniform unless given; the shape fits inside."""
    shape, color = _pick(rng, SHAPES, shape), _pick(rng, COLORS, color)
    texture = _pick(rng, TEXTURES, texture)
    width, height = size
    radius = rng.uniform(0.28, 0.45) * min(width, height)
    jitter = rng.integers(-18, 19, 3)
    return ImageSpec(
        shape=shape,
        color=color,
        texture=texture,
        width=width,
        height=height,
        cx=round(float(rng.uniform(radius, width - radius)), 2),
        cy=round(float(rng.uniform(radius, height - radius)), 2),
        radius=round(float(radius), 2),
        angle=round(float(rng.uniform(-20, 20)), 1),
        rgb=tuple(int(v) for v in np.clip(np.array(RGB[color]) + jitter, 0, 255)),
        bg=int(rng.integers(185, 251)),
        seed=int(rng.integers(2**31)),
    )
