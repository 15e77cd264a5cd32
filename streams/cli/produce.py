"""``interest-stream replay`` and ``forget``: records into the topics."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from streams.cli.common import JSON_HELP, positive_int, print_json


def add_parsers(sub: Any) -> None:
    replay = sub.add_parser("replay", help="publish a dataset as events (MovieLens)")
    replay.add_argument(
        "--dataset", choices=["movielens"], default="movielens", help="the dataset --path holds"
    )
    replay.add_argument("--path", type=Path, required=True, help="the dataset folder")
    replay.add_argument("--rate", default="max", help="events per second, or 'max'")
    replay.add_argument("--limit", type=positive_int, default=None, help="first N events only")
    replay.add_argument(
        "--wait-items",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after the items, wait up to SECONDS for the worker's consumer group to take "
        "them before sending events (else early events may find their items unknown)",
    )
    replay.add_argument(
        "--feedback",
        action="store_true",
        help="also send feedback derived from the ratings: positive from 4, negative up to 2, "
        "one second after each rating",
    )
    replay.add_argument("--json", action="store_true", help=JSON_HELP)
    replay.set_defaults(func=cmd_replay)

    forget = sub.add_parser(
        "forget",
        help="ask the workers to forget a user: vector, state, history (README: Forgetting)",
    )
    forget.add_argument("user_id", help="the user to forget (every event up to now)")
    forget.add_argument(
        "--at", type=float, default=None, help="forget events up to this time (default: now)"
    )
    forget.set_defaults(func=cmd_forget)


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.datasets.replay import replay_movielens
    from streams.errors import StreamError
    from streams.kafka.topics import ensure_topics
    from streams.settings import load_settings

    try:
        rate = None if args.rate == "max" else float(args.rate)
    except ValueError:
        rate = -1.0
    if rate is not None and not 0 < rate < math.inf:
        raise StreamError(f"--rate must be a positive number or 'max', not {args.rate!r}")
    if not 0 <= args.wait_items < math.inf:
        raise StreamError(f"--wait-items must be a number of seconds >= 0, not {args.wait_items}")
    settings = load_settings()
    ensure_topics(settings)
    stats = replay_movielens(
        args.path,
        settings,
        rate=rate,
        limit=args.limit,
        wait_items=args.wait_items,
        feedback=args.feedback,
    )
    if args.json:
        print_json(stats)
    else:
        for part, s in stats.items():
            print(
                f"{part:<7} {s['records']} records in {s['seconds']} s "
                f"({s['records_per_s']}/s) {s['by_topic']}"
            )
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from streams.datasets.replay import Record, publish
    from streams.errors import StreamError
    from streams.kafka.topics import ensure_topics
    from streams.settings import load_settings

    user = args.user_id.strip()
    if not user:
        raise StreamError("the user id is empty")
    at = time.time() if args.at is None else args.at
    settings = load_settings()
    if not (math.isfinite(at) and settings.min_ts <= at <= time.time() + settings.max_future_s):
        raise StreamError(f"--at must be a time in epoch seconds, up to now; not {args.at}")
    ensure_topics(settings)
    record = Record("forget", user, {"type": "forget", "user_id": user, "ts": at}, at)
    asyncio.run(publish([record], settings, None, progress=False))
    print(f"asked to forget user {user!r} up to {at:.0f} (topic {settings.topic('forget')})")
    return 0
