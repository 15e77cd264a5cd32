"""Faust's offset commits, corrected (streams/worker/commits.py), on Faust's own consumer
bookkeeping: the acknowledged offsets, the gaps and the committed offset of a partition."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer
from intervaltree import IntervalTree

from streams.worker import commits

TP = ("clicks", 0)


@pytest.fixture(autouse=True)
def corrected() -> None:
    commits.install()


def bookkeeping(committed: int, acked: list[int]) -> SimpleNamespace:
    """The fields of a Faust consumer that its commit offsets are computed from."""
    return SimpleNamespace(
        _acked=defaultdict(list, {TP: list(acked)}),
        _acked_index=defaultdict(set, {TP: set(acked)}),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None, {TP: committed}),
    )


def add_gap(consumer: SimpleNamespace, offset_from: int, offset_to: int) -> None:
    asyncio.run(Consumer._add_gap(consumer, TP, offset_from, offset_to))  # type: ignore[arg-type]


def new_offset(consumer: SimpleNamespace) -> int | None:
    return Consumer._new_offset(consumer, TP)  # type: ignore[arg-type]


def test_a_restart_s_stale_records_do_not_make_the_commits_creep() -> None:
    """After a restart: 10..15 fetched and acknowledged, then Faust's seek to the committed
    offset 10 puts the read offset back to 10, and a record fetched before the seek (16)
    arrives: Faust sees a gap 11..16 over records already acknowledged. Uncorrected, the
    duplicates split the run and each commit advances one offset (11, then 12, ...)."""
    consumer = bookkeeping(committed=10, acked=[10, 11, 12, 13, 14, 15])
    add_gap(consumer, 11, 16)
    assert new_offset(consumer) == 16
    assert consumer._acked[TP] == []


def test_a_gap_does_not_count_the_record_that_revealed_it_as_done() -> None:
    """Records 5, then 9 (6..8 compacted away): 9 is in flight, so the commit stops at it."""
    consumer = bookkeeping(committed=5, acked=[5])
    add_gap(consumer, 6, 9)
    assert sorted((i.begin, i.end) for i in consumer._gap[TP]) == [(6, 9)]  # 6, 7, 8
    assert new_offset(consumer) == 6
    consumer._acked[TP].append(9)  # 9 processed
    assert new_offset(consumer) == 10  # over the compacted hole


def test_duplicates_already_in_the_list_are_committed_in_one_go() -> None:
    consumer = bookkeeping(committed=5, acked=[5, 5, 6, 6, 7, 7])
    assert new_offset(consumer) == 8


def test_a_record_in_flight_at_the_head_still_holds_the_commit() -> None:
    consumer = bookkeeping(committed=5, acked=[7, 8, 9])  # 5 and 6 not done yet
    assert new_offset(consumer) is None
    assert new_offset(bookkeeping(committed=5, acked=[])) is None


def test_installing_twice_keeps_one_correction() -> None:
    commits.install()
    consumer = bookkeeping(committed=5, acked=[5])
    add_gap(consumer, 6, 9)
    assert sorted((i.begin, i.end) for i in consumer._gap[TP]) == [(6, 9)]
