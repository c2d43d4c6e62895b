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
