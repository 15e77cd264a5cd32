"""The gap guard, record by record (no broker)."""

from __future__ import annotations

from streams.worker.gaps import REASK_AFTER_S, GapGuard, Verdict

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


def test_a_hole_at_the_end_of_a_partition_is_found_once_the_agent_idles(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("streams.worker.gaps.time.monotonic", lambda: clock[0])
    guard = GapGuard()
    assert take_all(guard, [0, 1, 2], committed=0) == [True] * 3
    assert guard.stalled(TP, end=3, committed=0, idle_s=10) is None  # all taken
    assert guard.stalled(TP, end=5, committed=0, idle_s=10) is None  # 3, 4 may be on the way
    clock[0] += 11
    assert guard.stalled(TP, end=5, committed=0, idle_s=10) == 3  # lost on the way: re-read
    assert guard.stalled(TP, end=5, committed=0, idle_s=10) is None  # asked once
    assert take_all(guard, [3, 4], committed=0) == [True, True]
    assert guard.holes == 1


def test_a_partition_never_seen_is_checked_from_the_committed_offset(monkeypatch) -> None:
    clock = [0.0]
    monkeypatch.setattr("streams.worker.gaps.time.monotonic", lambda: clock[0])
    guard = GapGuard()
    clock[0] = 30.0
    assert guard.stalled(TP, end=7, committed=7, idle_s=10) is None  # nothing to read
    assert guard.stalled(TP, end=9, committed=7, idle_s=10) == 7
    assert guard.check(TP, 7, 7).take


def test_a_re_read_that_starts_beyond_its_hole_is_asked_again_not_awaited_forever(
    monkeypatch,
) -> None:
    # The end of the log was 5 but offsets 3 and 4 hold no record (transaction markers, or
    # compacted away): the re-read from 3 brings 5 first, which looks like a record fetched
    # before the seek. Waiting for offsets to step back would leave every later record out.
    clock = [100.0]
    monkeypatch.setattr("streams.worker.gaps.time.monotonic", lambda: clock[0])
    guard = GapGuard()
    assert take_all(guard, [0, 1, 2], committed=0) == [True] * 3
    clock[0] += 11
    assert guard.stalled(TP, end=5, committed=0, idle_s=10) == 3
    assert guard.check(TP, 5, 0) == Verdict(False)  # maybe fetched before the seek
    assert guard.check(TP, 6, 0) == Verdict(False)
    clock[0] += REASK_AFTER_S + 1
    assert guard.check(TP, 7, 0) == Verdict(False, seek_to=3)  # asked again, once
    assert guard.check(TP, 8, 0) == Verdict(False)
    assert take_all(guard, [5, 6, 7, 8, 9], committed=0) == [True] * 5  # offsets stepped back
    assert guard.holes == 1 and guard.reasked == 1


def test_a_hole_is_asked_again_at_most_once_per_interval(monkeypatch) -> None:
    clock = [0.0]
    monkeypatch.setattr("streams.worker.gaps.time.monotonic", lambda: clock[0])
    guard = GapGuard()
    guard.check(TP, 0, 0)
    assert guard.check(TP, 5, 0).seek_to == 1
    seeks = []
    for offset in range(6, 60):
        clock[0] += 1.0
        seeks.append(guard.check(TP, offset, 0).seek_to)
    asked = [s for s in seeks if s is not None]
    assert asked and set(asked) == {1}
    assert len(asked) <= 54 / REASK_AFTER_S + 1
