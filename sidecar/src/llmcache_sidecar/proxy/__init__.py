"""The data path: a request classified, the policy's decision and its controls read, its key
made, the cache asked, and on a miss one shared upstream flight whose answer is stored (or,
replaying, a 504: `recording`).

Both modes end in `serve`: reverse proxy (`handle`, `/<provider>/...`) and transparent
interception (`intercept`). `runtime` holds what a request reads (`State`, `Runtime`,
`Route`); `coalesce`, `upstream` and `streaming` are the flight, the upstream call and
the recording of a stream.
"""

from llmcache_sidecar.proxy.handler import handle, route_tail, serve
from llmcache_sidecar.proxy.runtime import STATE, Route, Runtime, State, build_runtime

__all__ = ["STATE", "Route", "Runtime", "State", "build_runtime", "handle", "route_tail", "serve"]
