"""WordNet for the verifier: which two words mean the same, and which mean the opposite.

The verifier must tell `delete a branch` / `remove a branch` (a synonym: same answer)
from `upload a file` / `download a file` (an antonym) and `beef stew` / `lamb stew`
(two different things), and no hand-written list of words can be grown to cover
that. WordNet can: Princeton's lexical database, as Debian ships it (`wordnet-base`,
the WNDB files in /usr/share/wordnet), read by nltk's WordNet corpus reader.

Two words are **synonyms** when some sense of one and some sense of the other are the
same synset, or (verbs) one's synset is the direct hypernym of the other's (`delete` is
a way to `remove`), or (adjectives) one is a satellite of the other (`damaged` /
`broken`). Two cohyponyms (`beef` and `lamb` are both `meat`) never are. Two words are
**antonyms** when WordNet records it for some sense (`increase` / `decrease`, `buy` /
`sell`, `up` / `down`, through an adjective's head: `quick` / `slow`), or when one is the
other with a negating prefix (`subscribe` / `unsubscribe`, `like` / `dislike`).

Optional: this needs `pip install 'llmcache-sidecar[semantic]'` (nltk) and the
WordNet files (Debian's `wordnet-base`, or any WNDB directory named by the
`LLMCACHE_WORDNET_DIR` environment variable). Without them `load()` returns None
and the verifier falls back to treating every swapped word as a change. Loading takes
about 3 s and 70 MB (the lemma index); call it off the event loop. Lookups are cached.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

logger = logging.getLogger(__name__)

DEFAULT_DIR = "/usr/share/wordnet"
ENV_DIR = "LLMCACHE_WORDNET_DIR"
_NEGATING_PREFIXES = ("un", "dis", "non")
_PREFIXES_WORDNET_CONFIRMS = ("non", "un", "in", "im", "il", "ir", "dis", "anti", "a")
"""Prefixes that may negate a word; only WordNet's antonymy says whether one does (`install` is not `stall`)."""
_CACHED_WORDS = 65_536
_DEGREE_WORDS = frozenset({"more", "most", "less", "least", "fewer", "fewest"})

# The lexicographer files of WNDB 3.0 (lexnames(5WN)). Debian's wordnet-base leaves out the
# `lexnames` file that nltk's reader opens first; this is that file's fixed content.
_LEXNAMES = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)  # fmt: skip
_POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


class WordNet:
    """Synonymy and antonymy of single words (lower case, as written or inflected)."""

    def __init__(self, reader: WordNetCorpusReader) -> None:
        self._reader = reader
        self.senses = lru_cache(maxsize=_CACHED_WORDS)(self._senses)
        self.wider = lru_cache(maxsize=_CACHED_WORDS)(self._wider)
        self.opposites = lru_cache(maxsize=_CACHED_WORDS)(self._opposites)
        self.lemmas = lru_cache(maxsize=_CACHED_WORDS)(self._lemmas)
        self.parts_of_speech = lru_cache(maxsize=_CACHED_WORDS)(self._parts_of_speech)
        self.negated_stem = lru_cache(maxsize=_CACHED_WORDS)(self._negated_stem)
        self.degree = lru_cache(maxsize=_CACHED_WORDS)(self._degree)
        self.verb_form = lru_cache(maxsize=_CACHED_WORDS)(self._verb_form)

    def _degree(self, word: str) -> str | None:
        """The adjective or adverb that `word` is the comparative or superlative of (`largest` -> `large`)."""
        if word in _DEGREE_WORDS:
            return word
        for pos in ("a", "r"):
            base = self._reader.morphy(word, pos)
            if base is not None and base != word:
                return str(base)
        return None

    def _verb_form(self, word: str) -> bool:
        """`word` is an inflected form of a verb (approved, written, shared)."""
        base = self._reader.morphy(word, "v")
        return base is not None and base != word

    def known(self, word: str) -> bool:
        return bool(self.lemmas(word))

    def person(self, word: str) -> bool:
        """`word` can name a kind of person (`nurse`, `vegan`, `beginner`): WordNet's noun.person."""
        return any(synset.lexname() == "noun.person" for synset in self._reader.synsets(word, "n"))

    def noun(self, word: str) -> bool:
        """`word` can be a noun (`root`, `foods`, `while`), as written or as a plural."""
        return "n" in self.parts_of_speech(word)

    def modifier(self, word: str) -> bool:
        """`word` can stand before a noun and narrow it: an adjective, a noun, or a participle (`injured`)."""
        pos = self.parts_of_speech(word)
        return "a" in pos or "n" in pos or (word.endswith(("ed", "en", "ing")) and self.verb_form(word))

    def adverb_only(self, word: str) -> bool:
        """`kindly`, `widely`, `jointly`: WordNet knows `word` as an adverb and as nothing else that modifies a noun."""
        pos = self.parts_of_speech(word)
        return pos == frozenset("r") or (word.endswith("ly") and "r" in pos and "n" not in pos)

    def synonyms(self, x: str, y: str) -> bool:
        if x == y:
            return True
        if self.lemmas(x) & self.lemmas(y):
            return True  # two forms of one word: faster / fast
        own_x, own_y = self.senses(x), self.senses(y)
        # One step wider on one side only: two troponyms of `cook` (bake, grill) or two
        # satellites of `chromatic` (red, green) are siblings, not synonyms.
        return bool(own_x & own_y or own_x & self.wider(y) or self.wider(x) & own_y)

    def antonyms(self, x: str, y: str) -> bool:
        if x == y:
            return False
        if negated(x, y) and not self.synonyms(x, y):
            return True
        return bool(self.opposites(x) & self.lemmas(y)) or bool(self.opposites(y) & self.lemmas(x))

    def _negated_stem(self, word: str) -> str | None:
        """The word that `word` negates with a prefix, when WordNet records the two as antonyms.

        `nontoxic` -> `toxic`, `unresponsive` -> `responsive`, `illegal` -> `legal`; `install`,
        `disease` and `income` negate nothing: WordNet has no antonymy between them and a stem.
        """
        for prefix in _PREFIXES_WORDNET_CONFIRMS:
            stem = word[len(prefix) :]
            lemmas = self.lemmas(stem) if word.startswith(prefix) and len(stem) >= 4 else frozenset()
            if lemmas and self.opposites(word) & ({stem} | lemmas):
                return stem
        return None

    def _parts_of_speech(self, word: str) -> frozenset[str]:
        """`n`, `v`, `a` (satellites included) and `r`: what WordNet knows `word` as."""
        return frozenset("a" if synset.pos() == "s" else synset.pos() for synset in self._reader.synsets(word))

    def _lemmas(self, word: str) -> frozenset[str]:
        """The dictionary forms `word` can be an inflection of (children -> child, faster -> fast)."""
        forms = (self._reader.morphy(word, pos) for pos in ("n", "v", "a", "r"))
        return frozenset(form for form in forms if form is not None)

    def _senses(self, word: str) -> frozenset[str]:
        """Names of the synsets `word` belongs to."""
        return frozenset(synset.name() for synset in self._reader.synsets(word))

    def _wider(self, word: str) -> frozenset[str]:
        """The direct hypernyms of `word`'s verb senses and the heads of its satellite adjective senses."""
        names: set[str] = set()
        for synset in self._reader.synsets(word):
            pos = synset.pos()
            if pos == "v":
                names.update(s.name() for s in synset.hypernyms())
            elif pos == "s":
                names.update(s.name() for s in synset.similar_tos())
        return frozenset(names)

    def _opposites(self, word: str) -> frozenset[str]:
        """Lemma names WordNet records as antonyms of some sense of `word` (or of its adjective head)."""
        names: set[str] = set()
        for synset in self._reader.synsets(word):
            heads = [synset, *synset.similar_tos()] if synset.pos() == "s" else [synset]
            for head in heads:
                for lemma in head.lemmas():
                    names.update(a.name().lower() for a in lemma.antonyms())
        return frozenset(names)


def negated(x: str, y: str) -> bool:
    """One word is the other with a negating prefix: `subscribe` / `unsubscribe`, `like` / `dislike`."""
    return any(a == p + b for a, b in ((x, y), (y, x)) for p in _NEGATING_PREFIXES if len(b) >= 4)


@cache
def load() -> WordNet | None:
    """The WordNet reader, or None when nltk or the WordNet files are missing (logged once)."""
    root = Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)
    if not (root / "index.noun").is_file():
        logger.warning("semantic: no WordNet files in %s; the verifier works without synonyms", root)
        return None
    try:
        import nltk.data
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
        from nltk.data import FileSystemPathPointer
    except ImportError:
        logger.info("semantic: nltk is not installed; the verifier works without synonyms (extra `semantic`)")
        return None

    class _DebianWordNet(WordNetCorpusReader):  # type: ignore[misc]
        """nltk's reader on Debian's files: `lexnames` supplied, no mapping to nltk's own corpus."""

        def open(self, file: str) -> Any:
            if file == "lexnames":
                return io.StringIO(
                    "".join(f"{n:02d}\t{name}\t{_POS_NUMBER[name.split('.')[0]]}\n" for n, name in enumerate(_LEXNAMES))
                )
            return super().open(file)

        def map_wn(self, version: str = "wordnet") -> None:
            return None  # the multilingual mapping is not used, and needs nltk's downloadable corpus

    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))  # nltk only reads corpora under its data path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": not used
        reader = _DebianWordNet(FileSystemPathPointer(str(root)), None)
    return WordNet(reader)
