"""The LLMCache's status: what the operator observed and did, as the CRD's status schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmcache_sidecar.config import setting


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    type: str = setting("type", "Ready, Allowed, BackendReachable, InterceptionCA or InterceptionAllowed.", default="")
    status: Literal["True", "False", "Unknown"] = setting("status", "True, False or Unknown.", default="Unknown")
    reason: str = setting("reason", "One CamelCase word for machines.", default="")
    message: str = setting("message", "What happened, for people.", default="")
    last_transition_time: str = setting(
        "lastTransitionTime", "When status last changed.", default="", schema={"format": "date-time"}
    )
    observed_generation: int | None = setting(
        "observedGeneration", "The generation this condition is about.", default=None
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LastFlush:
    value: str = setting("value", "The spec.flush value that was rendered.", default="")
    time: str = setting("time", "When the operator rendered it.", default="", schema={"format": "date-time"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Savings:
    """What the cache saved over `window`, summed from what its sidecars report to the shared backend."""

    window: str = setting(
        "window", "The period the numbers cover, up to computedAt (1h: the last 60 minutes).", default=""
    )
    computed_at: str = setting(
        "computedAt", "When the operator computed them.", default="", schema={"format": "date-time"}
    )
    requests: int | None = setting(
        "requests", "Cacheable requests the sidecars answered (every request but a pass-through).", default=None
    )
    hits: int | None = setting("hits", "Of them, answered from the cache (exact, coalesced, semantic).", default=None)
    hit_ratio: float | None = setting(
        "hitRatio", "hits / requests over the last hour.", default=None, column="Hit ratio"
    )
    tokens_saved: int | None = setting(
        "tokensSaved",
        "Input and output tokens not bought again, over the last hour.",
        default=None,
        column="Tokens saved",
    )
    cost_saved_usd: float | None = setting(
        "costSavedUSD",
        "Their price in US dollars over the last hour, from the sidecars' price table (telemetry.prices).",
        default=None,
        column="USD saved",
    )
    message: str | None = setting(
        "message",
        "Why there are no numbers: a backend that keeps none (memory, disk, object stores), or one that did"
        " not answer.",
        default=None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    conditions: tuple[Condition, ...] = setting(
        "conditions",
        "Ready, Allowed and BackendReachable; InterceptionCA (and InterceptionAllowed) in transparent mode.",
        default=(),
    )
    observed_generation: int | None = setting(
        "observedGeneration", "The generation the operator last acted on.", default=None
    )
    config_hash: str | None = setting("configHash", "Hash of the sidecar configuration in the ConfigMap.", default=None)
    config_map: str | None = setting("configMap", "The ConfigMap the sidecars mount.", default=None)
    injected_pods: int | None = setting("injectedPods", "Running pods that carry this cache's sidecar.", default=None)
    last_flush: LastFlush | None = setting("lastFlush", "The last spec.flush value rendered, and when.", default=None)
    savings: Savings | None = setting(
        "savings", "Hit ratio, tokens and money saved over the last hour (kubectl get llmcaches).", default=None
    )
