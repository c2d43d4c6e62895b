"""Passive clauses read in the active order, so that word order still tells who does what.

`Do airlines weigh carry-on bags?` / `Are carry-on bags weighed by airlines?` ask the
same thing with the participants in the other order; `Does Amazon match other
retailers' prices?` / `Are Amazon's prices matched by other retailers?` do not. The
verifier's order rule compares the order of matched words, so a passive clause is read
as its active form first: the agent (`by airlines`), the verb, then the patient (the
passive subject), then the rest. Pronouns change case with it: in `Can I be fired by my
employer?` the `I` is the one fired, as `me` is in `Can my employer fire me?`.

A clause is passive when a form of `be` or `get` is followed, within the clause, by a
past participle (WordNet knows its verb: `weighed`, `paid`, `made`; after `be`/`been`/
`being`, any verb: `can environment variables be read`). Without WordNet nothing is
reordered.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmcache_sidecar.semantic import lexicon, wordnet
from llmcache_sidecar.semantic.text import Prompt

_WINDOW = 6
_CLAUSE_BREAKS = frozenset(
    {"and", "or", "but", "when", "while", "if", "because", "that", "which", "who", "after", "before", "since", "until"}
)
_AUXILIARIES = frozenset(
    {"do", "does", "did", "can", "could", "will", "would", "shall", "should", "may", "might", "must",
     "is", "are", "was", "were", "am", "have", "has", "had", "how", "why", "where", "what", "whether"}
)  # fmt: skip
_AGENT_END = lexicon.ORDER_PREPOSITIONS | lexicon.PARTICLES | _CLAUSE_BREAKS | {"without"}
_BARE_BE = frozenset({"be", "been", "being"})


@dataclass(frozen=True, slots=True)
class Passive:
    patient: range
    participle: int
    agent: range
    """Empty when no `by` phrase names the agent."""


def clauses(p: Prompt) -> list[Passive]:
    """The passive clauses of `p`."""
    wn = wordnet.load()
    if wn is None:
        return []
    tokens = p.tokens
    found: list[Passive] = []
    for k, token in enumerate(tokens):
        if token.kind != "word" or token.word not in lexicon.PASSIVE_AUXILIARIES:
            continue
        participle = _participle(p, k)
        if participle is None:
            continue
        between = [m for m in range(k + 1, participle) if p.tokens[m].kind != "punct"]
        patient = range(k + 1, participle) if _has_word(p, k + 1, participle) else _subject_before(p, k)
        if between and not _has_word(p, k + 1, participle) and any(not _auxiliary(p, m) for m in between):
            continue  # `is just fine`: words between that are no participant
        if not patient:
            continue
        found.append(Passive(patient, participle, _agent(p, participle)))
    return found


def order(p: Prompt) -> list[int]:
    """`p`'s token indexes in the order of the active form: agent, verb, patient, then the rest."""
    sequence = list(range(len(p.tokens)))
    for clause in clauses(p):
        moved = {*clause.patient, clause.participle, *clause.agent}
        start = min(moved)
        head = [k for k in sequence if k not in moved and k < start]
        tail = [k for k in sequence if k not in moved and k >= start]
        sequence = head + list(clause.agent) + [clause.participle] + list(clause.patient) + tail
    return sequence


def cases(p: Prompt) -> dict[str, tuple[int, int]]:
    """Per grammatical person, subject and object counts as in the active form (`I am fired` counts as `me`)."""
    counted = dict(p.cases)
    for clause in clauses(p):
        for span, was_object in ((clause.patient, False), (clause.agent, True)):
            for k in span:
                case = _PRONOUN_CASE.get(p.tokens[k].word)
                if case is None or case[1] != was_object:
                    continue
                subjects, objects = counted.get(case[0], (0, 0))
                counted[case[0]] = (subjects - 1, objects + 1) if not was_object else (subjects + 1, objects - 1)
    return counted


_PRONOUN_CASE: dict[str, tuple[str, bool]] = {
    "i": ("1s", False), "me": ("1s", True), "we": ("1p", False), "us": ("1p", True),
    "he": ("3m", False), "him": ("3m", True), "she": ("3f", False), "her": ("3f", True),
    "they": ("3p", False), "them": ("3p", True),
}  # fmt: skip


def _participle(p: Prompt, k: int) -> int | None:
    wn = wordnet.load()
    tokens = p.tokens
    for m in range(k + 1, min(k + 1 + _WINDOW, len(tokens))):
        token = tokens[m]
        if token.kind == "punct" and token.word != "-":
            return None
        if wn is None or token.word in _CLAUSE_BREAKS:
            return None
        if token.word in lexicon.ORDER_PREPOSITIONS and not _inside_patient(p, k, m):
            return None
        if token.kind != "word" or token.capital or _hyphenated(p, m):
            continue  # `hand-written cheques`: a part of a hyphenated word is no participle
        word = token.word
        participle = wn.verb_form(word) and not word.endswith(("s", "ing"))  # weighed, paid, made
        participle = participle or (word.endswith("ed") and not wn.known(word))  # entitiled: a typo'd one
        if not participle and m == k + 1 and tokens[k].word in _BARE_BE:
            participle = "v" in wn.parts_of_speech(word)  # can environment variables be read
        if participle:
            return None if _before_noun(p, m) else m  # `get improved sleep`: an adjective, not a passive
    return None


def _hyphenated(p: Prompt, m: int) -> bool:
    return (m > 0 and p.tokens[m - 1].word == "-") or (m + 1 < len(p.tokens) and p.tokens[m + 1].word == "-")


def _inside_patient(p: Prompt, k: int, m: int) -> bool:
    """The preposition at `m` belongs to the noun phrase after the auxiliary at `k`, not to a new phrase.

    `are carry-on bags weighed`: the second half of a hyphenated word; `is diabetes in
    cats diagnosed`: a participant is already named between the auxiliary and it.
    """
    return p.tokens[m - 1].word == "-" or _has_word(p, k + 1, m)


def _before_noun(p: Prompt, m: int) -> bool:
    wn = wordnet.load()
    if m + 1 >= len(p.tokens) or wn is None:
        return False
    return m + 1 in p.content and wn.noun(p.tokens[m + 1].word)


def _has_word(p: Prompt, start: int, end: int) -> bool:
    """A word that can be a participant: not a determiner, an auxiliary or a question word."""
    return any(
        p.tokens[k].kind in ("word", "code", "number")
        and not _auxiliary(p, k)
        and p.tokens[k].word not in lexicon.DETERMINERS
        for k in range(start, end)
    )


def _auxiliary(p: Prompt, k: int) -> bool:
    """`can`, `should`, `is`, `how`; but `a will` is a noun."""
    return p.tokens[k].word in _AUXILIARIES and not (k > 0 and p.tokens[k - 1].word in lexicon.DETERMINERS)


def _subject_before(p: Prompt, k: int) -> range:
    """The noun phrase before the auxiliary: back to the clause's start (punctuation, a conjunction, an auxiliary)."""
    start = k
    while start > 0 and _auxiliary(p, start - 1) and p.tokens[start - 1].word not in ("how", "why", "where", "what"):
        start -= 1  # `cookies should be baked`: the modal before `be`
    k = start
    while start > 0:
        token = p.tokens[start - 1]
        if token.kind == "punct" or token.word in _CLAUSE_BREAKS or _auxiliary(p, start - 1):
            break
        if start > 1 and p.tokens[start - 2].word == "how":
            break  # `how long cookies should be baked`: `how long` asks, `cookies` is the patient
        start -= 1
    return range(start, k) if _has_word(p, start, k) else range(0)


def _agent(p: Prompt, participle: int) -> range:
    tokens = p.tokens
    by = next(
        (m for m in range(participle + 1, min(participle + 1 + _WINDOW, len(tokens))) if tokens[m].word == "by"), None
    )
    if by is None or any(tokens[m].kind == "punct" for m in range(participle + 1, by)):
        return range(0)
    end = by + 1
    while end < len(tokens) and tokens[end].kind != "punct" and tokens[end].word not in _AGENT_END:
        end += 1
    return range(by, end) if _has_word(p, by + 1, end) else range(0)
