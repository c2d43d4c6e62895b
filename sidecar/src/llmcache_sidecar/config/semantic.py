"""Settings of semantic caching: `semantic:`, its embeddings endpoint, vector store and judge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmcache_sidecar.config.backends import RedisSettings
from llmcache_sidecar.config.fields import ConfigError, setting

SemanticMode = Literal["serve", "shadow"]
SemanticStoreType = Literal["memory", "redis", "qdrant"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddingSettings:
    url: str = setting(
        "url",
        "Base URL of an OpenAI-compatible embeddings API; /embeddings is appended.",
        default="http://127.0.0.1:8080/v1",
    )
    model: str = setting("model", "Embedding model sent in each request.", default="all-MiniLM-L6-v2")
    api_key_file: str | None = setting(
        "apiKeyFile", "File holding the embeddings API key (a mounted Secret); none is sent if unset.", default=None
    )
    timeout_ms: int = setting(
        "timeoutMs", "Longest an embedding may take; past it the request is a plain miss.", default=300, minimum=1
    )
    cache_entries: int = setting(
        "cacheEntries", "Embeddings of identical texts kept in memory.", default=10_000, minimum=0
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class QdrantSettings:
    url: str = setting(
        "url",
        "Qdrant server URL; :memory: runs qdrant-client's local mode in process (tests).",
        default="http://127.0.0.1:6333",
    )
    collection: str = setting("collection", "Collection the vectors go into.", default="llmcache")
    api_key_file: str | None = setting(
        "apiKeyFile", "File holding the Qdrant API key (a mounted Secret).", default=None
    )
    timeout_ms: int = setting("timeoutMs", "Longest a Qdrant call may take.", default=200, minimum=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class SemanticStoreSettings:
    type: SemanticStoreType = setting(
        "type", "Where prompt vectors live: memory (this pod), redis (plain Redis, shared), qdrant.", default="memory"
    )
    max_per_bucket: int = setting(
        "maxPerBucket",
        "Most prompts kept per bucket (same model, parameters, system prompt, history, tenant); oldest go first.",
        default=256,
        minimum=1,
    )
    max_buckets: int = setting("maxBuckets", "Most buckets the memory store keeps.", default=10_000, minimum=1)
    redis: RedisSettings = setting("redis", "Redis connection.", factory=RedisSettings)
    qdrant: QdrantSettings = setting("qdrant", "Qdrant connection.", factory=QdrantSettings)


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeSettings:
    """An LLM asked whether two prompts ask for the same answer: a second gate after the verifier."""

    enabled: bool = setting(
        "enabled", "Ask an LLM judge before serving a semantic hit; its error or timeout means a miss.", default=False
    )
    provider: str = setting(
        "provider", "One of the configured providers: the judge is called through its upstream.", default="openai"
    )
    model: str = setting("model", "Judge model (for azure: the deployment name).", default="gpt-4o-mini")
    api_key_file: str | None = setting(
        "apiKeyFile",
        "File holding the judge's own API key (a mounted Secret), sent in the provider's credential header;"
        " the callers' keys are never used for it.",
        default=None,
    )
    api_version: str = setting(
        "apiVersion", "api-version query parameter, for an azure provider only.", default="2024-10-21"
    )
    timeout_ms: int = setting(
        "timeoutMs", "Longest a judge call may take; past it the request is a plain miss.", default=2000, minimum=1
    )
    min_similarity: float | None = setting(
        "minSimilarity",
        "Also judge verifier-accepted candidates from this similarity up to the threshold (more recall);"
        " unset: only candidates at or above the threshold.",
        default=None,
        minimum=0.0,
    )
    decide_unsure: bool = setting(
        "decideUnsure",
        "Also ask the judge about candidates the rules reject only because they cannot tell (a phrase in"
        " another's place, words moved): served only on its SAME, so its accuracy decides.",
        default=False,
    )
    max_calls_per_lookup: int = setting(
        "maxCallsPerLookup", "Most judge calls one lookup may make (cached verdicts are free).", default=2, minimum=1
    )
    cache_entries: int = setting(
        "cacheEntries", "Verdicts kept in memory, by judge model and both prompts' hashes.", default=10_000, minimum=0
    )

    def _check(self, path: str) -> None:
        if self.min_similarity is not None and not 0.0 <= self.min_similarity <= 1.0:
            raise ConfigError(f"{path}.minSimilarity" if path else "minSimilarity", "must be between 0 and 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class SemanticSettings:
    enabled: bool = setting(
        "enabled", "Answer near-duplicate chat prompts from the cache (after an exact miss).", default=False
    )
    mode: SemanticMode = setting(
        "mode", "serve: answer semantic hits; shadow: only count and log them, to choose a threshold.", default="serve"
    )
    threshold: float = setting(
        "threshold",
        "Cosine similarity a stored prompt needs to be a candidate; the verifier still decides.",
        default=0.80,
        minimum=0.0,
    )
    candidates: int = setting("candidates", "Most candidates checked by the verifier per lookup.", default=4, minimum=1)
    embedding: EmbeddingSettings = setting("embedding", "Embeddings endpoint.", factory=EmbeddingSettings)
    store: SemanticStoreSettings = setting("store", "Vector store.", factory=SemanticStoreSettings)
    judge: JudgeSettings = setting(
        "judge",
        "Optional LLM judge: a verifier-accepted candidate is served only if it says SAME.",
        factory=JudgeSettings,
    )

    def _check(self, path: str) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"{path}.threshold" if path else "threshold", "must be between 0 and 1")
