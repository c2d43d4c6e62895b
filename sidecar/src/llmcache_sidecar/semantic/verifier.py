"""The acceptance rule: may the answer stored for one prompt be served for another?

Retrieval by embeddings only proposes: on hard near-misses (a `not`, a swapped
`from X to Y`, another number) cosine similarity is as high as for true paraphrases,
or higher. `RuleVerifier` decides, deterministically and in well under a millisecond,
by checking that the two prompts agree on everything that a one-word edit can change:

1. code spans (`` `...` ``, flags, identifiers) are identical;
2. quoted spans say the same words in the same order;
3. numbers agree as a multiset, and a number's unit agrees where both name one;
4. dates and times agree: clock times, weekdays, months, relative days (tomorrow,
   next week), holidays;
5. the count of negation cues agrees (not, never, without, n't, disable, forbid, avoid,
   turn off...);
6. target languages and output formats (JSON, table, haiku, ...) are the same sets;
7. no directional pair is reversed (`USD to EUR` / `EUR to USD`, `cups in a liter`);
8. every *salient* word of either prompt (a name: capitalised mid-sentence, not an
   English word, rare, or with digits) is found in the other (typos, plurals, British
   spellings, acronyms such as AKS for Azure Kubernetes Service and chat spellings
   such as k8s allowed, but two different English words never pass for a typo);
9. when the prompts share most of their words (a minimal edit), no content word may be
   left over on either side: a near-miss changes one or two words, and whether a
   swapped word is a synonym or a different thing is exactly what cannot be told;
10. the shared words keep their order up to one moved block: moving a clause
    (`In Python, how do I...` / `How do I ... in Python`) is fine, a swap around a
    pivot (`Alice owes Bob` / `Bob owes Alice`) is not; a passive clause is read in
    its active order first (`voice`);
11. no antonym (WordNet) or comparative replaces its counterpart, the scope and the
    roles agree, and no qualifier is inserted into the request (`the brown rice` for
    `the rice` narrows it).

`Reason` names every rule (docs/semantic.md explains each).
Any failed rule rejects, and its name is the rejection reason that is counted. The
rules err on the side of rejecting: a paraphrase that is rejected costs one upstream
call; a near-miss that is accepted serves a wrong answer.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from llmcache_sidecar.semantic import lexicon, order, qualifiers, voice, wordnet
from llmcache_sidecar.semantic.alignment import Alignment, align, salient, same_words
from llmcache_sidecar.semantic.text import Prompt

Reason = Literal[
    "role",
    "code",
    "quote",
    "number",
    "unit",
    "datetime",
    "negation",
    "language",
    "format",
    "direction",
    "antonym",
    "comparative",
    "scope",
    "qualifier",
    "entity",
    "substitution",
    "order",
]
REASONS: tuple[Reason, ...] = get_args(Reason)
UNSURE: frozenset[Reason] = frozenset({"qualifier", "substitution", "order"})
"""Rejections that mean "cannot tell", not "a fact changed": a judge with `decideUnsure` may overrule them."""


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: bool
    reason: Reason | None = None

    @classmethod
    def reject(cls, reason: Reason) -> Verdict:
        return cls(False, reason)


ACCEPT = Verdict(True)


class Verifier(Protocol):
    """Decides whether the answer to `stored` may be served for `query`."""

    def verify(self, stored: Prompt, query: Prompt) -> Verdict: ...


class RuleVerifier:
    """The deterministic verifier (rules in the module docstring)."""

    def verify(self, stored: Prompt, query: Prompt) -> Verdict:
        for reason in self.failures(stored, query, first_only=True):
            return Verdict.reject(reason)
        return ACCEPT

    def failures(self, a: Prompt, b: Prompt, *, first_only: bool = False) -> Iterator[Reason]:
        """Every rule that `a` and `b` fail, in the order of the module docstring."""
        matched = _lazy_alignment(a, b)
        if Counter(a.code) != Counter(b.code):
            yield "code"
        if not (_quotes_found(a, b) and _quotes_found(b, a)):
            yield "quote"
        reason = "number" if a.operators != b.operators else _numbers(a, b)
        if reason is not None:
            yield reason
        if (a.times, a.days, a.months) != (b.times, b.days, b.months) or not _same_relative_dates(a, b, matched()):
            yield "datetime"
        if _negations(a) != _negations(b):
            yield "negation"
        if a.languages != b.languages:
            yield "language"
        if a.formats != b.formats:
            yield "format"
        if any((y, x) in b.directions and (x, y) not in b.directions for x, y in a.directions):
            yield "direction"
        if _roles_flipped(a, b):
            yield "role"
        if _opposed(a, b):
            yield "antonym"
        if not _same_degrees(a, b):
            yield "comparative"
        if a.universal != b.universal:
            yield "scope"
        if qualifiers.added(matched(), a, b):
            yield "qualifier"
        if any(salient(a.tokens[i]) for i in matched().left_a) or any(salient(b.tokens[j]) for j in matched().left_b):
            yield "entity"
        if _replaced_in_place(matched()):
            yield "substitution"
        if not order.kept(a, b, matched()):
            yield "order"


def _replaced_in_place(alignment: Alignment) -> bool:
    """Between two matched words that neighbour each other in both prompts, each prompt has other words.

    `Explain pointers to a complete beginner.` / `... to an experienced C++ developer.`:
    however little the two share overall, one phrase was put in the place of another,
    and a verifier cannot tell a synonym phrase it does not know from a different thing.
    The start and the end of the prompts count as matched words.
    """
    kept = _kept_in_order(sorted(alignment.pairs))
    return _replaced_between(alignment.pairs, alignment) or (
        len(kept) < len(alignment.pairs) and _replaced_between(kept, alignment)
    )


def _replaced_between(pairs: list[tuple[int, int]], alignment: Alignment) -> bool:
    """The check above, with `pairs` as the matched words (all of them, or those that kept their order).

    With only the words that kept their order, a word that moved no longer hides a phrase
    put in another's place (`10 flashcards on X as question and answer pairs` / `a
    10-question multiple-choice quiz on X`: `question` moved, `flashcards` became `quiz`).
    """
    end = 1 << 30
    by_a = [(-1, -1), *sorted(pairs), (end, end)]
    rank_b = {j: r for r, j in enumerate(sorted([-1, end, *(j for _, j in pairs)]))}
    left_a, left_b = alignment.left_a, alignment.left_b
    for (i1, j1), (i2, j2) in itertools.pairwise(by_a):
        if rank_b[j2] != rank_b[j1] + 1:
            continue  # not neighbours in the other prompt: words moved, nothing was put in a place
        if any(i1 < i < i2 for i in left_a) and any(j1 < j < j2 for j in left_b):
            return True
    return False


def _kept_in_order(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest run of `pairs` (sorted by the first prompt) that is in order in the second prompt too."""
    best: list[list[tuple[int, int]]] = []
    for pair in pairs:
        longest = max((run for run in best if run[-1][1] < pair[1]), key=len, default=[])
        best.append([*longest, pair])
    return max(best, key=len, default=[])


def _lazy_alignment(a: Prompt, b: Prompt) -> Callable[[], Alignment]:
    """The alignment of `a` and `b`, computed once and only if a rule needs it."""
    found: list[Alignment] = []

    def get() -> Alignment:
        if not found:
            found.append(align(a, b))
        return found[0]

    return get


def _same_relative_dates(a: Prompt, b: Prompt, matched: Alignment) -> bool:
    """Times said relative to now agree, leaving out those in a sentence of context that only one prompt has.

    `We had a party last night. How do I remove a wine stain?` asks what `How do I remove a
    wine stain?` asks: `last night` is when the stain happened, not what is asked about.
    Months, weekdays, holidays and clock times are compared wherever they are.
    """
    if a.relative == b.relative:
        return True
    return _asked_relative(a, {i for i, _ in matched.pairs}) == _asked_relative(b, {j for _, j in matched.pairs})


def _asked_relative(prompt: Prompt, anchors: set[int]) -> set[str]:
    aside = qualifiers.context(prompt, anchors)
    sentence = qualifiers.sentences(prompt)
    told = {key for k, key in prompt.said_when if sentence[k] in aside}
    asked = {key for k, key in prompt.said_when if sentence[k] not in aside}
    return {key for key in prompt.relative if key not in told or key in asked}


def _negations(prompt: Prompt) -> int:
    """Negation cues, and words that negate another with a prefix (`unresponsive`, `non-toxic`, `illegal`).

    A prefix counts only where WordNet records the word as the antonym of its stem, so
    `not responding` / `unresponsive` agree, `toxic` / `non-toxic` do not, and `discover`
    or `install` negate nothing.
    """
    wn = wordnet.load()
    if wn is None:
        return prompt.negations
    prefixed = sum(wn.negated_stem(prompt.tokens[i].word) is not None for i in prompt.content)
    return prompt.negations + prefixed


def _opposed(a: Prompt, b: Prompt) -> bool:
    """A word only one prompt has is the opposite of a word only the other has.

    Opposite function words (`up`/`down`, `most`/`least`) and a negating prefix
    (`subscribe`/`unsubscribe`) are seen without WordNet; WordNet adds the antonyms of
    content words (`increase`/`decrease`, `buy`/`sell`).
    """
    words_a = Counter(t.word for t in a.tokens if t.kind == "word")
    words_b = Counter(t.word for t in b.tokens if t.kind == "word")
    only_a, only_b = words_a - words_b, words_b - words_a
    for x in only_a:
        for y in only_b:
            if (x, y) in lexicon.OPPOSITES or (y, x) in lexicon.OPPOSITES or wordnet.negated(x, y):
                return True
    wn = wordnet.load()
    return wn is not None and any(wn.antonyms(x, y) for x in only_a for y in only_b)


def _same_degrees(a: Prompt, b: Prompt) -> bool:
    """Comparatives and superlatives agree, up to synonyms: `closest` is not `largest`, `faster` is `quicker`."""
    wn = wordnet.load()
    if wn is None:
        return True
    degrees_a = {d for t in a.tokens if t.kind == "word" and (d := wn.degree(t.word)) is not None}
    degrees_b = {d for t in b.tokens if t.kind == "word" and (d := wn.degree(t.word)) is not None}
    return all(any(wn.synonyms(x, y) for y in degrees_b) for x in degrees_a) and all(
        any(wn.synonyms(y, x) for x in degrees_a) for y in degrees_b
    )


def _roles_flipped(a: Prompt, b: Prompt) -> bool:
    """One person moves from subject to object (`my coworker reports to me` / `I report to my coworker`).

    Read in the active voice: `Can I be fired by my employer?` has `I` as the object.
    """
    cases_a, cases_b = voice.cases(a), voice.cases(b)
    for person in cases_a.keys() | cases_b.keys():
        subject_a, object_a = cases_a.get(person, (0, 0))
        subject_b, object_b = cases_b.get(person, (0, 0))
        if (subject_a - subject_b) * (object_a - object_b) < 0:
            return True
    return False


def _numbers(a: Prompt, b: Prompt) -> Reason | None:
    if Counter(n.value for n in a.numbers) != Counter(n.value for n in b.numbers):
        return "number"
    units_a: dict[float, set[str]] = defaultdict(set)
    units_b: dict[float, set[str]] = defaultdict(set)
    for n in a.numbers:
        if n.unit is not None:
            units_a[n.value].add(n.unit)
    for n in b.numbers:
        if n.unit is not None:
            units_b[n.value].add(n.unit)
    for value, units in units_a.items():
        other = units_b.get(value)
        if other and units != other:
            return "unit"
    return None


def _quotes_found(a: Prompt, b: Prompt) -> bool:
    """Every quote of `a` is a quote of `b`, or (if `b` quotes nothing) runs in `b`'s words."""
    b_words = [t.norm for t in b.tokens if t.kind in ("word", "number") and not t.word.startswith("⟦")]
    for quote in a.quotes:
        if b.quotes:
            if not any(same_words(quote, other) for other in b.quotes):
                return False
        elif not any(same_words(quote, b_words[k : k + len(quote)]) for k in range(len(b_words) - len(quote) + 1)):
            return False
    return True
