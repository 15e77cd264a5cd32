"""Reading CSV files with a header, strictly: every failure names the file and the line.

    for line, row in csv_rows(path, required=("user_id", "ts"), optional=("rating",)):
        row["user_id"], row.get("rating")      # only the named columns, always strings

A missing file (or a folder where a file belongs), a header without a required column, a
row with too few or too many fields, and bytes that are not UTF-8 raise :class:`DataError`;
:func:`number` does so for a field that is not a number. A UTF-8 byte-order mark is skipped.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

from streams.errors import StreamError


class DataError(StreamError):
    """A data file that cannot be read as its documented format."""


def csv_rows(
    path: Path,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    not_found_hint: str = "",
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row, holding the required and present optional
    columns. ``not_found_hint`` is added to the error for a missing file."""
    try:
        fh = path.open(newline="", encoding="utf-8-sig")  # a byte-order mark is skipped
    except FileNotFoundError:
        raise DataError(f"{path} not found{not_found_hint}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a CSV file{not_found_hint}") from None
    except NotADirectoryError:
        raise DataError(f"{path.parent} is a file, not a folder{not_found_hint}") from None
    with fh:
        reader = csv.DictReader(fh)
        try:
            header = reader.fieldnames or []
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}: unreadable header ({exc})") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}: missing columns {missing} (the header has {header})")
        columns = set(required) | {c for c in optional if c in header}
        try:
            for row in reader:
                if None in row or any(row[c] is None for c in columns):
                    raise DataError(
                        f"{path}:{reader.line_num}: expected {len(header)} fields, "
                        "got a different count"
                    )
                yield reader.line_num, {c: row[c] for c in columns}
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}:{reader.line_num}: {exc}") from None


def number(path: Path, line: int, column: str, text: str) -> float:
    """A finite number from a CSV field, or a :class:`DataError` naming the file and line."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"{path}:{line}: {column} must be a number, not {text!r}")
    return value
