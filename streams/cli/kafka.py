"""``interest-stream kafka start|stop|status`` and ``topics``: the broker and the topics."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from streams.cli.common import JSON_HELP, print_json, tcp_port


def add_parsers(sub: Any) -> None:
    kafka = sub.add_parser("kafka", help="the local single-node Kafka broker (KRaft)")
    kafka.add_argument(
        "action",
        choices=["start", "stop", "status"],
        help="start and stop are idempotent; status exits 0 when running, 1 when not",
    )
    kafka.add_argument(
        "--home",
        type=Path,
        default=Path(".cache/kafka"),
        help="jars, storage and log (default: %(default)s)",
    )
    kafka.add_argument("--port", type=tcp_port, default=9092, help="(default: %(default)s)")
    kafka.add_argument("--json", action="store_true", help=JSON_HELP)
    kafka.set_defaults(func=cmd_kafka)
    topics = sub.add_parser("topics", help="create the topics the settings name (idempotent)")
    topics.add_argument("--json", action="store_true", help=JSON_HELP)
    topics.set_defaults(func=cmd_topics)


def cmd_kafka(args: argparse.Namespace) -> int:
    from streams.kafka.broker import LocalBroker

    broker = LocalBroker(args.home, port=args.port)
    if args.action == "start":
        print(f"starting Kafka on {broker.bootstrap} (log: {broker.log})", file=sys.stderr)
    state = getattr(broker, args.action)()
    if args.json:
        print_json(state)
    elif state["running"]:
        print(f"kafka running on {state['bootstrap']} (pid {state['pid']}, log {state['log']})")
    else:
        print(f"kafka stopped on {state['bootstrap']} (log {state['log']})")
    # `status` answers like a service manager's: 0 running, 1 not (scripts can test it).
    return 1 if args.action == "status" and not state["running"] else 0


def cmd_topics(args: argparse.Namespace) -> int:
    from streams.kafka.topics import TOPICS, ensure_topics
    from streams.settings import load_settings

    settings = load_settings()
    created = ensure_topics(settings)
    names = [settings.topic(t) for t in TOPICS]
    if args.json:
        print_json({"topics": names, "created": created})
    else:
        print(f"topics {', '.join(names)}; created {', '.join(created) or 'none'}")
    return 0
