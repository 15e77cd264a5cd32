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
