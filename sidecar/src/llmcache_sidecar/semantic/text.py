"""Reading a prompt: tokens, and the facts two prompts must agree on to share an answer.

`analyse(text)` splits a prompt once into word tokens (`tokens`: lower-cased, chat
spellings and British spellings mapped, lightly stemmed, so that `Tuesdays`, `tuesday`
and `TUESDAY` are one token), with code spans and quoted spans kept whole, and extracts the facets
that `verifier` compares: numbers with their units, dates and times, negation cues,
target languages, output formats and directional pairs.

It is deliberately small and deterministic: regular expressions and the tables in
`lexicon`, no model. It will miss things a parser would find; the verifier is built
so that what this module misses makes it reject, not accept (see `verifier`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from llmcache_sidecar.semantic import lexicon
from llmcache_sidecar.semantic.tokens import Token, stem, tokenize

_CODE_SPAN = re.compile(r"```.*?```|`[^`\n]+`", re.S)


# A quote opens after a space or an opening bracket and closes before a space or
# punctuation, so that apostrophes (what's, users') never open one.
_QUOTE_SPAN = re.compile(
    r"""(?:(?<=^)|(?<=[\s(\[:]))(?:'([^'\n]+?)'|"([^"\n]+?)"|“([^”\n]+?)”|‘([^’\n]+?)’)(?=$|[\s.,;:!?)\]])"""
)


_TIME = re.compile(
    r"\b(\d{1,2})(?::(\d{2}))?\s?(am|pm|a\.m\.|p\.m\.)(?![a-z])|\b(\d{1,2}):(\d{2})\b(?!\s?(?:am|pm))", re.I
)


_SLASH_WORDS = re.compile(r"(?<![\w/])(?:w/o|w/|b/c)(?![\w/])", re.I)


_PRONOUN_CASES: dict[str, tuple[str, bool]] = {
    "i": ("1s", False), "me": ("1s", True), "we": ("1p", False), "us": ("1p", True),
    "he": ("3m", False), "him": ("3m", True), "she": ("3f", False), "her": ("3f", True),
    "they": ("3p", False), "them": ("3p", True),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    unit: str | None


@dataclass(slots=True)
class Prompt:
    """A prompt as the verifier sees it."""

    text: str
    tokens: list[Token] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    quotes: list[tuple[str, ...]] = field(default_factory=list)
    numbers: list[Number] = field(default_factory=list)
    times: set[str] = field(default_factory=set)
    days: set[str] = field(default_factory=set)
    months: set[int] = field(default_factory=set)
    relative: set[str] = field(default_factory=set)
    said_when: list[tuple[int, str]] = field(default_factory=list)
    """Each entry of `relative` with the index of its token: `last night` in a sentence of context can be told apart."""
    negations: int = 0
    languages: set[str] = field(default_factory=set)
    formats: set[str] = field(default_factory=set)
    directions: set[tuple[str, str]] = field(default_factory=set)
    cases: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per grammatical person, how often it is a subject and how often an object (I/me, she/her)."""
    content: list[int] = field(default_factory=list)
    """Indexes into `tokens` of the words that carry meaning (not function words, numbers or cues)."""
    universal: bool = False
    """A universal quantifier (all, every, each, whole...): the scope is everything, not one."""
    operators: list[str] = field(default_factory=list)
    """Arithmetic operators written between numbers (`2x + 6` / `2x - 6`), in order."""


def analyse(text: str) -> Prompt:
    text = unicodedata.normalize("NFKC", text).replace("’", "'")
    text = _SLASH_WORDS.sub(lambda m: " " + lexicon.ALIASES[m.group(0).lower()][0] + " ", text)
    prompt = Prompt(text)
    text = _CODE_SPAN.sub(lambda m: _keep(prompt.code, " ".join(m.group(0).strip("`").split()), " ⟦code⟧ "), text)
    text = _QUOTE_SPAN.sub(lambda m: _quote(prompt, next(g for g in m.groups() if g is not None)), text)
    text = _TIME.sub(lambda m: _time(prompt, m), text)
    prompt.tokens = list(tokenize(text))
    _facets(prompt)
    return prompt


def _keep(store: list[str], value: str, placeholder: str) -> str:
    store.append(value)
    return placeholder


def _quote(prompt: Prompt, inner: str) -> str:
    """A quoted span is compared word for word; its numbers, dates and negations count too."""
    inside = Prompt(inner)
    inside.tokens = list(tokenize(inner))
    _facets(inside)
    prompt.quotes.append(tuple(t.norm for t in inside.tokens if t.kind in ("word", "number")))
    prompt.numbers += inside.numbers
    prompt.times |= inside.times
    prompt.days |= inside.days
    prompt.months |= inside.months
    prompt.relative |= inside.relative
    prompt.negations += inside.negations
    return " ⟦quote⟧ "


def _time(prompt: Prompt, m: re.Match[str]) -> str:
    if m.group(3) is not None:
        hour, minute, half = int(m.group(1)), int(m.group(2) or 0), m.group(3).lower()[0]
        if hour > 12 or minute > 59:
            return m.group(0)
        hour = hour % 12 + (12 if half == "p" else 0)
    else:
        hour, minute = int(m.group(4)), int(m.group(5))
        if hour > 23 or minute > 59:
            return m.group(0)
    prompt.times.add(f"{hour:02d}:{minute:02d}")
    return " ⟦time⟧ "


def _negation(token: Token, previous: Token | None) -> bool:
    if token.word in lexicon.NEGATIONS:
        return True
    return token.word == "off" and previous is not None and previous.word in lexicon.OFF_PARTICLE_VERBS


def _facets(prompt: Prompt) -> None:
    tokens = prompt.tokens
    previous: Token | None = None
    for i, token in enumerate(tokens):
        if token.kind == "punct" and token.word in _OPERATORS and _between_numbers(tokens, i):
            prompt.operators.append(token.word)
        if token.kind == "code":
            prompt.code.append(token.word)
        elif token.kind == "number":
            _number(prompt, tokens, i)
        elif token.kind == "word":
            _word_facets(prompt, tokens, i, previous)
        previous = token if token.kind != "punct" else previous
    prompt.directions = _directions(prompt, tokens)


_OPERATORS = frozenset("+-*/×÷^=<>")


def _between_numbers(tokens: list[Token], i: int) -> bool:
    """`2x + 6`, `3 * 4`: an operator with a number (or a variable) on either side."""
    if i == 0 or i + 1 >= len(tokens):
        return False
    return all(t.kind == "number" or (t.kind == "word" and len(t.word) == 1) for t in (tokens[i - 1], tokens[i + 1]))


def _word_facets(prompt: Prompt, tokens: list[Token], i: int, previous: Token | None) -> None:
    token = tokens[i]
    word = token.word
    if _negation(token, previous):
        prompt.negations += 1
        return
    if word in lexicon.UNIVERSAL_QUANTIFIERS:
        prompt.universal = True
    case = _PRONOUN_CASES.get(word)
    if case is not None and previous is not None and previous.word in lexicon.FRAMING_VERBS and case[1]:
        return  # `tell me`, `show us`: who is asked, not a role in the question
    if case is not None and token.text != "US":
        person, is_object = case
        subject_count, object_count = prompt.cases.get(person, (0, 0))
        prompt.cases[person] = (subject_count + (not is_object), object_count + is_object)
        return
    if word == "on" and previous is not None and previous.word in lexicon.OFF_PARTICLE_VERBS:
        return
    word = _facet_word(word)
    if word in lexicon.NUMBER_WORDS:
        value = lexicon.NUMBER_WORDS[word]
        nxt = _next_word(tokens, i)
        if nxt is not None and nxt.word in lexicon.SCALE_WORDS:
            value *= lexicon.SCALE_WORDS[nxt.word]
        prompt.numbers.append(Number(value, _unit_after(tokens, i)))
        return
    if word in lexicon.ORDINALS and (_next_word_is_time_like(tokens, i) or _next_word_is_superlative(tokens, i)):
        prompt.numbers.append(Number(lexicon.ORDINALS[word], None))
        return
    if word in lexicon.SCALE_WORDS or word in lexicon.UNIT_SKIP:
        return
    if _date_word(prompt, tokens, i):
        return
    if word in lexicon.LANGUAGES:
        prompt.languages.add(word)
    norm = stem(word)
    if norm in _FORMATS or (norm in _CONTEXT_FORMATS and _after_as(tokens, i)):
        prompt.formats.add(norm)
    compound_part = "-" in token.text and token.kind == "word"
    letter = token.capital and len(token.text) == 1  # type A blood, plan B: a name, not an article
    if not (compound_part or letter) and (
        word in lexicon.STOP_WORDS or word in lexicon.DIRECTIONAL or word in lexicon.ORDER_PREPOSITIONS
    ):
        return  # function words; but `check-in` / `check-out` differ in a part that is one

    if word in lexicon.UNITS and _after_number(tokens, i):
        return  # the unit of a number: compared with the number
    prompt.content.append(i)


def _facet_word(word: str) -> str:
    """A typo'd language, format or number word read as the word it misspells (germn, peom, quater)."""
    if len(word) < 4 or lexicon.known(word):
        return word
    for candidate in _FACET_WORDS.get(len(word), ()):
        if lexicon.within_edits(word, candidate, 1):
            return candidate
    return word


def _date_word(prompt: Prompt, tokens: list[Token], i: int) -> bool:
    token = tokens[i]
    word = token.word
    day = lexicon.WEEKDAYS.get(token.norm) or lexicon.WEEKDAYS.get(word)
    previous = _previous_word(tokens, i)
    marker = previous.word if previous is not None and previous.word in lexicon.RELATIVE_MARKERS else None
    if day is not None:
        if marker in ("next", "last", "previous", "past") or (marker == "this" and day in ("weekend",)):
            _relative(prompt, i, f"{marker}-{day}")
        else:
            prompt.days.add(day)
        return True
    if word in lexicon.MONTHS and (word not in lexicon.AMBIGUOUS_MONTHS or token.capital or _near_number(tokens, i)):
        prompt.months.add(lexicon.MONTHS[word])
        return True
    if word in lexicon.HOLIDAYS:
        prompt.relative.add(word)
        return True
    if word in lexicon.RELATIVE_DAYS:
        _relative(prompt, i, lexicon.RELATIVE_DAYS[word])
        return True
    if word in lexicon.DAY_PARTS:
        if previous is None or previous.word != "good":  # `good morning` greets, it dates nothing
            _relative(prompt, i, token.norm)
        return True
    if marker is not None and token.norm in lexicon.RELATIVE_SPANS:
        _relative(prompt, i, f"{marker}-{token.norm}")
        return True
    return False


def _relative(prompt: Prompt, i: int, key: str) -> None:
    """A time said relative to now (`last night`, `tomorrow`, `next week`): kept with where it was said."""
    prompt.relative.add(key)
    prompt.said_when.append((i, key))


def _number(prompt: Prompt, tokens: list[Token], i: int) -> None:
    raw = tokens[i].word
    m = re.match(r"([$€£¥]?)(\d[\d,]*(?:\.\d+)?)(.*)", raw)
    if m is None:  # pragma: no cover - the token pattern guarantees a match
        return
    sign, digits, suffix = m.groups()
    try:
        value = float(digits.replace(",", ""))
    except ValueError:
        prompt.content.append(i)
        return
    unit: str | None = lexicon.UNITS.get(sign) if sign else None
    suffix = suffix.lower()
    if suffix in ("st", "nd", "rd", "th"):
        suffix = ""
    if suffix:
        glued = lexicon.GLUED_UNITS.get(suffix)
        if glued is None:
            # `s23`, `g7`-like model names are words with digits, not quantities.
            prompt.numbers.append(Number(value, f"?{suffix}"))
            return
        unit = unit or glued
    if unit is None:
        unit = _unit_after(tokens, i)
    nxt = _next_word(tokens, i)
    if nxt is not None and nxt.word in lexicon.SCALE_WORDS:
        value *= lexicon.SCALE_WORDS[nxt.word]
    prompt.numbers.append(Number(value, unit))


def _unit_after(tokens: list[Token], i: int) -> str | None:
    for j in range(i + 1, min(i + 4, len(tokens))):
        token = tokens[j]
        if token.kind == "punct" and token.word in ("%",):
            return "percent"
        if token.kind != "word":
            return None
        if token.word in lexicon.UNIT_SKIP or token.word in lexicon.SCALE_WORDS:
            continue
        return lexicon.UNITS.get(token.word)
    return None


def _after_number(tokens: list[Token], i: int) -> bool:
    for j in range(i - 1, max(i - 4, -1), -1):
        token = tokens[j]
        if token.kind == "number" or (token.kind == "word" and _facet_word(token.word) in lexicon.NUMBER_WORDS):
            return True
        if token.kind != "word" or (token.word not in lexicon.UNIT_SKIP and token.word not in lexicon.SCALE_WORDS):
            return False
    return False


def _after_as(tokens: list[Token], i: int) -> bool:
    """`as a table`, `in a two-column table`, `into a spreadsheet`: the form of the answer."""
    for j in range(i - 1, max(i - 5, -1), -1):
        if tokens[j].kind == "punct":
            return False
        if tokens[j].word in ("as", "in", "into"):
            return True
    return False


def _near_number(tokens: list[Token], i: int) -> bool:
    return any(0 <= j < len(tokens) and tokens[j].kind == "number" for j in (i - 1, i + 1, i - 2, i + 2))


def _next_word_is_time_like(tokens: list[Token], i: int) -> bool:
    nxt = _next_word(tokens, i)
    return nxt is not None and (nxt.norm in lexicon.RELATIVE_SPANS or nxt.word in lexicon.UNITS)


def _next_word_is_superlative(tokens: list[Token], i: int) -> bool:
    """`the second tallest`, `the third most expensive`: an ordinal that counts."""
    nxt = _next_word(tokens, i)
    return nxt is not None and (nxt.word.endswith("est") or nxt.word in ("most", "least"))


def _next_word(tokens: list[Token], i: int) -> Token | None:
    for token in tokens[i + 1 :]:
        if token.kind == "punct":
            return None
        return token
    return None


def _previous_word(tokens: list[Token], i: int) -> Token | None:
    for token in reversed(tokens[:i]):
        if token.kind == "punct":
            return None
        return token
    return None


def _directions(prompt: Prompt, tokens: list[Token]) -> set[tuple[str, str]]:
    """Ordered pairs across `to`/`into`/`onto`/`from X to Y` (and `in` between units).

    Each side is the few content words next to the preposition, so `feature branch onto
    main` gives (feature, main) and (branch, main), and `USD to EUR` gives (usd, eur).
    """
    pairs: set[tuple[str, str]] = set()
    for k, token in enumerate(tokens):
        word = token.word
        if token.kind != "word" and word not in ("->", "→"):
            continue
        if word in ("to", "into", "onto", "->", "→", "towards", "toward"):
            left, right = _phrase(tokens, k, -1, units_only=False), _phrase(tokens, k, 1, units_only=False)
        elif word == "in":
            left, right = _phrase(tokens, k, -1, units_only=True)[:1], _phrase(tokens, k, 1, units_only=True)[:1]
        elif word == "from":
            to = next((j for j in range(k + 1, len(tokens)) if tokens[j].word in ("to", "into")), None)
            if to is None:
                continue
            left, right = _phrase(tokens, k, 1, units_only=False), _phrase(tokens, to, 1, units_only=False)
        else:
            continue
        pairs.update((x, y) for x in left for y in right if x != y)
    return pairs


def _phrase(tokens: list[Token], k: int, step: int, *, units_only: bool) -> list[str]:
    """Up to three content words beside position `k`, nearest first, within the clause."""
    found: list[str] = []
    j = k + step
    while 0 <= j < len(tokens) and abs(j - k) <= 5 and len(found) < 3:
        token = tokens[j]
        word = token.word
        if token.kind == "punct" and word not in ("$", "€", "£", "¥", "%"):
            break
        if token.kind == "word" and word in lexicon.ORDER_PREPOSITIONS:
            break
        if token.kind == "word" and word not in lexicon.STOP_WORDS and word not in lexicon.UNIT_SKIP:
            unit = lexicon.UNITS.get(word)
            if unit is not None and (units_only or _after_number(tokens, j) or len(word) > 2):
                found.append(unit)
            elif units_only:
                break
            else:
                found.append(token.norm)
        j += step
    return found


_FORMATS = frozenset(stem(w) for w in lexicon.FORMATS)


_CONTEXT_FORMATS = frozenset(stem(w) for w in lexicon.CONTEXT_FORMATS)


_FACET_WORDS: dict[int, list[str]] = {}


for _w in sorted({*lexicon.LANGUAGES, *lexicon.FORMATS, *lexicon.CONTEXT_FORMATS, *lexicon.NUMBER_WORDS}):
    if len(_w) >= 4:
        for _n in (len(_w) - 1, len(_w), len(_w) + 1):
            _FACET_WORDS.setdefault(_n, []).append(_w)
