"""Retrieval proposes, the verifier decides: one semantic lookup, and remembering a stored prompt.

`SemanticCache` is built from the `semantic:` settings and lives on the runtime
(replaced on a reload that changes them). A lookup embeds the normalised last user
message, asks the index for the nearest few prompts of the same bucket at or above
the threshold, and walks them most similar first: the verifier rejects (the reason is
counted) or accepts, and an accepted candidate's answer is read from the cache
backend by its exact key. With a judge configured (`judge`), an accepted candidate
whose answer is there is served only when the judge also says SAME; a DIFFERENT is
counted as the rejection reason `judge`, and a judge that fails ends the lookup as a
miss (`judge_errors`). With `judge.decideUnsure`, a candidate the verifier refused for a
reason in `verifier.UNSURE` goes to the judge the same way instead of being dropped.
The vector of a miss is kept for a short while, so that when the answer has been
stored, `remember` indexes it without a second embedding.

Anything that goes wrong here (the embedder is slow or down, the index does not
answer) is counted and logged once per failure streak, and the request goes on as
the plain miss it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import aiohttp

from llmcache_sidecar.backends import CacheBackend
from llmcache_sidecar.config import ConfigError, SemanticSettings, read_secret
from llmcache_sidecar.entry import CachedResponse
from llmcache_sidecar.semantic import normalise, text
from llmcache_sidecar.semantic.bucket import Probe, stored_text_digest
from llmcache_sidecar.semantic.embedder import EmbeddingClient, EmbeddingError, Vector
from llmcache_sidecar.semantic.index import MemoryIndex, Stored, VectorIndex, VectorIndexError
from llmcache_sidecar.semantic.judge import Judge, JudgeCounters, JudgeError, Judging
from llmcache_sidecar.semantic.verifier import UNSURE, RuleVerifier, Verifier

logger = logging.getLogger(__name__)
PENDING_ENTRIES = 10_000
"""Misses whose vector waits for their answer to be stored (oldest dropped first)."""


@dataclass(slots=True)
class SemanticCounters:
    """Totals since start, for /cache/stats (kept on the app state, so a reload keeps them)."""

    lookups: int = 0
    hits: int = 0
    shadow_hits: int = 0
    misses: int = 0
    skipped: int = 0
    stale: int = 0
    indexed: int = 0
    embed_errors: int = 0
    index_errors: int = 0
    judge_errors: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    judge: JudgeCounters = field(default_factory=JudgeCounters)


@dataclass(frozen=True, slots=True)
class SemanticHit:
    entry: CachedResponse
    key: str
    """Exact key of the stored answer that is served."""
    similarity: float


@dataclass(frozen=True, slots=True)
class _Pending:
    probe: Probe
    vector: Vector


class SemanticCache:
    def __init__(
        self,
        settings: SemanticSettings,
        *,
        index: VectorIndex,
        embedder: EmbeddingClient,
        verifier: Verifier | None = None,
        judge: Judge | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.embedder = embedder
        self.verifier: Verifier = verifier or RuleVerifier()
        self.judge = judge
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._failing: set[str] = set()

    @property
    def shadow(self) -> bool:
        return self.settings.mode == "shadow"

    async def prepare(self) -> None:
        """Load the spelling index and word list (about 1 s, in a thread), once."""
        if self._ready:
            return
        async with self._ready_lock:
            if not self._ready:
                await asyncio.to_thread(normalise.warm_up)
                self._ready = True

    async def lookup(
        self,
        session: aiohttp.ClientSession,
        counters: SemanticCounters,
        backend: CacheBackend,
        probe: Probe,
        *,
        key: str,
        threshold: float,
        max_age: float | None,
        judging: Judging | None = None,
    ) -> SemanticHit | None:
        """The verified answer for `probe`, or None (a miss; its vector is kept for `remember(key)`).

        With a judge, `judging` says where to call it; without `judging` nothing is served.
        """
        await self.prepare()
        counters.lookups += 1
        try:
            vector = await self.embedder.embed(session, normalise.normalise(probe.text))
            self._recovered("embedder")
        except EmbeddingError as exc:
            counters.embed_errors += 1
            self._failed("embedder", exc)
            return None
        self._pending[key] = _Pending(probe, vector)
        while len(self._pending) > PENDING_ENTRIES:
            self._pending.popitem(last=False)
        try:
            candidates = await self.index.search(
                probe.bucket, vector, limit=self.settings.candidates, threshold=threshold
            )
            self._recovered("index")
        except VectorIndexError as exc:
            counters.index_errors += 1
            self._failed("index", exc)
            return None
        query = text.analyse(probe.text)
        judge_calls = 0
        for candidate in candidates:
            if candidate.stored.key == key:
                continue
            verdict = self.verifier.verify(text.analyse(candidate.stored.text), query)
            if not verdict.accepted and not self._judge_decides(verdict.reason, judging):
                counters.rejected[verdict.reason or "unknown"] += 1
                continue
            entry = await backend.get(candidate.stored.key)
            now = time.time()
            # An entry past its ttl (kept for stale-if-error) is never a near-duplicate's answer.
            if entry is None or entry.staleness(now) > 0 or (max_age is not None and now - entry.created_at > max_age):
                counters.stale += 1
                continue
            if self.judge is not None:
                if judging is None:
                    break  # nowhere to ask it: nothing is served unjudged
                judged = self.judge.known(judging.route, candidate.stored.text, probe.text, counters.judge)
                if judged is None:
                    if judge_calls == self.judge.settings.max_calls_per_lookup:
                        break
                    judge_calls += 1
                    try:
                        judged = await self.judge.ask(
                            session, judging, candidate.stored.text, probe.text, counters.judge
                        )
                    except JudgeError as exc:
                        counters.judge_errors += 1
                        self._failed("judge", exc)
                        return None
                    self._recovered("judge")
                if judged != "same":
                    counters.rejected["judge"] += 1
                    continue
            if self.shadow:
                counters.shadow_hits += 1
                logger.info(
                    "semantic shadow hit: prompt %s would be answered with %s (prompt %s), similarity %.4f",
                    stored_text_digest(probe.text),
                    candidate.stored.key[-12:],
                    stored_text_digest(candidate.stored.text),
                    candidate.similarity,
                )
                break
            counters.hits += 1
            self._pending.pop(key, None)
            return SemanticHit(entry, candidate.stored.key, candidate.similarity)
        counters.misses += 1
        return None

    def _judge_decides(self, reason: str | None, judging: Judging | None) -> bool:
        """A rejection for a reason the rules cannot decide goes to the judge (`decideUnsure`)."""
        judge = self.judge
        return judge is not None and judging is not None and judge.settings.decide_unsure and reason in UNSURE

    async def remember(self, counters: SemanticCounters, key: str, ttl: float) -> None:
        """Index the prompt of a miss whose answer has just been stored under `key`."""
        pending = self._pending.pop(key, None)
        if pending is None or ttl <= 0:
            return
        stored = Stored(key=key, text=pending.probe.text, vector=pending.vector, expires_at=time.time() + ttl)
        try:
            await self.index.add(pending.probe.bucket, stored)
            self._recovered("index")
        except VectorIndexError as exc:
            counters.index_errors += 1
            self._failed("index", exc)
            return
        counters.indexed += 1

    async def aclose(self) -> None:
        await self.index.aclose()

    def _failed(self, part: str, exc: Exception) -> None:
        if part not in self._failing:
            self._failing.add(part)
            logger.warning("semantic %s failed (%s); semantic lookups are plain misses until it answers", part, exc)

    def _recovered(self, part: str) -> None:
        if part in self._failing:
            self._failing.discard(part)
            logger.info("semantic %s answers again", part)


def build_semantic(settings: SemanticSettings) -> SemanticCache | None:
    """The semantic cache `settings` describe, or None when it is off.

    Raises `SecretFileError` when a key or password file cannot be read (not mounted yet).
    """
    if not settings.enabled:
        return None
    # The parts that read secret files first: a SecretFileError then leaves no client behind.
    embedder = EmbeddingClient(settings.embedding)
    judge = Judge(settings.judge) if settings.judge.enabled else None
    store = settings.store
    index: VectorIndex
    if store.type == "redis":
        from llmcache_sidecar.semantic.redis_index import RedisIndex

        cfg = store.redis
        password = read_secret(cfg.password_file, "semantic.store.redis.passwordFile")
        index = RedisIndex.from_url(
            cfg.url, password=password, timeout=cfg.timeout_ms / 1000, max_per_bucket=store.max_per_bucket
        )
    elif store.type == "qdrant":
        try:
            from llmcache_sidecar.semantic.qdrant_index import QdrantIndex
        except ImportError as exc:  # the optional extra is not installed
            raise ConfigError("semantic.store.type", "qdrant needs `pip install 'llmcache-sidecar[qdrant]'`") from exc
        q = store.qdrant
        api_key = read_secret(q.api_key_file, "semantic.store.qdrant.apiKeyFile")
        index = QdrantIndex.from_url(
            q.url,
            api_key=api_key,
            collection=q.collection,
            timeout=q.timeout_ms / 1000,
            max_per_bucket=store.max_per_bucket,
        )
    else:
        index = MemoryIndex(max_per_bucket=store.max_per_bucket, max_buckets=store.max_buckets)
    return SemanticCache(settings, index=index, embedder=embedder, judge=judge)
