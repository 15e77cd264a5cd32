"""Figures of the fault scenarios, for the README's reliability table (`make reliability`).

Scenario tests assert that nothing was lost or counted twice; through the ``reliability``
fixture they also record what they injected and what they measured. With
``INTEREST_RELIABILITY_REPORT=FILE`` set, each record is appended to FILE as a JSON line;
otherwise recording does nothing.

    reliability.record("kill -9 mid-stream", injected="...", events=200, lost=0,
                       duplicated=0, recovery_s=4.2)

    python -m tests.reliability FILE --readme README.md    # the table, between its markers
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import orjson

ENV = "INTEREST_RELIABILITY_REPORT"
COLUMNS = ("scenario", "injected", "events", "lost", "duplicated", "recovery")


class Recorder:
    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def record(
        self,
        scenario: str,
        *,
        injected: str,
        events: int,
        lost: int,
        duplicated: int,
        recovery_s: float | None = None,
        **extra: Any,
    ) -> None:
        if self.path is None:
            return
        row = {
            "scenario": scenario,
            "injected": injected,
            "events": events,
            "lost": lost,
            "duplicated": duplicated,
            "recovery_s": None if recovery_s is None else round(recovery_s, 1),
            **extra,
        }
        with self.path.open("ab") as fh:
            fh.write(orjson.dumps(row) + b"\n")


def recorder() -> Recorder:
    return Recorder(os.environ.get(ENV))


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | injected | events through | lost | duplicated | recovery |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        recovery = "-" if r["recovery_s"] is None else f"{r['recovery_s']:.1f} s"
        lines.append(
            f"| {r['scenario']} | {r['injected']} | {r['events']:,} | {r['lost']} | "
            f"{r['duplicated']} | {recovery} |"
        )
    return "\n".join(lines)


def main() -> None:
    from streams.evaluation.report import update_readme

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--readme", type=Path, default=None)
    parser.add_argument("--command", default="make reliability")
    args = parser.parse_args()
    rows = [orjson.loads(line) for line in args.report.read_bytes().splitlines()]
    body = f"Made by `{args.command}` (each row is a test that also asserts its zeros).\n\n"
    body += table(rows)
    print(body)
    if args.readme is not None:
        update_readme(args.readme, "reliability", body)


if __name__ == "__main__":
    main()
