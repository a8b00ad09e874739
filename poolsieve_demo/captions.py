"""Captions for demo images: clean English ones and the pool's planted caption problems.

Grain: one call -> one caption (plus, for planted kinds, its detail). Clean captions follow
alt-text-like templates with synonyms; the planted kinds are what a CLIP-score or language filter
should catch: a caption naming another concept, a caption in another language (describing the
right concept), and junk alt text that names nothing.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from poolsieve_demo.concepts import COLORS, SHAPES, TEXTURES
from poolsieve_demo.render import ImageSpec

TEMPLATES = (
    "a photo of a {color} {shape}",
    "{Color} {shape} on white background",
    "A {color} {shape}.",
    "close-up of a {color} {shape}",
    "{color} {shape} icon",
    "Simple {color} {shape} illustration, flat design",
    "clipart: {color} {shape}",
    "a {color} {shape} on a {texture} background",
    "{Color} {shape} over a {texture} pattern",
    "the {shape} is {color}",
)
#: language -> (color words, shape words, templates); the concept is right, the language is not
FOREIGN = {
    "de": (
        ("Rot", "Grün", "Blau", "Gelb", "Lila", "Orange"),
        ("Kreis", "Quadrat", "Dreieck", "Stern", "Sechseck", "Kreuz"),
        ("{shape} in {color} auf einfachem Hintergrund", "Foto: {shape} in der Farbe {color}"),
    ),
    "fr": (
        ("rouge", "vert", "bleu", "jaune", "violet", "orange"),
        ("cercle", "carré", "triangle", "étoile", "hexagone", "croix"),
        ("{shape} de couleur {color} sur fond uni", "Photo : {shape} de couleur {color}"),
    ),
    "es": (
        ("rojo", "verde", "azul", "amarillo", "morado", "naranja"),
        ("círculo", "cuadrado", "triángulo", "estrella", "hexágono", "cruz"),
        ("{shape} de color {color} sobre fondo liso", "Foto: {shape} de color {color}"),
    ),
    "it": (
        ("rosso", "verde", "blu", "giallo", "viola", "arancione"),
        ("cerchio", "quadrato", "triangolo", "stella", "esagono", "croce"),
        ("{shape} di colore {color} su sfondo semplice", "Foto: {shape} di colore {color}"),
    ),
    "pt": (
        ("vermelho", "verde", "azul", "amarelo", "roxo", "laranja"),
        ("círculo", "quadrado", "triângulo", "estrela", "hexágono", "cruz"),
        ("{shape} de cor {color} em fundo liso", "Foto: {shape} de cor {color}"),
    ),
    "nl": (
        ("rood", "groen", "blauw", "geel", "paars", "oranje"),
        ("cirkel", "vierkant", "driehoek", "ster", "zeshoek", "kruis"),
        (
            "{shape} in de kleur {color} op een effen achtergrond",
            "Foto: {shape} in de kleur {color}",
        ),
    ),
}
JUNK = {
    "camera_filename": ("IMG_{n:04d}.JPG", "DSC_{n:04d}.jpg", "PXL_2023{n:04d}.jpg"),
    "click_here": ("click here", "Click here to download", "click to enlarge"),
    "untitled": ("untitled", "Untitled-{n}", "image", "thumbnail"),
    "number": ("{n}", "{n}.png", "photo {n}"),
}
MISMATCH = ("wrong_color", "wrong_shape", "wrong_both")


def _choice(rng: np.random.Generator, options):
    options = list(options)
    return options[rng.integers(len(options))]


def clean_caption(rng: np.random.Generator, spec: ImageSpec) -> str:
    """An English caption of the spec's concept from TEMPLATES with synonyms."""
    color = _choice(rng, COLORS[spec.color])
    return _choice(rng, TEMPLATES).format(
        color=color,
        Color=color.capitalize(),
        shape=_choice(rng, SHAPES[spec.shape]),
        texture=_choice(rng, TEXTURES[spec.texture]),
    )


def _other(rng: np.random.Generator, names, current: str) -> str:
    return _choice(rng, [n for n in names if n != current])


def mismatched_caption(rng: np.random.Generator, spec: ImageSpec) -> tuple[str, str, str]:
    """(caption, detail, the concept it names): a clean caption of another concept."""
    detail = _choice(rng, MISMATCH)
    color = spec.color if detail == "wrong_shape" else _other(rng, COLORS, spec.color)
    shape = spec.shape if detail == "wrong_color" else _other(rng, SHAPES, spec.shape)
    wrong = replace(spec, color=color, shape=shape)
    return clean_caption(rng, wrong), detail, wrong.concept


def foreign_caption(rng: np.random.Generator, spec: ImageSpec) -> tuple[str, str]:
    """(caption, language code): the right concept, described in another language."""
    language = _choice(rng, FOREIGN)
    colors, shapes, templates = FOREIGN[language]
    text = _choice(rng, templates).format(
        color=colors[list(COLORS).index(spec.color)], shape=shapes[list(SHAPES).index(spec.shape)]
    )
    return text[0].upper() + text[1:], language


def junk_caption(rng: np.random.Generator) -> tuple[str, str]:
    """(caption, detail): alt text that names nothing (file names, "click here", "untitled")."""
    detail = _choice(rng, JUNK)
    return _choice(rng, JUNK[detail]).format(n=int(rng.integers(10_000))), detail


def _where(spec: ImageSpec) -> str:
    col = ("left", "center", "right")[min(2, int(3 * spec.cx / spec.width))]
    row = ("top", "middle", "bottom")[min(2, int(3 * spec.cy / spec.height))]
    if (row, col) == ("middle", "center"):
        return "in the center"
    return f"in the {row} {col}" if row != "middle" else f"on the {col}"


def retrieval_caption(rng: np.random.Generator, spec: ImageSpec) -> str:
    """A caption that also says size, place and texture, so it singles out one image."""
    size = "small" if spec.radius < 0.36 * min(spec.width, spec.height) else "large"
    words = {
        "size": size,
        "color": _choice(rng, COLORS[spec.color]),
        "shape": _choice(rng, SHAPES[spec.shape]),
        "where": _where(spec),
        "texture": _choice(rng, TEXTURES[spec.texture]),
    }
    template = _choice(
        rng,
        (
            "a {size} {color} {shape} {where} on a {texture} background",
            "{texture} background with a {size} {color} {shape} {where}",
            "photo of a {size} {color} {shape} {where}, {texture} backdrop",
        ),
    )
    return template.format(**words)
