"""Parked events: an event whose item the catalogue does not have yet waits for it.

    headers = park_headers(rec, parked_at, retry_at)   # a copy for the parked topic
    rec = unparked(message_record)                     # back to its own kind, to fold again
    parked_at(rec)                                     # when it was first parked (None: never)

The events agent looks an unknown item up twice (``INTEREST_ITEM_WAIT_MS`` apart); an event
whose item is still missing is not dropped: the worker writes a copy to the ``parked`` topic,
keyed and partitioned like the events (so the parked agent holds the user's state), with the
headers below, and acknowledges the original only once the broker has the copy. The parked
agent takes each parked record once its retry time has come and folds it like any event; a
record whose item is still missing is parked again, with its first parking time, until
``INTEREST_PARK_MAX_S`` has passed since then: then it goes to the dead-letter topic as
``UnknownItem``. Nothing is held in memory but the window at hand, and the dedupe of
streams/interest.py makes a record parked twice (a crash between the copy and the commit)
count once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from streams.processor import RawRecord

PREFIX = "park."
KIND = "park.kind"  # the record's own kind: clicks, views or reviews
PARKED_AT = "park.parked-at"  # when it was first parked (seconds since the epoch)
RETRY_AT = "park.retry-at"  # not to be tried again before this
SOURCE = "park.source"  # "topic/partition/offset" where it was first read


def park_headers(rec: RawRecord, parked_at: float, retry_at: float) -> list[tuple[str, bytes]]:
    """The headers of ``rec``'s copy in the parked topic: its own headers (without an
    earlier parking's), its kind, when it was first parked, when to try it next, and where
    it came from."""
    source = header(rec.headers, SOURCE) or f"{rec.topic}/{rec.partition}/{rec.offset}".encode()
    return [
        *((k, v) for k, v in rec.headers if not k.startswith(PREFIX)),
        (KIND, rec.topic_kind.encode()),
        (PARKED_AT, repr(parked_at).encode()),
        (RETRY_AT, repr(retry_at).encode()),
        (SOURCE, source),
    ]


def unparked(rec: RawRecord) -> RawRecord:
    """A record read from the parked topic, as the record of its own kind (its topic stays
    the parked topic: dead letters and offsets name where it was read)."""
    kind = header(rec.headers, KIND)
    if kind is None:
        return rec  # not written by a worker: decoded as is, and refused if it is no event
    return dataclasses.replace(rec, topic_kind=kind.decode())


def parked_at(rec: RawRecord) -> float | None:
    """When ``rec`` was first parked; None for a record never parked."""
    return _time(rec.headers, PARKED_AT)


def retry_at(rec: RawRecord) -> float | None:
    """When ``rec`` may be tried again; None for a record never parked."""
    return _time(rec.headers, RETRY_AT)


def header(headers: Sequence[tuple[str, bytes]], name: str) -> bytes | None:
    """The last value of header ``name``; None without one."""
    found = None
    for key, value in headers:
        if key == name:
            found = value
    return found


def _time(headers: Sequence[tuple[str, bytes]], name: str) -> float | None:
    value = header(headers, name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # a hand-made header: taken as never parked, so parked from now on
