"""Every setting with its variable, type, default and meaning, from the Settings class and
:data:`streams.settings.MEANINGS` (a test keeps the two in step): ``interest-stream
settings``.

    for row in settings_reference():
        row.variable, row.type, row.default, row.meaning
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from pydantic import SecretStr

from streams.settings import MEANINGS, Settings


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
