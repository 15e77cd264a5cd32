"""The gap guard, record by record (no broker)."""

from __future__ import annotations

from streams.gaps import GapGuard, Verdict

TP = ("clicks", 0)


def take_all(guard: GapGuard, offsets, committed=None):
    return [guard.check(TP, o, committed).take for o in offsets]


def test_contiguous_records_are_taken() -> None:
    guard = GapGuard()
    assert take_all(guard, [5, 6, 7], committed=5) == [True, True, True]
    assert guard.holes == 0


def test_a_hole_asks_for_a_re_read_and_leaves_records_out_until_it_comes() -> None:
    guard = GapGuard()
    assert take_all(guard, [10, 11], committed=10) == [True, True]
    assert guard.check(TP, 14, 10) == Verdict(False, seek_to=12)  # 12 and 13 went missing
    assert guard.check(TP, 15, 10) == Verdict(False)  # fetched before the seek: left out
    assert take_all(guard, [12, 13, 14, 15], committed=10) == [True] * 4  # the re-read
    assert guard.holes == 1


def test_the_first_record_after_a_restart_is_checked_against_the_committed_offset() -> None:
    guard = GapGuard()
    assert guard.check(TP, 103, committed=100) == Verdict(False, seek_to=100)
    assert guard.check(TP, 100, committed=100).take


def test_records_the_group_already_committed_are_no_hole() -> None:
    guard = GapGuard()
    assert take_all(guard, [1, 2], committed=1) == [True, True]
    # the partition went to another worker and came back: the group committed up to 50
    assert guard.check(TP, 50, committed=50).take
    assert guard.holes == 0


def test_a_hole_that_survives_its_re_read_is_accepted() -> None:
    guard = GapGuard()
    guard.check(TP, 0, 0)
    assert guard.check(TP, 5, 0).seek_to == 1
    assert guard.check(TP, 5, 0).take  # a real hole (e.g. transaction markers): 1-4 absent
    assert guard.check(TP, 9, 0).seek_to == 6  # a new hole is retried once, too


def test_a_wait_ends_when_the_group_commits_past_the_hole() -> None:
    guard = GapGuard()
    guard.check(TP, 0, 0)
    assert guard.check(TP, 8, 0).seek_to == 1
    assert guard.check(TP, 20, committed=20).take  # another worker handled 1-19


def test_partitions_are_independent() -> None:
    guard = GapGuard()
    assert guard.check(("clicks", 0), 0, 0).take
    assert guard.check(("clicks", 1), 0, 0).take
    assert guard.check(("clicks", 1), 3, 0).seek_to == 1
    assert guard.check(("clicks", 0), 1, 0).take
