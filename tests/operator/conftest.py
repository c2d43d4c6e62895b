"""kopf pointed at a test API server, for the operator's tests.

The Kubernetes API is faked where the tests say so (kmock's emulator); Redis and TLS are
real (`redis_server`, `redis_with_password`, `tls` from `tests.realparts.fixtures`).
"""

from __future__ import annotations

import kopf

# kopf logs in through login handlers; this one points it at the test's kmock (or any
# URL a test sets). Registering any login handler turns off kopf's kubeconfig logins.
KOPF_SERVER: list[str] = []


@kopf.on.login(registry=kopf.get_default_registry())
def _login_to_test_server(**_: object) -> kopf.ConnectionInfo:
    if not KOPF_SERVER:
        raise kopf.LoginError("no test API server set")
    return kopf.ConnectionInfo(server=KOPF_SERVER[-1])
