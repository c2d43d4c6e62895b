"""What is embedded: the prompt in lower case, with chat spellings spelled out and typos fixed.

Embedding models score a typo'd paraphrase far below its clean form (all-MiniLM-L6-v2
gives `how do i restrat a pod in kuberentes` 0.73 against the clean question), so the
text is normalised before it is embedded: NFKC, lower case, single spaces, the chat
spellings of `lexicon.ALIASES` (u, w/o, k8s, ...) spelled out, and every word that is
not English corrected to the most frequent English word one edit away, if there is
one. Spelling correction is `symspellpy`'s (its English frequency dictionary, edit
distance 1: about 1 s and 35 MB to build, done once, off the event loop).

Only retrieval sees this text. The verifier reads the prompts as written, so a wrong
correction can cost a hit but never make one.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from importlib.resources import files

from symspellpy import SymSpell, Verbosity

from llmcache_sidecar.semantic import lexicon, wordnet

_CODE_SPAN = re.compile(r"(```.*?```|`[^`\n]+`)", re.S)
_WORD = re.compile(r"[a-z][a-z']*(?:/[a-z]+)?")
_MIN_CORRECTED = 4


@cache
def _speller() -> SymSpell:
    speller = SymSpell(max_dictionary_edit_distance=1, prefix_length=5)
    speller.load_dictionary(str(files("symspellpy") / "frequency_dictionary_en_82_765.txt"), 0, 1)
    return speller


def warm_up() -> None:
    """Build the spelling index, word frequencies and WordNet now (blocking: run it in a thread)."""
    _speller()
    lexicon.frequencies()
    wordnet.load()


def normalise(text: str) -> str:
    """The text to embed for `text` (code spans are kept as written)."""
    text = unicodedata.normalize("NFKC", text).replace("’", "'")
    parts = _CODE_SPAN.split(text)
    out = []
    for n, part in enumerate(parts):
        if n % 2:
            out.append(part)
        else:
            out.append(_WORD.sub(lambda m: _fix(m.group(0)), part.lower()))
    return " ".join("".join(out).split())


def _fix(word: str) -> str:
    alias = lexicon.ALIASES.get(word)
    if alias is not None:
        return " ".join(alias)
    if len(word) < _MIN_CORRECTED or "'" in word or "/" in word or lexicon.known(word):
        return word
    suggestions = _speller().lookup(word, Verbosity.TOP, max_edit_distance=1)
    return suggestions[0].term if suggestions else word
