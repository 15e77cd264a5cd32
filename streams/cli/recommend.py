"""``interest-stream recommend USER``: what a downstream service would get."""

from __future__ import annotations

import argparse
import sys
import unicodedata
from typing import Any

from streams.cli.common import JSON_HELP, positive_int, print_json


def add_parsers(sub: Any) -> None:
    rec = sub.add_parser("recommend", help="the nearest items for a user (through the aliases)")
    rec.add_argument("user_id", help="the user, as producers key the events")
    rec.add_argument(
        "-k", type=positive_int, default=10, help="how many items (default: %(default)s)"
    )
    rec.add_argument("--json", action="store_true", help=JSON_HELP)
    rec.set_defaults(func=cmd_recommend)


def cmd_recommend(args: argparse.Namespace) -> int:
    from streams.settings import load_settings
    from streams.store import concepts_of, recent_items, store_for

    store = store_for(load_settings())
    try:
        user = store.user(args.user_id)
        if user is None:
            print(f"interest-stream: error: no user {args.user_id!r} in Qdrant", file=sys.stderr)
            return 2
        seen = recent_items(user.payload)
        points = store.recommend(args.user_id, k=args.k, exclude=seen)
    finally:
        store.close()
    rows = [
        {
            "item_id": p.payload["item_id"],
            "score": round(p.score, 4),
            "text": p.payload.get("text", ""),
        }
        for p in points
    ]
    if args.json:
        print_json(
            {
                "user_id": args.user_id,
                "concepts": [{"label": c, "p": p} for c, p in concepts_of(user.payload)],
                "items": rows,
            }
        )
    else:
        concepts = ", ".join(f"{c} {p:.2f}" for c, p in concepts_of(user.payload))
        user_id = printable(args.user_id)
        print(f"user {user_id} ({user.payload['event_count']} events; {concepts})")
        for r in rows:
            print(f"  {r['score']:.3f}  {printable(r['item_id']):>7}  {printable(r['text'])}")
    return 0


def printable(text: str) -> str:
    """Producers' text for a terminal: control and format characters (an escape sequence
    that would recolour or clear the screen, a newline) shown escaped, as ``\\x1b``."""
    return "".join(
        c if unicodedata.category(c) not in ("Cc", "Cf") else ascii(c)[1:-1] for c in text
    )
