"""The demo world's vocabulary: the concepts an image carries and the English words for them.

A concept is a (color, shape) pair, 6 x 6 = 36 classes; the background texture is a nuisance
variable that captions may mention but the class never depends on. Shape colors are saturated
hues and every background is grey, so a concept is visible in the pixels (and learnable by a tiny
CLIP) whatever the texture.
"""

from __future__ import annotations

SHAPES: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "round shape", "disc"),
    "square": ("square", "box", "square tile"),
    "triangle": ("triangle", "three-sided shape", "triangular sign"),
    "star": ("star", "five-pointed star", "star shape"),
    "hexagon": ("hexagon", "six-sided shape"),
    "cross": ("cross", "plus sign", "cross shape"),
}
COLORS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald", "lime green"),
    "blue": ("blue", "navy blue", "azure"),
    "yellow": ("yellow", "golden", "lemon yellow"),
    "purple": ("purple", "violet"),
    "orange": ("orange", "amber"),
}
#: the base RGB of each color (a rendered shape is jittered around it)
RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 55),
    "blue": (35, 70, 215),
    "yellow": (235, 205, 25),
    "purple": (135, 45, 175),
    "orange": (240, 125, 25),
}
#: background texture -> words a caption may use for it
TEXTURES: dict[str, tuple[str, ...]] = {
    "plain": ("plain", "white", "blank"),
    "stripes": ("striped", "lined"),
    "dots": ("dotted", "polka-dot"),
    "noise": ("noisy", "grainy"),
    "checker": ("checkered", "checkerboard"),
    "gradient": ("gradient", "shaded"),
}
#: zero-shot classes, "red circle" ...; a class's label is its index here
CLASSNAMES: tuple[str, ...] = tuple(f"{c} {s}" for s in SHAPES for c in COLORS)


def classname(color: str, shape: str) -> str:
    return f"{color} {shape}"


def label_of(color: str, shape: str) -> int:
    return CLASSNAMES.index(classname(color, shape))
