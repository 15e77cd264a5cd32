"""``interest-stream worker`` and ``health``: the Faust agents and their healthcheck."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    worker = sub.add_parser(
        "worker",
        help="run the Faust agents (settings from INTEREST_*)",
        description="Runs the Faust agents. Every setting is an INTEREST_* environment "
        "variable (or a line of .env): `interest-stream settings` lists each with its type, "
        "default and meaning; `interest-stream settings --current` shows the values in effect.",
    )
    worker.add_argument(
        "--loglevel",
        choices=["debug", "info", "warning", "error"],
        help="default: INTEREST_LOG_LEVEL (info)",
    )
    worker.set_defaults(func=cmd_worker)

    health = sub.add_parser(
        "health", help="exit 0 if the worker's metrics endpoint says it is ready (healthcheck)"
    )
    health.add_argument("--url", help="default: http://<metrics_host>:<metrics_port>/metrics")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    health.set_defaults(func=cmd_health)


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.settings import load_settings
    from streams.worker.main import run_worker

    run_worker(load_settings(), args.loglevel)
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    import urllib.request

    from streams.settings import load_settings

    url = args.url
    if url is None:
        settings = load_settings()
        if not settings.metrics_port:
            print("unhealthy: metrics are off (INTEREST_METRICS_PORT=0)", file=sys.stderr)
            return 1
        host = "127.0.0.1" if settings.metrics_host in ("0.0.0.0", "::") else settings.metrics_host
        url = f"http://{host}:{settings.metrics_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            body = response.read().decode()
    except OSError as exc:
        print(f"unhealthy: no worker answers at {url} ({exc})", file=sys.stderr)
        return 1
    if "\ninterest_worker_ready 1.0" not in body:
        print(f"unhealthy: the worker at {url} is not ready yet (model, Qdrant)", file=sys.stderr)
        return 1
    print(f"healthy: {url}")
    return 0
