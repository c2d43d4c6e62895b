"""The sidecar's aiohttp applications and their lifecycle: the data port, the admin port
(health, stats, flush, metrics), the optional metrics-only port, and the reload of the
mounted config file.
"""

from llmcache_sidecar.server.app import make_admin_app, make_app, make_metrics_app

__all__ = ["make_admin_app", "make_app", "make_metrics_app"]
