"""Who the caller is: the credential headers a provider reads, and the salted tenant hash (issue 15)."""

from __future__ import annotations

import pytest

from llmcache_sidecar import config
from llmcache_sidecar.wire import keys
from llmcache_sidecar.wire.providers import KINDS


def test_configured_credential_headers_are_read_in_lower_case() -> None:
    settings = config.parse(
        config.Settings, {"providers": {"openai": {"credentialHeaders": ["Ocp-Apim-Subscription-Key"]}}}
    )
    assert settings.providers["openai"].credential_headers == ("ocp-apim-subscription-key",)
    assert settings.providers["openai"].allow_anonymous is False


@pytest.mark.parametrize("name", ["", "x api key", "x-key:", "ключ"])
def test_a_credential_header_that_is_not_a_header_name_is_refused_with_its_path(name: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(config.Settings, {"providers": {"openai": {"credentialHeaders": ["x-ok", name]}}})
    assert caught.value.path == "providers.openai.credentialHeaders[1]"


def test_every_credential_a_request_carries_makes_its_tenant() -> None:
    kind = KINDS["azure"]
    shared = {"api-key": "the-gateways-own-key"}
    a = kind.credential({**shared, "ocp-apim-subscription-key": "a"}, {}, ("ocp-apim-subscription-key",))
    b = kind.credential({**shared, "ocp-apim-subscription-key": "b"}, {}, ("ocp-apim-subscription-key",))
    assert a is not None and b is not None and a != b
    assert kind.credential(shared, {}) == kind.credential(shared, {}, ("ocp-apim-subscription-key",))
    assert kind.credential({}, {}, ("ocp-apim-subscription-key",)) is None
    gemini = KINDS["gemini"]
    assert gemini.credential({}, {"key": "g"}) != gemini.credential({}, {"key": "h"})


def test_the_tenant_hash_depends_on_the_salt() -> None:
    plain, salted = keys.tenant_of("Bearer sk-a"), keys.tenant_of("Bearer sk-a", b"install-salt")
    assert plain != salted
    assert salted == keys.tenant_of("Bearer sk-a", b"install-salt")
    assert salted != keys.tenant_of("Bearer sk-a", b"another-install")
    assert keys.tenant_of(None, b"install-salt") == keys.ANONYMOUS_TENANT
