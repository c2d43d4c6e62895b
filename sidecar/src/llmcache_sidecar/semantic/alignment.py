"""Which content words of two prompts stand for each other: the verifier's alignment.

Content words are matched one to one, most certain first: the same word (where a word
occurs more than once, the occurrence whose neighbours also match), then WordNet
synonyms (a phrasal verb as one: `call off` / `cancel`), then forms of one word and
typos (never two different English words), then acronyms spelled by the other prompt's
initials (`AKS` / `Azure Kubernetes Service`). What is left over on either side is what
changed, and whether a leftover word names something (`salient`) is what the verifier
judges first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from llmcache_sidecar.semantic import lexicon, wordnet
from llmcache_sidecar.semantic.text import Prompt
from llmcache_sidecar.semantic.tokens import Token


@dataclass(frozen=True, slots=True)
class Alignment:
    pairs: list[tuple[int, int]]
    """(token index in a, token index in b) of content words matched one to one."""
    left_a: list[int]
    left_b: list[int]
    matched_a: int
    matched_b: int


def align(a: Prompt, b: Prompt) -> Alignment:
    """Match the content words of `a` and `b` one to one: equal, then derived or typo'd, then acronyms."""
    pairs, left_a, left_b = _equal_words(a, b)
    wn = wordnet.load()
    if wn is not None:
        for i in list(left_a):
            for j in left_b:
                if wn.synonyms(_phrase(a, i), _phrase(b, j)) or wn.synonyms(a.tokens[i].word, b.tokens[j].word):
                    pairs.append((i, j))
                    left_a.remove(i)
                    left_b.remove(j)
                    break
    for i in list(left_a):
        for j in left_b:
            if _similar(a.tokens[i], b.tokens[j]):
                pairs.append((i, j))
                left_a.remove(i)
                left_b.remove(j)
                break
    matched_a = len(pairs)
    matched_b = len(pairs)
    used_a, used_b = _acronyms(a, left_a, b, left_b), _acronyms(b, left_b, a, left_a)
    for i, consumed in used_a:
        left_a.remove(i)
        matched_a += 1
        matched_b += len(consumed)
        for j in consumed:
            left_b.remove(j)
    for j, consumed in used_b:
        if j in left_b:
            left_b.remove(j)
            matched_b += 1
            matched_a += len(consumed)
            for i in consumed:
                if i in left_a:
                    left_a.remove(i)
    quoted_a = {word for quote in a.quotes for word in quote}
    quoted_b = {word for quote in b.quotes for word in quote}
    left_a = [i for i in left_a if a.tokens[i].norm not in quoted_b and not _typo_of_function_word(a.tokens[i], b)]
    left_b = [j for j in left_b if b.tokens[j].norm not in quoted_a and not _typo_of_function_word(b.tokens[j], a)]
    pairs.sort()
    return Alignment(pairs, left_a, left_b, matched_a, matched_b)


def _equal_words(a: Prompt, b: Prompt) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Equal words, paired one to one; a repeated word pairs the occurrences whose neighbours agree.

    `I just bought a cast iron pan. How do I season a cast iron pan?` / `How do I season a
    cast iron pan?`: the second `cast iron pan` is the one asked about, as its neighbour
    `season` shows, so the first is what the longer prompt adds.
    """
    norms_a = [a.tokens[i].norm for i in a.content]
    norms_b = [b.tokens[j].norm for j in b.content]
    where_a: dict[str, list[int]] = defaultdict(list)
    where_b: dict[str, list[int]] = defaultdict(list)
    for n, norm in enumerate(norms_a):
        where_a[norm].append(n)
    for n, norm in enumerate(norms_b):
        where_b[norm].append(n)
    pairs: list[tuple[int, int]] = []
    for norm, xs in where_a.items():
        ys = where_b.get(norm, [])
        if len(xs) == 1 and len(ys) == 1:
            pairs.append((a.content[xs[0]], b.content[ys[0]]))
            continue
        ranked = sorted((-_agreement(norms_a, x, norms_b, y), x, y) for x in xs for y in ys)
        used_x: set[int] = set()
        used_y: set[int] = set()
        for _, x, y in ranked:
            if x not in used_x and y not in used_y:
                used_x.add(x)
                used_y.add(y)
                pairs.append((a.content[x], b.content[y]))
    paired_a = {i for i, _ in pairs}
    paired_b = {j for _, j in pairs}
    return pairs, [i for i in a.content if i not in paired_a], [j for j in b.content if j not in paired_b]


def _agreement(norms_a: list[str], x: int, norms_b: list[str], y: int) -> int:
    """How many of the three content words on either side of positions `x` and `y` agree, nearest weighing most."""
    score = 0
    for distance, weight in ((1, 4), (2, 2), (3, 1)):
        for step in (-distance, distance):
            p, q = x + step, y + step
            inside_a, inside_b = 0 <= p < len(norms_a), 0 <= q < len(norms_b)
            if inside_a and inside_b and norms_a[p] == norms_b[q]:
                score += weight
    return score


def _phrase(prompt: Prompt, i: int) -> str:
    """The word at `i` with the particle after it, as WordNet spells a phrasal verb (`call_off`), when it has one."""
    word = prompt.tokens[i].word
    wn = wordnet.load()
    if wn is not None and i + 1 < len(prompt.tokens) and prompt.tokens[i + 1].kind == "word":
        phrase = f"{word}_{prompt.tokens[i + 1].word}"
        if wn.known(phrase):
            return phrase
    return word


def _similar(x: Token, y: Token) -> bool:
    p, q = x.norm, y.norm
    short, long_ = (p, q) if len(p) <= len(q) else (q, p)
    if len(short) >= 5 and long_.startswith(short) and len(long_) - len(short) <= 5:
        return True  # derived forms: differ/difference, autoscaler/autoscaling
    return _typo(x.word, y.word) or _typo(p, q)


def _typo(x: str, y: str) -> bool:
    """One edit apart (two for long words), and not two different English words."""
    if x == y:
        return True
    shortest = min(len(x), len(y))
    if shortest < 4 or not (x.isalpha() and y.isalpha()):
        return False
    if lexicon.known(x) and lexicon.known(y):
        return False
    limit = 2 if shortest >= 8 else 1
    return lexicon.within_edits(x, y, limit)


def _typo_of_function_word(token: Token, other: Prompt) -> bool:
    """`shoud`, `waht`: a typo of a word the verifier ignores anyway."""
    if lexicon.known(token.word):
        return False
    return any(t.kind == "word" and t.word in lexicon.STOP_WORDS and _typo(token.word, t.word) for t in other.tokens)


def _acronyms(a: Prompt, left_a: list[int], b: Prompt, left_b: list[int]) -> list[tuple[int, list[int]]]:
    """Upper-case words of `a` spelled by the initials of consecutive leftover words of `b` (AKS)."""
    found: list[tuple[int, list[int]]] = []
    free = set(left_b)
    for i in left_a:
        text = a.tokens[i].text
        if not (2 <= len(text) <= 6 and text.isupper() and text.isalpha()):
            continue
        letters = text.lower()
        words = [j for j in range(len(b.tokens)) if b.tokens[j].kind == "word"]
        for start in range(len(words) - len(letters) + 1):
            run = words[start : start + len(letters)]
            if all(b.tokens[j].word[:1] == c for j, c in zip(run, letters, strict=True)) and all(
                j in free or b.tokens[j].word in lexicon.STOP_WORDS for j in run
            ):
                consumed = [j for j in run if j in free]
                found.append((i, consumed))
                free -= set(consumed)
                break
    return found


def salient(token: Token) -> bool:
    """A word that names something: capitalised mid-sentence, not English, rare, or with digits."""
    word = token.word
    if token.kind == "code":
        return True
    if len(word) < 2:
        return token.capital and token.text not in ("I", "A")  # vitamin C, plan B; not x, y: variables
    if token.capital:
        return True
    if any(c.isdigit() for c in word):
        return True
    if not word.isalpha():
        return False
    return not lexicon.known(word) or lexicon.frequency(word) < lexicon.RARE_BELOW


def same_words(x: Sequence[str], y: Sequence[str]) -> bool:
    """The same words in the same order, typos allowed: a quoted span found again."""
    return len(x) == len(y) and all(p == q or _typo(p, q) for p, q in zip(x, y, strict=True))
