"""Transparent mode: the data port as an HTTP(S) forward proxy that intercepts TLS for LLM hosts.

`service.Transparent` is the mode itself (interception, tunnels, the server of decrypted
connections, which hands each request to `proxy.serve`). Connections reach it through
`front` (the data port: CONNECT and absolute-form requests) and `redirect` (the iptables
port, which reads the TLS server name with `clienthello`). `tunnel` joins sockets byte
for byte, `target` reads where a connection goes, `certs` makes the leaf certificates
(the only module that needs the `transparent` extra's `cryptography`), and
`trust_bundle` is the init container's `llmcache-trust-bundle` command.

Nothing is imported here, so that `llmcache-trust-bundle` starts without the data path.
"""
