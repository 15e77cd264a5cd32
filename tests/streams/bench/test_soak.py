"""bench soak's option checks and its memory reading, without a broker."""

from __future__ import annotations

import pytest

from streams.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "soak", "--minutes", "0"], "--minutes must be a positive number"),
        (["bench", "soak", "--rate", "nan"], "--rate must be a positive number"),
        (["bench", "soak", "--minutes", "1", "--sample-s", "120"], "--sample-s must be shorter"),
    ],
)
def test_soak_refuses_bad_options_before_starting(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_resident_memory_is_read_from_proc() -> None:
    import os

    from streams.bench.soak import resident_mb

    assert 10 < resident_mb(os.getpid()) < 100_000


def test_cpu_time_is_read_from_proc_and_grows_with_work() -> None:
    import os

    from streams.bench.soak import cpu_seconds

    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(3_000_000))  # some CPU work in this process
    assert cpu_seconds(os.getpid()) > before >= 0


def test_the_summary_reads_memory_at_the_first_half_s_last_sample_and_the_last() -> None:
    from streams.bench.soak import summarize

    samples = [
        {"s": 10.0 * i, "sent": 100 * i, "rss_mb": rss, "lag": lag}
        for i, (rss, lag) in enumerate([(300, 5), (400, 9), (420, 3), (430, 4), (441, 7), (462, 2)])
    ]
    result = summarize(samples, minutes=1.0, rate=100.0, sent=600)
    assert result["rss_mb"] == {"first": 300, "first_half_last": 420, "last": 462, "max": 462}
    assert result["rss_change_second_half"] == 0.1  # 462 / 420 - 1
    assert result["lag"] == {"first": 5, "last": 2, "max": 9}
    assert result["events_per_s"] == 10.0


def test_a_soak_without_samples_is_an_error_not_a_crash_in_the_summary() -> None:
    from streams.bench.soak import summarize

    with pytest.raises(ValueError, match="no sample"):
        summarize([], minutes=1.0, rate=100.0, sent=0)


def test_one_threads_cpu_time_grows_with_its_own_work_only() -> None:
    import os
    import threading

    from streams.bench.soak import cpu_seconds

    idle = threading.Event()
    sleeper = threading.Thread(target=idle.wait, args=(10,))
    sleeper.start()
    try:
        assert sleeper.native_id is not None
        mine, theirs = threading.get_native_id(), sleeper.native_id
        before = cpu_seconds(os.getpid(), mine), cpu_seconds(os.getpid(), theirs)
        sum(i * i for i in range(3_000_000))  # CPU work in this thread alone
        assert cpu_seconds(os.getpid(), mine) > before[0]
        assert cpu_seconds(os.getpid(), theirs) == before[1]
    finally:
        idle.set()
        sleeper.join()
