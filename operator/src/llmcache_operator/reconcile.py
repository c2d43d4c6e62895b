"""What an LLMCache becomes: the sidecar's ConfigMap, its hash, and the resource's status.

Pure: no kopf, no client, no clock (the caller passes `now`). The ConfigMap holds the
sidecar's `Settings` written with their defaults left out, so that a newer operator
adds a key only when the user asks for the feature that needs it: running pods may
still have an older sidecar, and they hot-reload this file.

Conditions follow Kubernetes conventions: `Ready` sums up (the config is rendered and
the backend answers), `Allowed` (the operator's allowlists and the Secrets' labels permit
the spec) and `BackendReachable` say why not; `lastTransitionTime` moves only when a
condition's status changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import yaml

from llmcache_operator import spec
from llmcache_operator.allowlist import Refusal
from llmcache_operator.spec import Cache, Condition, LastFlush, Status
from llmcache_sidecar import config
from llmcache_sidecar.config import ConfigError

CONFIG_FILE = "config.yaml"
CACHE_LABEL = "llmcache.dev/cache"
HASH_ANNOTATION = "llmcache.dev/config-hash"
COMMON_LABELS = {"app.kubernetes.io/managed-by": "llmcache-operator", "app.kubernetes.io/part-of": "llmcache"}
READY = "Ready"
ALLOWED = "Allowed"
BACKEND_REACHABLE = "BackendReachable"
INTERCEPTION_CA = "InterceptionCA"
INTERCEPTION_ALLOWED = "InterceptionAllowed"
TRANSPARENT_CONDITIONS = (INTERCEPTION_CA, INTERCEPTION_ALLOWED)
"""Conditions only transparent mode reports; dropped when a cache leaves it."""


@dataclass(frozen=True, slots=True)
class BackendCheck:
    """What probing the backend found."""

    reachable: bool | None
    """None: the operator could not check (the sidecars may still reach it)."""
    message: str


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    """The sidecar's config file."""
    config_hash: str
    config_map: dict[str, Any]


def config_text(cache: Cache) -> str:
    """The sidecar's YAML: non-default settings, plus namespace and providers always."""
    data = config.to_mapping(cache.settings, omit_defaults=True)
    data["namespace"] = cache.settings.namespace
    # Each provider with its defaults left out too: a setting added to providers later must not
    # reach the file (and older sidecars) unless it is used.
    data["providers"] = {name: config.to_mapping(p, omit_defaults=True) for name, p in cache.settings.providers.items()}
    return yaml.safe_dump(data, sort_keys=True)


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def owner_reference(cache: Cache, uid: str) -> dict[str, Any]:
    """Makes an object go when its LLMCache goes."""
    return {
        "apiVersion": spec.API_VERSION,
        "kind": spec.KIND,
        "name": cache.name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def render(cache: Cache, *, uid: str, intercepted: Mapping[str, str] | None = None) -> Rendered:
    """The ConfigMap for `cache`, owned by its LLMCache (uid) so that it goes when the resource goes.

    `intercepted`: in transparent mode, the hosts the cache's CA may sign for now
    (`interception_ca`), which replace the spec's list until a rotation brings in the rest.
    """
    if intercepted is not None:
        transparent = replace(cache.settings.transparent, hosts=dict(intercepted))
        cache = replace(cache, settings=replace(cache.settings, transparent=transparent))
    text = config_text(cache)
    digest = config_hash(text)
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": cache.config_map,
            "namespace": cache.namespace,
            "labels": {**COMMON_LABELS, CACHE_LABEL: cache.name},
            "annotations": {HASH_ANNOTATION: digest},
            "ownerReferences": [owner_reference(cache, uid)],
        },
        "data": {CONFIG_FILE: text},
    }
    return Rendered(text=text, config_hash=digest, config_map=body)


def salt_secret(cache: Cache, *, uid: str, value: str) -> dict[str, Any]:
    """The Secret with `cache`'s tenant salt `value` (random, from the caller), owned by its LLMCache.

    Created once and never replaced: a new salt turns every entry keyed by credential
    into a miss. The sidecars read it as a file (`tenantSaltFile`).
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": cache.salt_secret,
            "namespace": cache.namespace,
            "labels": {**COMMON_LABELS, CACHE_LABEL: cache.name},
            "ownerReferences": [owner_reference(cache, uid)],
        },
        "stringData": {spec.SALT_KEY: value},
    }


def read_status(raw: Mapping[str, Any] | None) -> Status:
    """The status as stored; anything unreadable counts as never written."""
    known = {"conditions", "observedGeneration", "configHash", "configMap", "injectedPods", "lastFlush"}
    data = {k: v for k, v in (raw or {}).items() if k in known}
    try:
        return parse_status(data)
    except ConfigError:
        return Status()


def parse_status(data: Mapping[str, Any]) -> Status:
    return config.parse(Status, data, "status")


def status_after_reconcile(
    previous: Mapping[str, Any] | None,
    *,
    cache: Cache,
    rendered: Rendered,
    backend: BackendCheck,
    generation: int,
    injected_pods: int,
    now: str,
    transparent: Sequence[Condition] = (),
) -> dict[str, Any]:
    """The status patch after the ConfigMap was applied and the backend probed.

    `transparent`: the conditions of transparent mode (`transparent_conditions`), if on.
    """
    old = read_status(previous)
    where = f"Sidecar config {rendered.config_hash} is in ConfigMap {cache.config_map}"
    if backend.reachable is False:
        reachable = Condition(type=BACKEND_REACHABLE, status="False", reason="Unreachable", message=backend.message)
        ready = Condition(
            type=READY,
            status="False",
            reason="BackendUnreachable",
            message=f"{where}, but the backend does not answer ({backend.message});"
            " sidecars pass requests through uncached.",
        )
    else:
        if backend.reachable is None:
            reachable = Condition(
                type=BACKEND_REACHABLE, status="Unknown", reason="NotChecked", message=backend.message
            )
        else:
            reachable = Condition(type=BACKEND_REACHABLE, status="True", reason="Answered", message=backend.message)
        ready = Condition(type=READY, status="True", reason="Reconciled", message=f"{where}.")
    conditions = with_condition(old.conditions, ready, now=now, generation=generation)
    conditions = with_condition(conditions, allowed_condition(None), now=now, generation=generation)
    conditions = with_condition(conditions, reachable, now=now, generation=generation)
    conditions = with_transparent_conditions(conditions, transparent, now=now, generation=generation)
    last_flush = old.last_flush
    if flush_requested(previous, cache):
        last_flush = LastFlush(value=cache.settings.flush, time=now)
    status = Status(
        conditions=conditions,
        observed_generation=generation,
        config_hash=rendered.config_hash,
        config_map=cache.config_map,
        injected_pods=injected_pods,
        last_flush=last_flush,
    )
    result = config.to_mapping(status, omit_defaults=True)
    result["conditions"] = [config.to_mapping(c) for c in conditions]  # every field, "Unknown" included
    return result


def flush_requested(previous: Mapping[str, Any] | None, cache: Cache) -> bool:
    """`spec.flush` holds a value that no reconcile has rendered yet."""
    last_flush = read_status(previous).last_flush
    flush = cache.settings.flush
    return bool(flush) and (last_flush is None or last_flush.value != flush)


def status_after_invalid(
    previous: Mapping[str, Any] | None, *, error: ConfigError, generation: int, now: str
) -> dict[str, Any]:
    """The status patch for a spec that does not parse: the last good ConfigMap stays as it was."""
    old = read_status(previous)
    ready = Condition(type=READY, status="False", reason="InvalidSpec", message=str(error))
    conditions = with_condition(old.conditions, ready, now=now, generation=generation)
    conditions = _backend_not_checked(conditions, "The spec is invalid.", now=now, generation=generation)
    return {"conditions": [config.to_mapping(c) for c in conditions], "observedGeneration": generation}


def status_after_refusal(
    previous: Mapping[str, Any] | None, *, refusal: Refusal, generation: int, now: str
) -> dict[str, Any]:
    """The status patch for a spec the operator may not use: nothing was written for it.

    The last ConfigMap stays as it was (running sidecars keep their config), and new pods
    are not injected (the webhook reads Allowed, and checks the allowlists itself).
    """
    old = read_status(previous)
    ready = Condition(
        type=READY,
        status="False",
        reason="NotAllowed",
        message=f"{refusal.message}. Nothing was applied: new pods do not get this cache.",
    )
    conditions = with_condition(old.conditions, ready, now=now, generation=generation)
    conditions = with_condition(conditions, allowed_condition(refusal), now=now, generation=generation)
    conditions = _backend_not_checked(conditions, "The spec is not allowed.", now=now, generation=generation)
    return {"conditions": [config.to_mapping(c) for c in conditions], "observedGeneration": generation}


def _backend_not_checked(
    conditions: tuple[Condition, ...], why: str, *, now: str, generation: int
) -> tuple[Condition, ...]:
    """`conditions` with BackendReachable Unknown (`why`) when there is none yet: it was never probed."""
    if any(c.type == BACKEND_REACHABLE for c in conditions):
        return conditions
    unknown = Condition(type=BACKEND_REACHABLE, status="Unknown", reason="NotChecked", message=why)
    return with_condition(conditions, unknown, now=now, generation=generation)


def status_after_conflict(
    previous: Mapping[str, Any] | None, *, message: str, generation: int, now: str
) -> dict[str, Any]:
    """The status patch when the ConfigMap's name is taken by an object the LLMCache does not own."""
    old = read_status(previous)
    ready = Condition(type=READY, status="False", reason="ConfigMapConflict", message=message)
    conditions = with_condition(old.conditions, ready, now=now, generation=generation)
    conditions = with_condition(conditions, allowed_condition(None), now=now, generation=generation)
    return {"conditions": [config.to_mapping(c) for c in conditions], "observedGeneration": generation}


def allowed_condition(refusal: Refusal | None) -> Condition:
    if refusal is None:
        return Condition(
            type=ALLOWED,
            status="True",
            reason="WithinPolicy",
            message="The operator's allowlists and the referenced Secrets' labels permit this spec.",
        )
    return Condition(type=ALLOWED, status="False", reason=refusal.reason, message=refusal.message)


def refused_by_status(raw_status: Mapping[str, Any] | None, generation: int, *, uses_secrets: bool) -> str | None:
    """Why the webhook must not inject this generation, from the status the operator wrote; None: it may.

    A generation the operator refused is not injected; one that references Secrets is
    injected only once the operator has checked their labels for that very generation.
    A cache never reconciled is not injected anyway (no configHash): for it, only an
    explicit refusal is worth saying.
    """
    status = read_status(raw_status)
    allowed = next((c for c in status.conditions if c.type == ALLOWED and c.observed_generation == generation), None)
    if allowed is not None and allowed.status == "False":
        return f"it is not allowed: {allowed.message}"
    if uses_secrets and status.config_hash is not None and (allowed is None or allowed.status != "True"):
        return f"the operator has not checked the Secrets that generation {generation} references yet"
    return None


def injected_pods_patch(previous: Mapping[str, Any] | None, count: int) -> dict[str, Any]:
    """The status patch for a new count of injected pods; empty when nothing changed."""
    return {} if read_status(previous).injected_pods == count else {"injectedPods": count}


def transparent_conditions(
    *, ca_pending: str | None, ca_error: str | None = None, iptables: tuple[bool, str] | None
) -> list[Condition]:
    """InterceptionCA (is the CA settled?) and, for the iptables variant, InterceptionAllowed."""
    if ca_error is not None:
        message = f"{ca_error}. Nothing is intercepted meanwhile: listed hosts are tunnelled, uncached."
        ca = Condition(type=INTERCEPTION_CA, status="False", reason="SecretConflict", message=message)
    elif ca_pending is not None:
        ca = Condition(type=INTERCEPTION_CA, status="False", reason="RotationPending", message=ca_pending)
    else:
        ca = Condition(type=INTERCEPTION_CA, status="True", reason="Current", message="The interception CA is current.")
    found = [ca]
    if iptables is not None:
        allowed, why = iptables
        found.append(
            Condition(
                type=INTERCEPTION_ALLOWED,
                status="True" if allowed else "False",
                reason="Allowed" if allowed else "ForbiddenByPodSecurity",
                message=why if allowed else f"{why}: pods get HTTPS_PROXY only, without the iptables init container.",
            )
        )
    return found


def with_transparent_conditions(
    conditions: tuple[Condition, ...], transparent: Sequence[Condition], *, now: str, generation: int
) -> tuple[Condition, ...]:
    """`conditions` with transparent mode's set to `transparent`; those not reported any more are dropped."""
    for new in transparent:
        conditions = with_condition(conditions, new, now=now, generation=generation)
    reported = {c.type for c in transparent}
    return tuple(c for c in conditions if c.type not in TRANSPARENT_CONDITIONS or c.type in reported)


def condition_true(raw_status: Mapping[str, Any] | None, kind: str) -> bool:
    """Whether the stored status has condition `kind` with status True."""
    return any(c.type == kind and c.status == "True" for c in read_status(raw_status).conditions)


def condition_true_for(raw_status: Mapping[str, Any] | None, kind: str, generation: int) -> bool:
    """Whether the stored status has condition `kind` True about `generation`."""
    return any(
        c.type == kind and c.status == "True" and c.observed_generation == generation
        for c in read_status(raw_status).conditions
    )


def with_condition(
    conditions: tuple[Condition, ...], new: Condition, *, now: str, generation: int
) -> tuple[Condition, ...]:
    """`conditions` with `new` set in place of its type; the transition time moves only on a status change."""
    old = next((c for c in conditions if c.type == new.type), None)
    since = now
    if old is not None and old.status == new.status and old.last_transition_time:
        since = old.last_transition_time
    new = replace(new, last_transition_time=since, observed_generation=generation)
    if old is None:
        return (*conditions, new)
    return tuple(new if c.type == new.type else c for c in conditions)
