"""``interest-stream settings``: every ``INTEREST_*`` setting with its type, default and
meaning (streams/settings_doc.py), and the values in effect with ``--current``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from streams.cli.common import JSON_HELP, print_json


def add_parsers(sub: Any) -> None:
    st = sub.add_parser(
        "settings", help="every INTEREST_* setting: type, default and meaning (--current: values)"
    )
    st.add_argument(
        "--current",
        action="store_true",
        help="also the value each has here (environment and .env); secrets are never shown",
    )
    st.add_argument("--json", action="store_true", help=JSON_HELP)
    st.set_defaults(func=cmd_settings)


def cmd_settings(args: argparse.Namespace) -> int:
    from pydantic import SecretStr

    from streams.settings import load_settings
    from streams.settings_doc import render, settings_reference

    rows = settings_reference()
    current: dict[str, str] = {}
    if args.current:
        settings = load_settings()
        for name, value in settings.model_dump().items():
            shown = "(set)" if isinstance(value, SecretStr) else "" if value is None else str(value)
            current[f"INTEREST_{name.upper()}"] = shown
    if args.json:
        print_json(
            [
                dataclasses.asdict(r) | ({"current": current[r.variable]} if current else {})
                for r in rows
            ]
        )
        return 0
    text = render(rows)
    if current:
        lines = []
        for line in text.splitlines():
            lines.append(line)
            if line.startswith("    "):  # the meaning: the value in effect below it
                variable = lines[-2].split(":", 1)[0]
                lines.append(f"    now: {current[variable] or '(unset)'}")
        text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    return 0
