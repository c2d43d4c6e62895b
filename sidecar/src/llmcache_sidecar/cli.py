"""`llmcache-sidecar --config FILE`: load settings, set up logging, serve both ports."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from llmcache_sidecar import __version__, config
from llmcache_sidecar.intercept import front
from llmcache_sidecar.proxy import STATE
from llmcache_sidecar.server import make_admin_app, make_app, make_metrics_app
from llmcache_sidecar.telemetry import logs, otel

logger = logging.getLogger("llmcache_sidecar")


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


async def serve(
    settings: config.Settings,
    config_path: Path | None,
    *,
    ready: asyncio.Event | None = None,
    caching: bool = True,
) -> None:
    """Run the data and admin ports until SIGTERM or SIGINT; `caching=False` while the config file is missing."""
    handles = otel.setup(settings.telemetry)
    app = make_app(settings, config_path=config_path, caching=caching)
    admin = make_admin_app(app[STATE], metrics=handles.registry)
    runners = [
        web.AppRunner(app, access_log=None, shutdown_timeout=5.0),
        web.AppRunner(admin, access_log=None, shutdown_timeout=5.0),
    ]
    addresses = [settings.listen, settings.admin]
    if settings.telemetry.metrics_listen and handles.registry is not None:
        runners.append(web.AppRunner(make_metrics_app(handles.registry), access_log=None))
        addresses.append(settings.telemetry.metrics_listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for runner, address in zip(runners, addresses, strict=True):
            await runner.setup()
            host, port = _split(address)
            # The data port is also a forward proxy in transparent mode (CONNECT needs its own front).
            site = front.DataSite if runner is runners[0] and settings.transparent.enabled else web.TCPSite
            await site(runner, host, port, reuse_address=True).start()
        logger.info(
            "llmcache-sidecar %s: data on %s, admin on %s, backend %s",
            __version__,
            settings.listen,
            settings.admin,
            settings.backend.type,
        )
        # What start-up made lives as long as the process: out of the collector's sight, so that
        # the full collections that per-request garbage triggers stay short (docs/benchmarks.md).
        gc.collect()
        gc.freeze()
        if ready is not None:
            ready.set()
        await stop.wait()
        logger.info("shutting down")
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        handles.shutdown()


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmcache-sidecar", description="Cache proxy for LLM APIs.")
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("LLMCACHE_CONFIG"),
        help="YAML config file (default: $LLMCACHE_CONFIG, else built-in defaults)",
    )
    parser.add_argument(
        "--fallback-config",
        metavar="YAML",
        help="settings (YAML or JSON text) to serve with, uncached, while the --config file does not exist;"
        " the file is loaded when it appears. Without this, a missing file is an error",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("LLMCACHE_LOG_LEVEL", "INFO"),
        help=f"{', '.join(LOG_LEVELS)} (default: $LLMCACHE_LOG_LEVEL, else INFO)",
    )
    parser.add_argument("--version", action="version", version=__version__)
    args = parser.parse_args(argv)
    if args.log_level.upper() not in LOG_LEVELS:
        parser.error(
            f"--log-level (or $LLMCACHE_LOG_LEVEL): expected one of {', '.join(LOG_LEVELS)}, got {args.log_level!r}"
        )
    if args.fallback_config is not None and args.config is None:
        parser.error("--fallback-config needs --config (the file to wait for)")
    found = args.fallback_config is None or args.config.exists()
    try:
        settings = config.load(args.config) if found else config.loads(args.fallback_config, "--fallback-config")
    except config.ConfigError as exc:
        what = "configuration" if found else "--fallback-config"
        print(f"llmcache-sidecar: invalid {what}: {exc}", file=sys.stderr)
        return 2
    logs.setup(args.log_level, settings.telemetry.log_format)
    if not found:
        logger.error(
            "config file %s does not exist: serving the --fallback-config settings, every request uncached,"
            " until it appears",
            args.config,
        )
    try:
        asyncio.run(serve(settings, args.config, caching=found))
    except config.ConfigError as exc:  # found while building the backend: a missing extra (a secret file is survived)
        print(f"llmcache-sidecar: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"llmcache-sidecar: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
