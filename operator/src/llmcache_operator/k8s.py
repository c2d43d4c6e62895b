"""The few Kubernetes API calls the operator makes itself, thin and replaceable.

kopf reads and patches the LLMCache resources; this module does the rest: apply a
ConfigMap, read one key of a Secret (only to probe the backend, never stored),
patch a resource's status from a pod event, and learn the server's version. It is
the only module that imports the Kubernetes client (its asyncio flavour, so no call
blocks the event loop); every call has a timeout.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
import re
from collections.abc import Mapping
from typing import Any

from kubernetes.aio import client, config
from kubernetes.aio.client.exceptions import ApiException

from llmcache_operator import spec
from llmcache_operator.pki import StoredSecret

logger = logging.getLogger(__name__)
TIMEOUT = 10.0
FIELD_MANAGER = "llmcache-operator"
_MINOR_RE = re.compile(r"^(\d+)")


class Api:
    """One API client for the operator's life; `aclose()` at cleanup."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._client = api_client
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._version = client.VersionApi(api_client)
        self._admission = client.AdmissionregistrationV1Api(api_client)

    @classmethod
    def for_server(cls, host: str, *, token: str | None = None, verify_ssl: bool = True) -> Api:
        """A client for an explicit server URL (tests, or a proxy)."""
        configuration = client.Configuration(host=host)
        configuration.verify_ssl = verify_ssl
        if token:
            configuration.api_key = {"authorization": f"Bearer {token}"}
        return cls(client.ApiClient(configuration))

    @classmethod
    async def from_environment(cls) -> Api:
        """In a pod: its service account; elsewhere: the current kubeconfig context."""
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call,unused-ignore]
        except config.ConfigException:
            await config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call,unused-ignore]
        return cls(client.ApiClient(configuration))

    async def aclose(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call,unused-ignore]

    async def apply_config_map(self, body: Mapping[str, Any]) -> None:
        """Create the ConfigMap, or merge-patch it into the one that exists."""
        meta = body["metadata"]
        try:
            # A plain dict body: the client sends it as JSON, and it works on every client release.
            await self._core.create_namespaced_config_map(
                meta["namespace"], dict(body), field_manager=FIELD_MANAGER, _request_timeout=TIMEOUT
            )
            logger.info("created ConfigMap %s/%s", meta["namespace"], meta["name"])
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        await self._core.patch_namespaced_config_map(
            meta["name"],
            meta["namespace"],
            dict(body),
            field_manager=FIELD_MANAGER,
            _content_type="application/merge-patch+json",
            _request_timeout=TIMEOUT,
        )

    async def read_secret_key(self, namespace: str, ref: spec.SecretKeyRef) -> str | None:
        """The decoded value, or None when the Secret or its key does not exist."""
        try:
            secret = await self._core.read_namespaced_secret(ref.name, namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        encoded = (secret.data or {}).get(ref.key)
        if encoded is None:
            return None
        try:
            return base64.b64decode(encoded).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        """Merge `status` into an LLMCache's status; False when the resource is gone."""
        try:
            await self._custom.patch_namespaced_custom_object_status(
                spec.GROUP,
                spec.VERSION,
                namespace,
                spec.PLURAL,
                name,
                {"status": dict(status)},
                field_manager=FIELD_MANAGER,
                _content_type="application/merge-patch+json",
                _request_timeout=TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def post_event(self, involved: Mapping[str, Any], *, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about `involved` (apiVersion, kind, metadata name/namespace/uid)."""
        meta = involved["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._core.create_namespaced_event(meta["namespace"], body, _request_timeout=TIMEOUT)

    async def list_llmcaches(self) -> list[dict[str, Any]]:
        """Every LLMCache in the cluster, as plain objects."""
        found = await self._custom.list_cluster_custom_object(
            spec.GROUP, spec.VERSION, spec.PLURAL, _request_timeout=TIMEOUT
        )
        return list(found.get("items") or [])

    async def trusting_pods_created(self, namespace: str, ca_secret: str) -> list[datetime.datetime]:
        """When each live pod of `namespace` that mounts the CA Secret `ca_secret` was created.

        Finished pods (a Job's, kept for its logs) and pods being deleted run no app any
        more, and pods injected in base-URL mode never trust the CA: none of them holds
        back a rotation.
        """
        pods = await self._core.list_namespaced_pod(namespace, _request_timeout=TIMEOUT)
        found = []
        for pod in pods.items:
            meta, status = pod.metadata, pod.status
            if meta is None or meta.creation_timestamp is None or meta.deletion_timestamp is not None:
                continue
            if status is not None and status.phase in ("Succeeded", "Failed"):
                continue
            volumes = (pod.spec.volumes if pod.spec else None) or []
            if any(v.secret is not None and v.secret.secret_name == ca_secret for v in volumes):
                found.append(meta.creation_timestamp)
        return found

    async def server_version(self) -> tuple[int, int] | None:
        """(major, minor) of the API server, or None when it does not say."""
        try:
            info = await self._version.get_code(_request_timeout=TIMEOUT)
        except (ApiException, OSError, ValueError) as exc:
            logger.warning("cannot read the API server's version (%s); assuming no native sidecars", exc)
            return None
        return parse_version(info.major, info.minor)

    async def read_namespace_labels(self, name: str) -> dict[str, str]:
        """A namespace's labels (empty when it has none or is gone)."""
        try:
            found = await self._core.read_namespace(name, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return {}
            raise
        return dict((found.metadata.labels if found.metadata else None) or {})

    # --- Certificates in Secrets (webhook_tls.TLSStore, interception_ca.CAStore) -------------

    async def read_secret(self, namespace: str, name: str) -> StoredSecret | None:
        """A Secret's base64 `data`, annotations, owners and resourceVersion; None when it does not exist."""
        try:
            secret = await self._core.read_namespaced_secret(name, namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        meta = secret.metadata
        return StoredSecret(
            data={key: str(value) for key, value in (secret.data or {}).items()},
            annotations=dict((meta.annotations if meta else None) or {}),
            owners=tuple(ref.uid for ref in (meta.owner_references if meta else None) or ()),
            resource_version=str(meta.resource_version if meta else ""),
        )

    async def create_secret(self, body: Mapping[str, Any]) -> bool:
        """Create a Secret; False when one of that name exists already."""
        try:
            await self._core.create_namespaced_secret(
                body["metadata"]["namespace"], _secret(body), field_manager=FIELD_MANAGER, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def replace_secret(self, body: Mapping[str, Any]) -> bool:
        """Replace a Secret at the resourceVersion in `body`; False on a conflict."""
        meta = body["metadata"]
        try:
            await self._core.replace_namespaced_secret(
                meta["name"], meta["namespace"], _secret(body), field_manager=FIELD_MANAGER, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def read_mutating_webhook_configuration(self, name: str) -> dict[str, Any] | None:
        try:
            found = await self._admission.read_mutating_webhook_configuration(name, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        plain: dict[str, Any] = self._client.sanitize_for_serialization(found)  # type: ignore[no-untyped-call,unused-ignore]
        return plain

    async def patch_mutating_webhook_configuration(self, name: str, ops: list[dict[str, Any]]) -> None:
        await self._admission.patch_mutating_webhook_configuration(
            name,
            ops,
            field_manager=FIELD_MANAGER,
            _content_type="application/json-patch+json",
            _request_timeout=TIMEOUT,
        )


def _secret(body: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict body: the client sends it as JSON, and it works on every client release."""
    if body.get("kind", "Secret") != "Secret":
        raise ValueError("not a Secret")
    return dict(body)


def parse_version(major: str | None, minor: str | None) -> tuple[int, int] | None:
    """`("1", "29+")` -> (1, 29); managed clusters append `+` to the minor."""
    found = [_MINOR_RE.match(part or "") for part in (major, minor)]
    if found[0] is None or found[1] is None:
        return None
    return int(found[0].group(1)), int(found[1].group(1))
