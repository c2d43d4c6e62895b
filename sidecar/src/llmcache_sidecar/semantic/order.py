"""Rule 10 of the verifier: the words two prompts share keep their order, up to one moved block.

Moving a clause (`In Python, how do I...` / `How do I ... in Python`) keeps the meaning;
two participants trading places around a pivot (`Alice owes Bob` / `Bob owes Alice`)
does not. Shared content words, numbers and the prepositions that tie them are the
anchors; a passive clause is read in its active order, and two words joined by
`and`/`or`, or a complement said as a compound (`an itinerary for Lisbon` / `a Lisbon
itinerary`), may trade places.
"""

from __future__ import annotations

from collections import Counter

from llmcache_sidecar.semantic import lexicon, voice
from llmcache_sidecar.semantic.alignment import Alignment
from llmcache_sidecar.semantic.text import Prompt


def kept(a: Prompt, b: Prompt, alignment: Alignment) -> bool:
    """The words both prompts share appear in the same order, up to one moved block."""
    ids_a: dict[int, tuple[str, int]] = {}
    ids_b: dict[int, tuple[str, int]] = {}
    for n, (i, j) in enumerate(alignment.pairs):
        ids_a[i] = ids_b[j] = ("content", n)
    # Numbers are anchors too, by value and occurrence: `from 1 to 10` is not `from 10 to 1`.
    for prompt, ids in ((a, ids_a), (b, ids_b)):
        seen: Counter[str] = Counter()
        for k, token in enumerate(prompt.tokens):
            if token.kind == "number":
                seen[token.word] += 1
                ids[k] = (f"number:{token.word}", seen[token.word])
    # A preposition that occurs once in each prompt is the same word in both; one that
    # occurs more often is known by the word it governs (`for` + family, `for` + week),
    # so that moving `for a family of four` to the end keeps the order of the rest.
    counts_a = Counter(t.word for t in a.tokens if t.kind == "word")
    counts_b = Counter(t.word for t in b.tokens if t.kind == "word")
    for prompt, ids in ((a, ids_a), (b, ids_b)):
        for k, token in enumerate(prompt.tokens):
            if token.kind != "word" or token.word not in lexicon.ORDER_PREPOSITIONS:
                continue
            if counts_a[token.word] == 1 and counts_b[token.word] == 1:
                ids[k] = (token.word, 0)
            else:
                for following in range(k + 1, len(prompt.tokens)):
                    if prompt.tokens[following].kind == "punct":
                        break
                    governed = ids.get(following)
                    if governed is not None and governed[0] == "content":
                        ids[k] = (token.word, governed[1] + 1)
                        break
    shared = set(ids_a.values()) & set(ids_b.values())
    # A passive clause is read in the active order: `the loan is approved by a bank` as
    # `a bank approves the loan`, so that a change of voice moves nobody.
    seq_a = [ids_a[k] for k in voice.order(a) if k in ids_a and ids_a[k] in shared]
    seq_b = [ids_b[k] for k in voice.order(b) if k in ids_b and ids_b[k] in shared]
    rank = {key: r for r, key in enumerate(seq_a)}
    order = [rank[key] for key in seq_b]
    swapped = _transposition(order)
    first, second = (seq_a[swapped[0]], seq_a[swapped[1]]) if swapped is not None else (("", 0), ("", 0))
    if swapped is not None and not (
        _coordinated(a, ids_a, first, second)
        or _coordinated(b, ids_b, first, second)
        or _compound_of(a, ids_a, b, ids_b, first, second)
    ):
        return False  # `the airline owes me` / `I owe the airline`: two participants traded places
    return one_block_move(order)


def _transposition(order: list[int]) -> tuple[int, int] | None:
    """The two ranks exchanged when `order` is the identity with two neighbours swapped, else None."""
    moved = [k for k, r in enumerate(order) if r != k]
    if len(moved) == 2 and moved[1] == moved[0] + 1:
        return moved[0], moved[1]
    return None


def _coordinated(
    prompt: Prompt, ids: dict[int, tuple[str, int]], first: tuple[str, int], second: tuple[str, int]
) -> bool:
    """The two swapped words are joined by `and`/`or` (`the driver or the passenger`): order carries no role."""
    where = {key: k for k, key in ids.items()}
    start, end = sorted((where[first], where[second]))
    return any(t.kind == "word" and t.word in ("and", "or", "nor") for t in prompt.tokens[start + 1 : end])


def _compound_of(
    a: Prompt,
    ids_a: dict[int, tuple[str, int]],
    b: Prompt,
    ids_b: dict[int, tuple[str, int]],
    first: tuple[str, int],
    second: tuple[str, int],
) -> bool:
    """`an itinerary for Lisbon` / `a Lisbon itinerary`: a noun's complement said as a compound before it.

    The two swapped words stand side by side in one prompt and are joined by `of`, `for`,
    `in`, `on` or `at` in the other: a noun phrase said two ways, not two participants.
    """
    for p, ids, q, ids_q in ((a, ids_a, b, ids_b), (b, ids_b, a, ids_a)):
        where, where_q = {key: k for k, key in ids.items()}, {key: k for k, key in ids_q.items()}
        start, end = sorted((where[first], where[second]))
        start_q, end_q = sorted((where_q[first], where_q[second]))
        between = [t.word for t in p.tokens[start + 1 : end] if t.kind != "punct" or t.word == ","]
        between_q = [t for t in q.tokens[start_q + 1 : end_q] if t.word != "-"]
        joined = bool(between) and between[0] in _COMPLEMENT_PREPOSITIONS
        if not between_q and joined and all(word in lexicon.DETERMINERS for word in between[1:]):
            return True
    return False


_COMPLEMENT_PREPOSITIONS = frozenset({"of", "for", "in", "on", "at"})


def one_block_move(order: list[int]) -> bool:
    """True when `order` (a permutation of 0..n-1) is the identity with at most one block moved."""
    n = len(order)
    start = 0
    while start < n and order[start] == start:
        start += 1
    end = n - 1
    while end >= start and order[end] == end:
        end -= 1
    middle = order[start : end + 1]
    if not middle:
        return True
    size = len(middle)
    shift = middle[0] - start
    return all(middle[t] == start + (shift + t) % size for t in range(size))
