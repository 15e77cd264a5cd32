"""``interest-stream switch``, ``rollout`` and ``drop``: moving the aliases between versions."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from streams.cli.common import JSON_HELP, print_figures, print_json


def add_parsers(sub: Any) -> None:
    sw = sub.add_parser(
        "switch",
        help="point the items and users aliases at a model version at once (roll-out, roll-back)",
    )
    sw.add_argument("version", help="a version whose items__ and users__ collections exist")
    sw.add_argument(
        "--drop-old-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="after a grace period, drop the collections of the version served before "
        "(unless the aliases moved back to it meanwhile)",
    )
    sw.add_argument("--json", action="store_true", help=JSON_HELP)
    sw.set_defaults(func=cmd_switch)

    ro = sub.add_parser(
        "rollout",
        help="follow a new version's backfill (its worker's consumer group) and switch to it "
        "once it has caught up",
    )
    ro.add_argument("version", help="the version a worker with its own consumer group builds")
    ro.add_argument(
        "--group",
        default=None,
        help="that worker's consumer group (default: INTEREST_CONSUMER_GROUP-VERSION)",
    )
    ro.add_argument(
        "--max-lag",
        type=int,
        default=0,
        help="records the group may still have to read and count as caught up (default: 0)",
    )
    ro.add_argument(
        "--timeout", type=float, default=86_400.0, help="seconds to wait (default: a day)"
    )
    ro.add_argument("--switch", action="store_true", help="then point the aliases at the version")
    ro.add_argument(
        "--drop-old-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --switch: drop the version served before after a grace period",
    )
    ro.add_argument("--json", action="store_true", help=JSON_HELP)
    ro.set_defaults(func=cmd_rollout)

    drop = sub.add_parser(
        "drop", help="delete the collections of a model version no alias serves (after a roll-out)"
    )
    drop.add_argument("version", help="the model version whose collections to delete")
    drop.add_argument(
        "--dry-run", action="store_true", help="say what would be deleted, delete nothing"
    )
    drop.add_argument(
        "--yes", action="store_true", help="do not ask (needed where stdin is not a terminal)"
    )
    drop.add_argument("--json", action="store_true", help=JSON_HELP)
    drop.set_defaults(func=cmd_drop)


def _switch(settings: Any, version: str, grace_s: float | None) -> tuple[str | None, list[str]]:
    from streams.rollout.switch import switch_to
    from streams.store import store_for

    store = store_for(settings)
    try:
        return switch_to(store, version, grace_s)
    finally:
        store.close()


def cmd_switch(args: argparse.Namespace) -> int:
    from streams.settings import load_settings

    before, dropped = _switch(load_settings(), args.version, args.drop_old_after)
    if args.json:
        print_json({"before": before, "serving": args.version, "dropped": dropped})
    elif dropped:
        print(f"dropped {', '.join(dropped)}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from streams.errors import StreamError
    from streams.rollout.watch import backfill_group, watch_backfill
    from streams.settings import load_settings

    if not 0 < args.timeout < math.inf:
        raise StreamError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    if args.max_lag < 0:
        raise StreamError(f"--max-lag must be >= 0, not {args.max_lag}")
    if args.drop_old_after is not None and not args.switch:
        raise StreamError("--drop-old-after goes with --switch")
    settings = load_settings()
    group = args.group or backfill_group(settings, args.version)
    result = watch_backfill(settings, group, timeout=args.timeout, max_lag=args.max_lag)
    result |= {"version": args.version, "switched": False, "before": None, "dropped": []}
    if args.switch:
        before, dropped = _switch(settings, args.version, args.drop_old_after)
        result |= {"switched": True, "before": before, "dropped": dropped}
    if args.json:
        print_json(result)
    else:
        print_figures(result, False)
    return 0


def cmd_drop(args: argparse.Namespace) -> int:
    from streams.errors import StreamError
    from streams.settings import load_settings
    from streams.store import ITEMS, USERS, collection, store_for

    store = store_for(load_settings())
    try:
        if args.version == store.serving():
            raise StreamError(f"version {args.version} is served by the aliases: switch first")
        names = [collection(k, args.version) for k in (ITEMS, USERS)]
        found = {n: store.count(n) for n in names if n in store.collections()}
        what = ", ".join(f"{n} ({c:,} points)" for n, c in found.items())
        if args.dry_run or not found:
            dropped: list[str] = []
        elif args.yes or _confirm(f"delete {what}? [y/N] "):
            dropped = store.drop(args.version)
        else:
            raise StreamError(
                f"drop would delete {what}: add --yes to confirm (--dry-run to see only)"
            )
    finally:
        store.close()
    if args.json:
        print_json({"dropped": dropped, "would_drop": list(found) if args.dry_run else []})
    elif args.dry_run:
        print(f"would drop {what or 'nothing (no such collections)'}")
    else:
        print(f"dropped {', '.join(dropped) or 'nothing (no such collections)'}")
    return 0


def _confirm(question: str) -> bool:
    """Ask on a terminal; False where stdin is not one (a script must say --yes)."""
    if not sys.stdin.isatty():
        return False
    return input(question).strip().lower() in ("y", "yes")
