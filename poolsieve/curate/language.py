"""Caption language identification, pluggable.

DataComp uses fastText's lid.176, whose weights must be downloaded; offline, a detector whose
model ships inside its package serves: ``lingua`` (the default, right on short captions) or
``langid`` (lighter, often wrong on short English captions; figures in docs/decisions.md).

A detector is any callable ``texts -> [(ISO 639-1 code, confidence)]``; register one in
``DETECTORS`` to make it selectable by name (the curation resource's ``language_detector``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

Detector = Callable[[Sequence[str]], list[tuple[str, float]]]


@cache
def _langid_identifier():
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def langid_detector(texts: Sequence[str]) -> list[tuple[str, float]]:
    """(ISO 639-1 code, probability) per text; empty or blank text -> ("", 0.0)."""
    identifier = _langid_identifier()
    out = []
    for text in texts:
        if not text or not text.strip():
            out.append(("", 0.0))
            continue
        language, probability = identifier.classify(text)
        out.append((language, float(probability)))
    return out


#: the languages of ~95% of Common Crawl's pages (CC's language statistics); rarer ones (Latin,
#: Maori, Yoruba...) mostly appear as false matches of short English captions
WEB_LANGUAGES = (
    "en",
    "de",
    "ru",
    "ja",
    "zh",
    "fr",
    "es",
    "it",
    "pt",
    "nl",
    "pl",
    "vi",
    "tr",
    "id",
    "ar",
    "ko",
    "sv",
    "fa",
    "cs",
    "uk",
    "hu",
    "ro",
    "el",
    "da",
    "fi",
    "th",
    "he",
    "nb",
    "hi",
    "bg",
)


@cache
def _lingua():
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, code.upper()) for code in WEB_LANGUAGES]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


def lingua_detector(texts: Sequence[str]) -> list[tuple[str, float]]:
    """(ISO 639-1 code, confidence of that language) per text; undecided or blank -> ("", 0.0)."""
    model = _lingua()
    found = model.detect_languages_in_parallel_of([t or "" for t in texts])
    out = []
    for text, language in zip(texts, found, strict=True):
        if language is None or not (text or "").strip():
            out.append(("", 0.0))
            continue
        confidence = model.compute_language_confidence(text, language)
        out.append((language.iso_code_639_1.name.lower(), float(confidence)))
    return out


DETECTORS: dict[str, Detector] = {"lingua": lingua_detector, "langid": langid_detector}


def detector(name: str) -> Detector:
    if name not in DETECTORS:
        raise ValueError(f"unknown language detector {name!r}; known: {sorted(DETECTORS)}")
    return DETECTORS[name]
