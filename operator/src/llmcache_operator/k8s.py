"""The few Kubernetes API calls the operator makes itself, thin and replaceable.

kopf reads and patches the LLMCache resources; this module does the rest: apply a
ConfigMap the LLMCache owns, read a referenced Secret's labels and (only when it is
labelled usable) one of its keys, to probe the backend, never stored; patch a
resource's status, guarded by its resourceVersion where another writer may race; and
learn the server's version. It is the only module that imports the Kubernetes client
(its asyncio flavour, so no call blocks the event loop); every call has a timeout.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes.aio import client, config
from kubernetes.aio.client.exceptions import ApiException

from llmcache_operator import spec
from llmcache_operator.pki import StoredSecret

logger = logging.getLogger(__name__)
TIMEOUT = 10.0
FIELD_MANAGER = "llmcache-operator"
_MINOR_RE = re.compile(r"^(\d+)")
# A GET that answers with the object's metadata only: a Secret's labels without its values.
PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
SECRET_PATH = "/api/v1/namespaces/{namespace}/secrets/{name}"


class Conflict(Exception):
    """The object changed since it was read (HTTP 409): read it again and recompute."""


class NotOwned(Exception):
    """An object of the name the operator writes exists and belongs to someone else."""


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

    async def apply_config_map(self, body: Mapping[str, Any], owner_uid: str, *, attempts: int = 3) -> None:
        """Create the ConfigMap, or update the one that exists when the LLMCache `owner_uid` owns it.

        Raises NotOwned for a ConfigMap of that name that is someone else's: it is never
        written, and its ownerReferences never replaced (the garbage collector would then
        delete it with the LLMCache). The update is a merge patch of data, labels and
        annotations at the resourceVersion that was read, so an owner added meanwhile is
        seen; Conflict when it kept changing.
        """
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        for _ in range(attempts):
            try:
                # A plain dict body: the client sends it as JSON, and it works on every client release.
                await self._core.create_namespaced_config_map(
                    namespace, dict(body), field_manager=FIELD_MANAGER, _request_timeout=TIMEOUT
                )
                logger.info("created ConfigMap %s/%s", namespace, name)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
            try:
                found = await self._core.read_namespaced_config_map(name, namespace, _request_timeout=TIMEOUT)
            except ApiException as exc:
                if exc.status == 404:
                    continue  # deleted meanwhile: create it
                raise
            found_meta = found.metadata
            owners = {ref.uid for ref in (found_meta.owner_references if found_meta else None) or ()}
            if owner_uid not in owners:
                raise NotOwned(
                    f"ConfigMap {namespace}/{name} exists and is not owned by this LLMCache:"
                    " the operator keeps the sidecar's config there; delete or rename that ConfigMap"
                )
            update = {
                "metadata": {
                    "resourceVersion": found_meta.resource_version if found_meta else None,
                    "labels": meta.get("labels") or {},
                    "annotations": meta.get("annotations") or {},
                },
                "data": body.get("data") or {},
            }
            try:
                await self._core.patch_namespaced_config_map(
                    name,
                    namespace,
                    update,
                    field_manager=FIELD_MANAGER,
                    _content_type="application/merge-patch+json",
                    _request_timeout=TIMEOUT,
                )
                return
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise
        raise Conflict(f"ConfigMap {namespace}/{name} kept changing; gave up after {attempts} attempts")

    async def read_secret_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's labels, read as metadata only (its values never reach the operator); None when missing."""
        try:
            found = await self._client.call_api(  # type: ignore[no-untyped-call,unused-ignore]
                SECRET_PATH,
                "GET",
                {"namespace": namespace, "name": name},
                [],
                {"Accept": PARTIAL_METADATA},
                auth_settings=["BearerToken"],
                response_types_map={200: "object"},
                _return_http_data_only=True,
                _request_timeout=TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        metadata = found.get("metadata") if isinstance(found, Mapping) else None
        labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
        return {str(k): str(v) for k, v in (labels or {}).items()}

    async def read_secret_key(self, namespace: str, ref: spec.SecretKeyRef, usable: Mapping[str, str]) -> str | None:
        """The decoded value of a Secret that carries the labels `usable`; None when it is missing or does not.

        The labels are read first, as metadata only: the values of a Secret without them
        are never fetched.
        """
        labels = await self.read_secret_labels(namespace, ref.name)
        if labels is None or any(labels.get(k) != v for k, v in usable.items()):
            return None
        try:
            secret = await self._core.read_namespaced_secret(ref.name, namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        found = dict((secret.metadata.labels if secret.metadata else None) or {})
        if any(found.get(k) != v for k, v in usable.items()):
            return None  # relabelled between the two reads
        encoded = (secret.data or {}).get(ref.key)
        if encoded is None:
            return None
        try:
            return base64.b64decode(encoded).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None

    async def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> bool:
        """Merge `status` into an LLMCache's status; False when the resource is gone.

        With `resource_version`, the server applies the patch only to that version of the
        resource and answers 409 otherwise (raised as Conflict): for a status computed from
        what was read, which a newer write must not lose.
        """
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            await self._custom.patch_namespaced_custom_object_status(
                spec.GROUP,
                spec.VERSION,
                namespace,
                spec.PLURAL,
                name,
                body,
                field_manager=FIELD_MANAGER,
                _content_type="application/merge-patch+json",
                _request_timeout=TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            if exc.status == 409 and resource_version is not None:
                raise Conflict(f"LLMCache {namespace}/{name} changed since resourceVersion {resource_version}") from exc
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

    async def read_llmcache(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One LLMCache as a plain object; None when it is gone."""
        try:
            found: dict[str, Any] = await self._custom.get_namespaced_custom_object(
                spec.GROUP, spec.VERSION, namespace, spec.PLURAL, name, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def list_llmcaches(self, namespaces: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every LLMCache in the cluster, or in `namespaces` when given, as plain objects."""
        if not namespaces:
            found = await self._custom.list_cluster_custom_object(
                spec.GROUP, spec.VERSION, spec.PLURAL, _request_timeout=TIMEOUT
            )
            return list(found.get("items") or [])
        items: list[dict[str, Any]] = []
        for namespace in namespaces:
            found = await self._custom.list_namespaced_custom_object(
                spec.GROUP, spec.VERSION, namespace, spec.PLURAL, _request_timeout=TIMEOUT
            )
            items += found.get("items") or []
        return items

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
