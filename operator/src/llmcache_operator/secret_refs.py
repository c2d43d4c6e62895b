"""Which Secrets an LLMCache may reference: only those labelled `llmcache.dev/usable: "true"`.

A referenced Secret is mounted into the sidecar of every pod the LLMCache selects, and
the sidecar sends it to the backend the LLMCache names (as the operator's probe does).
So naming a Secret in an LLMCache must not be enough to use it: whoever owns the Secret
opts it in with the label, and the operator reads nothing else. It reads the labels as
metadata only (`k8s.Api.read_secret_labels`), so the values of other Secrets never reach
it; a Secret's value is read only once the label is there, to probe the backend.

A missing Secret is refused too: the pod's volume is optional, so a Secret created later
would be mounted without anyone having opted it in. Both refusals are retried, so that
labelling (or creating) the Secret is enough; the label is checked again on every
reconcile, not continuously: removing it stops new pods from getting the Secret once the
LLMCache is next reconciled (an edit, a retry, an operator restart).
"""

from __future__ import annotations

from typing import Protocol

from llmcache_operator.allowlist import Refusal
from llmcache_operator.spec import Cache

USABLE_LABEL = "llmcache.dev/usable"
USABLE_VALUE = "true"
USABLE = {USABLE_LABEL: USABLE_VALUE}


class SecretLabels(Protocol):
    """The one call `check` makes; `k8s.Api` implements it."""

    async def read_secret_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's labels (its metadata only); None when it does not exist."""
        ...


async def check(api: SecretLabels, cache: Cache) -> Refusal | None:
    """A refusal for the first referenced Secret that is missing or not labelled usable, or None."""
    seen: set[str] = set()
    for mount in cache.secrets:
        name = mount.ref.name
        if name in seen:
            continue
        seen.add(name)
        labels = await api.read_secret_labels(cache.namespace, name)
        if labels is None:
            return Refusal(
                "SecretNotFound",
                f"{mount.field}: Secret {name!r} not found in {cache.namespace};"
                f" create it with the label {USABLE_LABEL}={USABLE_VALUE}",
                retry=True,
            )
        if labels.get(USABLE_LABEL) != USABLE_VALUE:
            return Refusal(
                "SecretNotUsable",
                f"{mount.field}: Secret {name!r} is not labelled {USABLE_LABEL}={USABLE_VALUE};"
                " its owner labels it to let LLMCaches in this namespace mount it into sidecars"
                " and send it to their backends",
                retry=True,
            )
    return None
