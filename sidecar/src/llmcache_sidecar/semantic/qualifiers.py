"""Words one prompt adds to the other's request: a qualifier narrows it, context does not.

`What foods are high in protein?` / `What plant-based foods are high in protein?`,
`the square of 12` / `the square root of 12`, `... for 2024` / `... for 2024 for married
couples filing jointly`: the second prompt is the first one plus a few words, and those
words change what is asked. A cached answer to the wider question is wrong for the
narrower one, and the other way round. Nothing is put in another word's place, so the
substitution rule does not see it; embeddings barely move.

An inserted word is a **qualifier** when it is inside the request (a sentence that has
words of the other prompt) and it narrows a noun phrase of it:

* **before a matched noun** (`the [free] attractions`, `all [even] numbers`, `[while] loop`),
  inside the noun phrase: after a determiner, a preposition or another modifier, not
  after a pronoun, an auxiliary or a question word (`how do [doctors] diagnose` is a
  subject, not a modifier);
* **a noun right after a matched word**, ending its phrase (`the square [root] of`,
  `the Vim [editor]?`): the head of the phrase changed;
* **after the request's last matched word** (`... for 2024 [for married couples filing
  jointly]?`), or **after a preposition** inside it (`... an employee [caring for a
  seriously injured service member]`): a restriction added at the end or as a prepositional
  phrase.

Not qualifiers: words in a sentence of their own that shares nothing with the other
prompt (`We had a party last night.`, `Dear support team,`: context, greetings),
adverbs (`kindly`, `frequently`), words WordNet does not know as an adjective, noun
or participle (chat fillers: `sup`, `nah`), and a word that is a WordNet synonym of a
function word the other prompt has in its place (`better` / `improved` sleep). Where
the other prompt has another content word in the same place, the substitution rule
decides instead.

The rule errs towards rejecting: `Why is the sky blue?` / `Why is the sky blue in colour?`
is refused too (`colour` ends the request). That costs a hit, never a wrong answer, and
a judge with `decideUnsure` may overrule it (`qualifier` is an "unsure" reason).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from llmcache_sidecar.semantic import lexicon, wordnet
from llmcache_sidecar.semantic.alignment import Alignment
from llmcache_sidecar.semantic.text import Prompt

_SENTENCE_END = frozenset(".?!;:")
_PREPOSITIONS = lexicon.ORDER_PREPOSITIONS | lexicon.PARTICLES | {"without", "like", "near", "except"}


def added(alignment: Alignment, a: Prompt, b: Prompt) -> bool:
    """Either prompt has a qualifier that the other lacks (see the module docstring)."""
    pairs = alignment.pairs
    by_a, by_b = dict(pairs), {j: i for i, j in pairs}
    if _says_who_asks(a, by_a) or _says_who_asks(b, by_b):
        return True
    return _qualified(a, b, by_a, alignment.left_a, alignment.left_b) or _qualified(
        b, a, by_b, alignment.left_b, alignment.left_a
    )


def context(p: Prompt, anchors: Iterable[int]) -> set[int]:
    """The numbers of `p`'s sentences of context: about the asker, sharing no content word with the other prompt.

    `We had a party last night and someone spilled.` before `How do I remove a red wine
    stain from a carpet?`: a statement (not a question) in the first person, none of whose
    words the other prompt has. What it says happened around the question, not in it.
    """
    sentence = sentences(p)
    anchored = {sentence[k] for k in anchors}
    told: set[int] = set()
    asked: set[int] = set()
    for k, token in enumerate(p.tokens):
        if token.kind == "word" and token.word in lexicon.FIRST_PERSON:
            told.add(sentence[k])
        elif token.word == "?":
            asked.add(sentence[k])
    return told - anchored - asked


def _says_who_asks(p: Prompt, partner: dict[int, int]) -> bool:
    """A sentence of context says who the asker is (`I'm a vegan.`, `I am a nurse.`): that can change the answer.

    The asker's identity is an audience, as `explain it to a nurse` is: a person noun
    (WordNet's noun.person) right after `I am` / `I'm` (`a`/`an` between).
    """
    wn = wordnet.load()
    if wn is None:
        return False
    aside = context(p, partner)
    sentence = sentences(p)
    words = p.tokens
    for k, token in enumerate(words):
        if token.word != "i" or sentence[k] not in aside:
            continue
        n = k + 1
        for skip in ("am", "a", "an"):
            if n < len(words) and words[n].word == skip:
                n += 1
        if n < len(words) and n > k + 1 and words[n].kind == "word" and wn.person(words[n].word):
            return True
    return False


def _qualified(p: Prompt, q: Prompt, partner: dict[int, int], left: list[int], left_q: list[int]) -> bool:
    wn = wordnet.load()
    if wn is None:
        return False
    sentence = sentences(p)
    anchored = {sentence[k] for k in partner}
    leftover = set(left)
    anchors = sorted(partner)
    for i in _candidates(p, leftover, partner):
        if sentence[i] not in anchored:
            continue  # a sentence of its own: context or a greeting
        word = p.tokens[i].word
        if wn.adverb_only(word) or not wn.modifier(word):
            continue
        before = max((k for k in anchors if k < i), default=None)
        after = min((k for k in anchors if k > i), default=None)
        found = _in_place(q, word, partner, before, after, set(left_q))
        if found == "judged":
            return True
        if found != "inserted":
            continue  # the other prompt has a content word, or a synonym, in its place
        if _before_noun(p, i, after, partner, q, leftover):
            return True
        if i not in leftover:
            continue  # a function word (`even`, `only`) narrows only the noun right after it
        if _noun_ending_phrase(p, i, before):
            return True
        in_sentence = before is not None and sentence[before] == sentence[i]
        ends_request = after is None or sentence[after] != sentence[i]
        if in_sentence and (ends_request or _after_preposition(p, i, before, leftover)):
            return True
    return False


def _candidates(p: Prompt, leftover: set[int], partner: dict[int, int]) -> list[int]:
    """Leftover content words, and function words that WordNet knows as adjectives (`even`, `only`, `own`)."""
    wn = wordnet.load()
    found = sorted(leftover)
    for k, token in enumerate(p.tokens):
        word = token.word
        if k in leftover or k in partner or token.kind != "word" or word not in lexicon.STOP_WORDS:
            continue
        if word in lexicon.DETERMINERS or word in lexicon.CLAUSE_WORDS or word in lexicon.FRAMING_WORDS:
            continue
        if word in _PREPOSITIONS:
            continue
        if wn is not None and "a" in wn.parts_of_speech(word):
            found.append(k)
    return sorted(found)


def _in_place(
    q: Prompt, word: str, partner: dict[int, int], before: int | None, after: int | None, left_q: set[int]
) -> Literal["inserted", "synonym", "substituted", "judged"]:
    """What the other prompt has between the matched words around the insertion.

    Nothing (`inserted`), a synonym or a typo of it among its function words (`better` for
    `improved`, `dose` for `does`),
    a content word (`substituted`: the substitution rule decides), or a judging adjective of
    the request's framing in its place (`good` for dogs / `toxic` for dogs: `judged`).
    """
    start = partner[before] if before is not None else -1
    end = partner[after] if after is not None else len(q.tokens)
    if start >= end:
        return "inserted"  # the matched words moved: nothing stands in the same place
    wn = wordnet.load()
    judged = False
    for k in range(start + 1, end):
        if k in left_q:
            return "substituted"
        other = q.tokens[k]
        if other.kind == "word" and wn is not None and wn.synonyms(word, other.word):
            return "synonym"
        if other.kind == "word" and min(len(word), len(other.word)) >= 4 and lexicon.within_edits(word, other.word, 1):
            return "synonym"  # `what time dose the museum close`: a typo of `does`
        judged = judged or other.word in lexicon.FRAMING_WORDS
    adjective = wn is not None and "a" in wn.parts_of_speech(word)
    return "judged" if judged and adjective else "inserted"


def _before_noun(p: Prompt, i: int, after: int | None, partner: dict[int, int], q: Prompt, leftover: set[int]) -> bool:
    """`[free] attractions`: directly before a matched noun, inside a noun phrase."""
    nxt = _step(p, i, 1)
    if nxt is None or nxt != after:
        return False
    wn = wordnet.load()
    head, counterpart = p.tokens[nxt].word, q.tokens[partner[nxt]].word
    if wn is None or not (wn.noun(head) or wn.noun(counterpart)) or _verb_form(head) or _verb_form(counterpart):
        return False
    previous = _step(p, i, -1)
    if previous is None:
        return True
    word = p.tokens[previous].word
    return p.tokens[previous].kind != "word" or word not in lexicon.CLAUSE_WORDS or previous in leftover


def _noun_ending_phrase(p: Prompt, i: int, before: int | None) -> bool:
    """`the square [root] of`: a noun right after a matched word, the last word of its phrase."""
    wn = wordnet.load()
    if wn is None or before is None or _step(p, i, -1) != before or not wn.noun(p.tokens[i].word):
        return False
    nxt = _step(p, i, 1)
    if nxt is None:
        return True
    token = p.tokens[nxt]
    return token.kind == "punct" or (token.kind == "word" and token.word in lexicon.STOP_WORDS | _PREPOSITIONS)


def _after_preposition(p: Prompt, i: int, before: int | None, leftover: set[int]) -> bool:
    """`an employee [caring for a seriously injured service member]`: a prepositional phrase inside the request."""
    if before is None:
        return False
    for k in range(i - 1, before, -1):
        token = p.tokens[k]
        if token.kind == "punct":
            return False
        if token.word in _PREPOSITIONS:
            return True
        if k not in leftover and token.word not in lexicon.DETERMINERS:
            return False
    return False


def _step(p: Prompt, i: int, direction: int) -> int | None:
    """The neighbouring token's index, across a hyphen (`gluten-free`, `must-see`)."""
    k = i + direction
    while 0 <= k < len(p.tokens) and p.tokens[k].word == "-":
        k += direction
    return k if 0 <= k < len(p.tokens) else None


def _verb_form(word: str) -> bool:
    """`tested`, `making`: a verb as used here, so the word before it is not its modifier."""
    wn = wordnet.load()
    return wn is not None and word.endswith(("ed", "ing")) and wn.verb_form(word)


def sentences(p: Prompt) -> list[int]:
    """The sentence number of each token."""
    numbers, n = [], 0
    for token in p.tokens:
        numbers.append(n)
        if token.kind == "punct" and token.word in _SENTENCE_END:
            n += 1
    return numbers
