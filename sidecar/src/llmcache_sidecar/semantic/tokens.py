"""Words out of a prompt: tokens lower-cased, aliased, spelled American and lightly stemmed.

`tokenize(text)` yields one `Token` per word, number, code-like word, placeholder mark or
punctuation, so that `Tuesdays`, `tuesday` and `TUESDAY` are one token and a name is
told from a sentence's first word. `text` reads a prompt's facets from these tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from llmcache_sidecar.semantic import lexicon

TokenKind = Literal["word", "number", "code", "mark", "punct"]


_TOKEN = re.compile(
    r"""
    (?P<mark>⟦[a-z]+⟧)                                                     # where a code span, quote or time was
    |(?P<flag>(?<![\w-])--?[a-zA-Z][\w-]*)                                  # --hard, -it
    |(?P<number>[$€£¥]?\d[\d,]*(?:\.\d+)?(?:%|°[cf]|[a-zA-Z]+\b)?)         # 300,000  512Mi  4GB  7th  $85
    |(?P<word>[A-Za-z][A-Za-z0-9]*(?:['’][A-Za-z]+)?(?:[_./][A-Za-z0-9]+)*(?:['’](?=\s|$))?)  # don't node.js w/o
    |(?P<op>===|!==|==|!=|<=|>=|=>|->|→|&&|\|\|)
    |(?P<punct>[.,;:!?()\[\]{}%$€£¥#@&=+*/^<>-])
    """,
    re.X,
)


_SENTENCE_END = frozenset(".?!:;")


_CONTRACTIONS = {
    "n't": ("not",),
    "'s": (),
    "'re": (),
    "'ve": (),
    "'ll": (),
    "'d": (),
    "'m": ("am",),
}


_IRREGULAR_NOT = {"won't": "will", "can't": "can", "shan't": "shall", "ain't": "is"}


_VOWELS = frozenset("aeiouy")


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    """As written (for capitalisation)."""
    word: str
    """Lower case, alias resolved: what the dictionary is asked about."""
    norm: str
    """`word` with British spellings made American and a light stem: what is compared."""
    kind: TokenKind
    capital: bool = False
    """Capitalised where English would not capitalise it: a name (not the sentence's first word)."""


_JOINED_PREFIX = re.compile(r"\b(non|anti)-(?=[A-Za-z])", re.I)
"""`non-toxic`, `anti-virus`: one word, whose prefix says what it is not (or is against)."""


_COUNTRY = ("united", "states")
_COUNTRY_SPELLINGS = frozenset({"usa", "u.s", "u.s.a"})
"""`the US`, `the us`, `U.S.`, `USA`: the country, not the pronoun (`tell us`)."""


def tokenize(text: str) -> Iterator[Token]:
    previous, previous_kind = "", ""
    for token in _tokens(_JOINED_PREFIX.sub(r"\1", text)):
        if previous_kind == "number":
            yield token  # `100 US dollars`: the currency's country, read with the unit
        elif token.kind in ("word", "code") and (
            token.word in _COUNTRY_SPELLINGS or (token.word == "us" and (token.text == "US" or previous == "the"))
        ):
            yield from (Token(token.text, word, word, "word", capital=True) for word in _COUNTRY)
        else:
            yield token
        previous, previous_kind = (token.word if token.kind != "punct" else ""), token.kind


def _tokens(text: str) -> Iterator[Token]:
    sentence_start = True
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        raw = m.group(0)
        if kind == "punct":
            yield Token(raw, raw, raw, "punct")
            sentence_start = raw in _SENTENCE_END
            continue
        if kind == "mark":
            yield Token(raw, raw, raw, "mark")
            sentence_start = False
            continue
        if kind in ("flag", "op"):
            yield Token(raw, raw, raw, "code")
            sentence_start = False
            continue
        if kind == "number":
            yield Token(raw, raw.lower(), raw.lower(), "number")
            sentence_start = False
            continue
        if ("/" not in raw and "." in raw) or "_" in raw:
            # node.js, list.pop, user_id: identifiers compare as written (case aside).
            yield Token(raw, raw.lower(), raw.lower(), "code", capital=not sentence_start and raw[0].isupper())
            sentence_start = False
            continue
        yield from _word(raw, sentence_start)
        sentence_start = False


def _word(raw: str, sentence_start: bool) -> Iterator[Token]:
    lower = raw.lower().rstrip("'")
    capital = _is_capital(raw, sentence_start)
    if lower in _IRREGULAR_NOT:
        yield _make(raw, _IRREGULAR_NOT[lower], capital)
        yield _make(raw, "not", False)
        return
    for suffix, extra in _CONTRACTIONS.items():
        if lower.endswith(suffix) and len(lower) > len(suffix):
            lower = lower[: -len(suffix)]
            yield from _aliased(raw, lower, capital)
            for word in extra:
                yield _make(raw, word, False)
            return
    if "'" in lower:
        lower = lower.replace("'", "")
    yield from _aliased(raw, lower, capital)


def _aliased(raw: str, lower: str, capital: bool) -> Iterator[Token]:
    alias = lexicon.ALIASES.get(lower)
    if alias is not None:
        for word in alias:
            yield _make(raw, word, capital)
        return
    if "-" in lower or ("/" in lower and lower not in lexicon.ALIASES):
        for part in re.split(r"[-/]", lower):
            if part:
                yield from _aliased(raw, part, capital)
        return
    yield _make(raw, lower, capital)


def _make(raw: str, word: str, capital: bool) -> Token:
    unit = lexicon.UNITS.get(word) if len(word) >= 3 else None
    return Token(raw, word, unit or stem(word), "word", capital)


def _is_capital(raw: str, sentence_start: bool) -> bool:
    if raw == "I" or not any(c.isupper() for c in raw):
        return False
    if any(c.isupper() for c in raw[1:]):
        return True  # AKS, iPhone, macOS, PostgreSQL: a name wherever it stands
    return not sentence_start


def stem(word: str) -> str:
    """A light, consistent stem: plurals, -ing, -ed, a final e, doubled consonants.

    Not a linguist's stemmer: it only has to map the forms of one word to one key
    (`changing`, `changed`, `change` -> `chang`) and rarely two words to one key.
    """
    if not word.isalpha() or len(word) <= 3:
        return word
    word = _american(word)
    for suffix, replacement, shortest in (
        ("ies", "y", 5),
        ("sses", "ss", 5),
        ("ches", "ch", 5),
        ("shes", "sh", 5),
        ("xes", "x", 4),
        ("s", "", 4),
    ):
        if word.endswith(suffix) and len(word) >= shortest and not word.endswith(("ss", "us", "is")):
            word = word[: -len(suffix)] + replacement
            break
    for suffix, shortest in (("ing", 6), ("ed", 5)):
        if word.endswith(suffix) and len(word) >= shortest and set(word[: -len(suffix)]) & _VOWELS:
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz" and word[-1] not in _VOWELS:
        word = word[:-1]
    return word


def _american(word: str) -> str:
    if len(word) < 6:
        return word
    for british, american in lexicon.SPELLING_ENDINGS:
        if word.endswith(british):
            return word[: -len(british)] + american
    return word
