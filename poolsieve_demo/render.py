"""Render one demo image from its spec: a flat colored shape on a grey textured background.

Grain: one ImageSpec -> one RGB image. Rendering is a pure function of the spec (the texture's
randomness comes from ``spec.seed``), so an image can be re-rendered anywhere (the near-duplicate
of an eval image, a test) with identical pixels, and the generator never keeps pixels around.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

#: file extension -> (PIL format, Content-Type)
FORMATS = {
    "jpg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
}


@dataclass(frozen=True)
class ImageSpec:
    """Everything that decides an image's pixels (sizes and coordinates in pixels)."""

    shape: str
    color: str
    texture: str
    width: int
    height: int
    cx: float
    cy: float
    radius: float
    angle: float
    rgb: tuple[int, int, int]
    bg: int
    seed: int

    @property
    def concept(self) -> str:
        return f"{self.color} {self.shape}"


def _regular(n: int, cx: float, cy: float, r: float, angle: float, inner: float = 0.0) -> list:
    """Corners of a regular n-gon (or an n-pointed star when ``inner`` > 0), first corner up."""
    steps = 2 * n if inner else n
    points = []
    for k in range(steps):
        rad = r * (inner if inner and k % 2 else 1.0)
        a = math.radians(angle) - math.pi / 2 + 2 * math.pi * k / steps
        points.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return points


def _cross(cx: float, cy: float, r: float, angle: float) -> list:
    t = r / 3  # arm half-width
    outline = [(t, r), (t, t), (r, t), (r, -t), (t, -t), (t, -r)]
    outline += [(-x, -y) for x, y in outline]
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in outline]


def _draw_shape(draw: ImageDraw.ImageDraw, spec: ImageSpec, fill) -> None:
    cx, cy, r, a = spec.cx, spec.cy, spec.radius, spec.angle
    if spec.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        return
    points = {
        "square": lambda: _regular(4, cx, cy, r, a + 45),
        "triangle": lambda: _regular(3, cx, cy, r, a),
        "star": lambda: _regular(5, cx, cy, r, a, inner=0.45),
        "hexagon": lambda: _regular(6, cx, cy, r, a),
        "cross": lambda: _cross(cx, cy, r, a),
    }[spec.shape]()
    draw.polygon(points, fill=fill)


def shape_mask(spec: ImageSpec) -> Image.Image:
    """The shape's pixels as an 'L' mask (255 inside); tests use it to check the shape's color."""
    mask = Image.new("L", (spec.width, spec.height), 0)
    _draw_shape(ImageDraw.Draw(mask), spec, 255)
    return mask


def _pattern(texture: str, h: int, w: int, period: int) -> np.ndarray:
    """Where the darker tone goes, (h, w) bool, from 1-D pieces (fast on large images).

    stripes: vertical, horizontal or diagonal (the period picks); checker; dots on a grid.
    """
    x, y = np.arange(w, dtype=np.int32), np.arange(h, dtype=np.int32)[:, None]
    half = max(2, period // 2)
    if texture == "stripes":
        along = (x, y, x + y)[period % 3]
        return np.broadcast_to((along // half) % 2 == 0, (h, w))
    if texture == "checker":
        return ((x // period) % 2 == 0) ^ ((y // period) % 2 == 0)
    centre, radius = period / 2, period / 4
    return (x % period - centre) ** 2 + (y % period - centre) ** 2 < radius**2  # dots


def background(spec: ImageSpec) -> np.ndarray:
    """The grey background texture, (height, width) uint8; never colored, so hue = the shape."""
    h, w = spec.height, spec.width
    rng = np.random.default_rng(spec.seed)
    period = int(rng.integers(6, 24))
    dark = spec.bg - int(rng.integers(35, 70))
    if spec.texture == "plain":
        return np.full((h, w), spec.bg, np.uint8)
    if spec.texture == "noise":
        noise = rng.standard_normal((h, w), dtype=np.float32) * 18 + (spec.bg - 20)
        return np.clip(noise, 0, 255).astype(np.uint8)
    if spec.texture == "gradient":
        vertical = period % 2 == 0
        ramp = np.linspace(spec.bg, dark, h if vertical else w).astype(np.uint8)
        return np.broadcast_to(ramp[:, None] if vertical else ramp[None, :], (h, w))
    return np.where(_pattern(spec.texture, h, w, period), np.uint8(dark), np.uint8(spec.bg))


def render(spec: ImageSpec) -> Image.Image:
    """The RGB image of ``spec``."""
    grey = np.ascontiguousarray(background(spec))
    image = Image.fromarray(grey, "L").convert("RGB")
    _draw_shape(ImageDraw.Draw(image), spec, spec.rgb)
    return image


def encode(image: Image.Image, ext: str, quality: int = 90) -> bytes:
    """Encoded bytes in the format named by the file extension (fast settings: demo scale)."""
    fmt = FORMATS[ext][0]
    options = {
        "JPEG": {"quality": quality},
        "PNG": {"compress_level": 1},
        "WEBP": {"quality": quality - 10, "method": 0},
    }[fmt]
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()
