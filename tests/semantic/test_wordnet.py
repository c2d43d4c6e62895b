"""WordNet as the verifier reads it: Debian's files through nltk's reader, synonyms and antonyms.

Real data, no fake: the WordNet files of Debian's `wordnet-base` (installed by
`make system-deps`) and nltk from the `semantic` extra.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcache_sidecar.semantic import wordnet


@pytest.fixture(scope="module")
def wn() -> wordnet.WordNet:
    loaded = wordnet.load()
    assert loaded is not None, "WordNet did not load: install wordnet-base (make system-deps) and the semantic extra"
    return loaded


@pytest.mark.parametrize(
    ("x", "y"),
    [("delete", "remove"), ("buy", "purchase"), ("luggage", "baggage"), ("flu", "influenza"), ("begin", "start"),
     ("faster", "quicker"), ("children", "child"), ("cancel", "call_off")],
)  # fmt: skip
def test_words_that_share_a_sense_are_synonyms(wn: wordnet.WordNet, x: str, y: str) -> None:
    assert wn.synonyms(x, y) and wn.synonyms(y, x)


@pytest.mark.parametrize(
    ("x", "y"),
    [("beef", "lamb"), ("bake", "grill"), ("red", "green"), ("train", "bus"), ("stack", "queue"), ("cat", "dog"),
     ("yearly", "monthly"), ("increase", "decrease")],
)  # fmt: skip
def test_siblings_and_opposites_are_not_synonyms(wn: wordnet.WordNet, x: str, y: str) -> None:
    assert not wn.synonyms(x, y) and not wn.synonyms(y, x)


@pytest.mark.parametrize(
    ("x", "y"),
    [("increase", "decrease"), ("buy", "sell"), ("up", "down"), ("quick", "slow"), ("subscribe", "unsubscribe"),
     ("like", "dislike"), ("upload", "download")],
)  # fmt: skip
def test_opposites_are_antonyms(wn: wordnet.WordNet, x: str, y: str) -> None:
    assert wn.antonyms(x, y) and wn.antonyms(y, x)


def test_comparatives_and_superlatives_name_their_adjective(wn: wordnet.WordNet) -> None:
    assert [wn.degree(w) for w in ("largest", "closer", "cheapest", "most", "table")] == [
        "large",
        "close",
        "cheap",
        "most",
        None,
    ]


def test_without_wordnet_files_there_is_no_reader(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(wordnet.ENV_DIR, str(tmp_path))
    assert wordnet.load.__wrapped__() is None
