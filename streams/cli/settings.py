"""``interest-stream settings``: every ``INTEREST_*`` setting with its type, default and
meaning, from the Settings class and :data:`streams.settings.MEANINGS` (a test keeps the two
in step), and the values in effect with ``--current``.

    for row in settings_reference():
        row.variable, row.type, row.default, row.meaning
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
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


@dataclasses.dataclass(frozen=True)
class SettingRow:
    variable: str
    type: str
    default: str
    meaning: str


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    return str(getattr(annotation, "__name__", annotation))


def settings_reference() -> list[SettingRow]:
    from pydantic import SecretStr

    from streams.settings import MEANINGS, Settings

    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "" if default is None else str(default)
        if isinstance(default, SecretStr):
            shown = "(secret)"
        rows.append(
            SettingRow(
                variable=f"INTEREST_{name.upper()}",
                type=_type_name(field.annotation),
                default=shown,
                meaning=MEANINGS[name],
            )
        )
    return rows


def render(rows: list[SettingRow]) -> str:
    """A plain-text reference: the variable, its type and default, its meaning below."""
    out = []
    for row in rows:
        default = f" (default: {row.default})" if row.default != "" else ""
        out.append(f"{row.variable}: {row.type}{default}\n    {row.meaning}")
    return "\n".join(out) + "\n"
