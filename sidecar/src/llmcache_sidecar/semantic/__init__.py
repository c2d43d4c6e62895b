"""Semantic caching: near-duplicate chat prompts answered from the cache, never across buckets.

Split as the pluggable caches that do it well split it: an embedder (`embedder`),
a vector index (`index`, `redis_index`, `qdrant_index`) and an acceptance rule
(`verifier`, reading prompts with `text`, and optionally an LLM `judge` after it),
put together by `matcher` and called from the data path through `hooks`. `bucket`
decides what must match exactly.
"""

from llmcache_sidecar.semantic.hooks import lookup, remember
from llmcache_sidecar.semantic.matcher import SemanticCache, SemanticCounters, SemanticHit, build_semantic

__all__ = ["SemanticCache", "SemanticCounters", "SemanticHit", "build_semantic", "lookup", "remember"]
