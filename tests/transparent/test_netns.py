"""The iptables variant, for real: an app that knows nothing of the proxy, redirected by the kernel.

Inside two network namespaces that this test creates (and deletes):

    app netns  10.77.0.1 ── veth ── 10.77.0.2, 10.77.0.3  provider netns
      sidecar (uid 65531): data 127.0.0.1:8787, redirect port 127.0.0.1:15001
      app (uid 65534): no proxy variables, only a CA bundle
      nat OUTPUT: tcp dport 443, not uid 65531 -> REDIRECT 15001
                                                           fake provider, TLS, "api.openai.com"  10.77.0.2:443
                                                           another origin, TLS, "origin.test"     10.77.0.3:443

Names resolve through /etc/netns/<app netns>/hosts, which `ip netns exec` mounts over
/etc/hosts for that namespace only. The provider certificates come from a test CA that
stands in for the public PKI (the sidecar trusts it through SSL_CERT_FILE); the app trusts
that CA and the interception CA, as the operator's bundle would make it.

Faked: only the providers (a local fake speaking the real wire format). Real: the kernel's
REDIRECT and owner match, SO_ORIGINAL_DST, the sidecar as `llmcache-sidecar --config`,
the official openai SDK as the app.

Processes that must read this checkout and the pytest temp dir run with one ambient
capability, CAP_DAC_READ_SEARCH (read-only file access); their UID, which is what the
owner match looks at, is the one given.

Needs root and `iptables` (CI: `apt-get install -y iptables`); skips otherwise.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from llmcache_operator import injection, interception, interception_ca, reconcile, spec
from tests.transparent.conftest import Pki

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
SIDECAR_UID = injection.SIDECAR_UID
APP_UID = 65534
REDIRECT_PORT = 15001
WAIT = 20.0


def _skip_reason() -> str | None:
    if sys.platform != "linux":
        return "network namespaces and iptables are Linux only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces and iptables rules"
    for tool in ("ip", "iptables", "setpriv"):
        if shutil.which(tool) is None:
            return f"`{tool}` is missing (CI runs: apt-get install -y iptables iproute2 util-linux)"
    return None


def sh(*cmd: str, timeout: float = 10.0, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def as_user(netns: str, uid: int) -> list[str]:
    return [
        "ip", "netns", "exec", netns,
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
    ]  # fmt: skip


class Background:
    """A process of this test, its output collected, waited for by a line it prints."""

    def __init__(self, cmd: list[str], env: dict[str, str], ready: str) -> None:
        self.lines: list[str] = []
        self._ready = ready
        self._seen = threading.Event()
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if self._ready in line:
                self._seen.set()
        self._seen.set()  # the process ended: stop waiting

    def wait_ready(self) -> None:
        if not self._seen.wait(WAIT) or self.proc.poll() is not None:
            raise RuntimeError("process did not start:\n" + "".join(self.lines))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


PROVIDER = textwrap.dedent(
    """
    import asyncio, ssl, sys
    from aiohttp import web
    from tests.fakes.provider import FAKE, make_fake_provider

    async def calls(request):
        received = request.app[FAKE].received
        return web.json_response({"calls": sum(r.path.endswith("/chat/completions") for r in received)})

    async def hello(request):
        return web.Response(text="hello from the origin")

    def context(chain, key):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(chain, key)
        return ctx

    async def main(d):
        api = make_fake_provider()
        api.router.add_get("/_calls", calls)
        origin = web.Application()
        origin.router.add_get("/", hello)
        for app, ip, name in ((api, "10.77.0.2", "api"), (origin, "10.77.0.3", "origin")):
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, ip, 443, ssl_context=context(f"{d}/{name}.crt", f"{d}/{name}.key")).start()
        print("providers ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(sys.argv[1]))
    """
)

APP = textwrap.dedent(
    """
    import http.client, json, os, ssl, openai

    ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])

    def get(host, path):
        conn = http.client.HTTPSConnection(host, 443, context=ctx, timeout=10)
        conn.request("GET", path)
        issuer = dict(item[0] for item in conn.sock.getpeercert()["issuer"])
        answer = conn.getresponse()
        body = answer.read().decode()
        conn.close()
        return {"issuer": issuer.get("organizationName"), "body": body, "cache": answer.getheader("Cache-Status")}

    out = {"uid": os.getuid()}
    if os.environ.get("ONLY_CALLS") != "1":
        client = openai.OpenAI(api_key="sk-netns", max_retries=0)
        out["chat"] = []
        for _ in range(2):
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi from a netns"}]
            )
            out["chat"].append([raw.headers.get("cache-status"), raw.parse().id])
        out["origin"] = get("origin.test", "/")
    out["calls"] = get("api.openai.com", "/_calls")
    print(json.dumps(out))
    """
)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    tag = secrets.token_hex(3)
    app, prov = f"llmc-app-{tag}", f"llmc-prov-{tag}"
    veth_app, veth_prov = f"lv{tag}a", f"lv{tag}p"
    etc = Path("/etc/netns") / app
    made_etc_netns = not etc.parent.exists()
    try:
        try:
            sh("ip", "netns", "add", app)
        except RuntimeError as exc:
            pytest.skip(f"cannot create a network namespace here: {exc}")
        sh("ip", "netns", "add", prov)
        sh("ip", "link", "add", veth_app, "type", "veth", "peer", "name", veth_prov)
        sh("ip", "link", "set", veth_app, "netns", app)
        sh("ip", "link", "set", veth_prov, "netns", prov)
        sh("ip", "-n", app, "addr", "add", "10.77.0.1/24", "dev", veth_app)
        sh("ip", "-n", prov, "addr", "add", "10.77.0.2/24", "dev", veth_prov)
        sh("ip", "-n", prov, "addr", "add", "10.77.0.3/24", "dev", veth_prov)
        for ns, dev in ((app, veth_app), (prov, veth_prov)):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        etc.mkdir(parents=True)
        (etc / "hosts").write_text(
            "127.0.0.1 localhost\n10.77.0.2 api.openai.com api.anthropic.com\n10.77.0.3 origin.test\n"
        )
        yield app, prov
    finally:
        for ns in (app, prov):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)
        shutil.rmtree(etc, ignore_errors=True)
        if made_etc_netns:
            shutil.rmtree(etc.parent, ignore_errors=True)


@dataclass(frozen=True)
class Setup:
    """What the pod would have: the sidecar's config and UID, the app's bundle, the nat rules."""

    config: str
    sidecar_uid: int
    app_bundle: Path
    intercept_org: str
    redirect: Callable[[str], None]
    """Installs the nat rules in the app's network namespace."""


def hand_written_setup(pki: Pki, tmp_path: Path) -> Setup:
    """The rule and config of docs/transparent.md, with trustme's CA as the namespace CA."""
    config = {
        "listen": "127.0.0.1:8787",
        "admin": "127.0.0.1:8788",
        "transparent": {
            "enabled": True,
            "caCertFile": str(pki.ca_cert_file),
            "caKeyFile": str(pki.ca_key_file),
            "iptablesPort": REDIRECT_PORT,
        },
    }

    def redirect(app_ns: str) -> None:
        sh(
            "ip", "netns", "exec", app_ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "443",
            "-m", "owner", "!", "--uid-owner", str(SIDECAR_UID), "-j", "REDIRECT", "--to-ports", str(REDIRECT_PORT),
        )  # fmt: skip

    return Setup(json.dumps(config), SIDECAR_UID, pki.bundle_file, "llmcache test namespace CA", redirect)


def operator_setup(pki: Pki, tmp_path: Path) -> Setup:
    """What the operator makes for `mode: transparent, interception: iptables`, each piece its own output.

    The CA is the one it issues (name-constrained), the config is the ConfigMap it renders
    (the CA mount path re-rooted to this test's directory), the app's bundle is written by
    `llmcache-trust-bundle` (the init container's command) with the test's "public" CA as
    system roots, and the nat rules are the redirect init container's script, run twice as
    after a pod restart.
    """
    cache = spec.parse(
        {"mode": "transparent", "interception": "iptables", "providers": ["openai", "anthropic"]},
        name="netns",
        namespace="apps",
    )
    ca = interception_ca.step(None, cache.settings.transparent.hosts, [], datetime.datetime.now(datetime.UTC),
                              namespace="apps")  # fmt: skip
    ca_dir, trust_dir = tmp_path / "ca", tmp_path / "trust"
    ca_dir.mkdir()
    for name, content in (
        ("tls.crt", ca.state.signing.cert_pem),
        ("tls.key", ca.state.signing.key_pem),
        ("trust.crt", ca.state.trust_pem()),
    ):
        (ca_dir / name).write_bytes(content)
    bundle_cmd = Path(sys.executable).with_name("llmcache-trust-bundle")
    sh(str(bundle_cmd), "--trust", str(ca_dir / "trust.crt"), "--out", str(trust_dir), "--system", str(pki.public_file))
    config = reconcile.render(cache, uid="netns", intercepted=ca.intercepted).text.replace(spec.CA_DIR, str(ca_dir))
    uid = injection.Policy().sidecar_uid  # the UID the webhook gives the sidecar, which the rule exempts
    script = interception.iptables_script(port=spec.IPTABLES_PORT, sidecar_uid=uid, cluster_cidrs=["10.96.0.0/12"])

    def redirect(app_ns: str) -> None:
        env = {**os.environ, "KUBERNETES_SERVICE_HOST": "10.96.0.1"}  # as the kubelet sets it
        for _ in range(2):
            sh("ip", "netns", "exec", app_ns, "sh", "-c", script, env=env)
        rules = sh("ip", "netns", "exec", app_ns, "iptables", "-t", "nat", "-S")
        assert rules.count("-j LLMCACHE_OUTPUT") == 1, rules  # idempotent: one jump, one set of rules
        assert rules.count("REDIRECT --to-ports 15001") == 1, rules
        assert "-A LLMCACHE_OUTPUT -d 10.96.0.1/32 -j RETURN" in rules  # the API server is left alone

    return Setup(config, uid, trust_dir / "ca-bundle.crt", interception_ca.ORGANIZATION, redirect)


@pytest.mark.parametrize("make_setup", [hand_written_setup, operator_setup], ids=["documented-rule", "operator"])
def test_iptables_redirect_sends_the_apps_llm_calls_through_the_sidecar_and_tunnels_the_rest(
    namespaces: tuple[str, str], pki: Pki, tmp_path: Path, make_setup: Callable[[Pki, Path], Setup]
) -> None:
    app_ns, prov_ns = namespaces
    for name, hosts in (("api", ("api.openai.com", "api.anthropic.com")), ("origin", ("origin.test",))):
        leaf = pki.public_ca.issue_cert(*hosts)
        leaf.cert_chain_pems[0].write_to_path(str(tmp_path / f"{name}.crt"))
        leaf.private_key_pem.write_to_path(str(tmp_path / f"{name}.key"))
    setup = make_setup(pki, tmp_path)
    config_file = tmp_path / "sidecar.yaml"
    config_file.write_text(setup.config)
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "HOME": "/nonexistent"}
    setup.redirect(app_ns)

    provider = Background(
        ["ip", "netns", "exec", prov_ns, sys.executable, "-c", PROVIDER, str(tmp_path)], base_env, "providers ready"
    )
    sidecar = Background(
        [*as_user(app_ns, setup.sidecar_uid), sys.executable, "-m", "llmcache_sidecar.cli", "--config",
         str(config_file)],
        base_env | {"SSL_CERT_FILE": str(pki.public_file)},  # the sidecar trusts the "public" CA, as real roots
        "data on",
    )  # fmt: skip
    try:
        provider.wait_ready()
        sidecar.wait_ready()
        app_env = base_env | {"SSL_CERT_FILE": str(setup.app_bundle)}
        app = json.loads(sh(*as_user(app_ns, APP_UID), sys.executable, "-c", APP, timeout=60, env=app_env))
        # The sidecar's own UID is not redirected: it reaches the provider itself.
        direct_env = app_env | {"ONLY_CALLS": "1"}
        direct = json.loads(
            sh(*as_user(app_ns, setup.sidecar_uid), sys.executable, "-c", APP, timeout=60, env=direct_env)
        )
    except Exception:
        print("sidecar output:\n" + "".join(sidecar.lines))
        print("provider output:\n" + "".join(provider.lines))
        raise
    finally:
        sidecar.stop()
        provider.stop()

    public_org = _organization(pki.public_ca)
    assert app["uid"] == APP_UID
    (first_status, first_id), (second_status, second_id) = app["chat"]
    assert first_status == "llmcache; fwd=miss; stored"
    assert second_status == "llmcache; hit"
    assert second_id == first_id
    # Another host on 443: redirected too, but tunnelled to its original address, never decrypted.
    assert app["origin"] == {"issuer": public_org, "body": "hello from the origin", "cache": None}
    # Through the sidecar the app sees our certificate; the provider had one chat call.
    assert app["calls"]["issuer"] == setup.intercept_org
    assert json.loads(app["calls"]["body"]) == {"calls": 1}
    assert direct["uid"] == setup.sidecar_uid
    assert direct["calls"]["issuer"] == public_org
    assert any("redirect port listening" in line for line in sidecar.lines)


def _organization(ca: trustme.CA) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    return str(cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value)
