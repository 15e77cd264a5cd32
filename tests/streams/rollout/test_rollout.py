"""``interest-stream rollout``: following a backfill's consumer group until it catches up.
(End to end against the broker: tests/streams/test_worker.py.)"""

from __future__ import annotations

import pytest
from aiokafka.errors import GroupCoordinatorNotAvailableError, TopicAuthorizationFailedError

from streams.cli import main as cli_main
from streams.errors import StreamError
from streams.rollout.watch import backfill_group, watch_backfill
from streams.settings import Settings


def feed(*figures):
    """A progress reader that returns (or raises) each of ``figures`` in turn, then the last."""
    seq = list(figures)

    def read():
        item = seq.pop(0) if len(seq) > 1 else seq[0]
        if isinstance(item, Exception):
            raise item
        return item

    return read


def watch(read, **kw):
    kw = {"timeout": 5.0, "poll_s": 0.0, "show_bar": False} | kw
    return watch_backfill(Settings(), "g-new", progress=read, **kw)


def test_returns_once_the_group_has_caught_up_on_two_polls() -> None:
    result = watch(feed(None, (0, 10), (5, 10), (10, 10), (10, 10)))
    assert (result["committed"], result["total"], result["lag"]) == (10, 10, 0)


def test_new_records_between_polls_restart_the_count() -> None:
    polls = []

    def read():
        figures = [(10, 10), (10, 12), (12, 12), (12, 12)][min(len(polls), 3)]
        polls.append(figures)
        return figures

    assert watch(read)["total"] == 12
    assert len(polls) == 4


def test_max_lag_counts_a_small_lag_as_caught_up() -> None:
    assert watch(feed((95, 100)), max_lag=5)["lag"] == 5


def test_a_group_that_never_catches_up_times_out_with_its_figures() -> None:
    with pytest.raises(StreamError, match=r"g-new did not catch up within 0 s: 3 of 9 records"):
        watch(feed((3, 9)), timeout=0.05, poll_s=0.01)


def test_retriable_broker_errors_are_ridden_out_and_others_are_clear_errors() -> None:
    retriable = feed(GroupCoordinatorNotAvailableError(), (4, 4), (4, 4))
    assert watch(retriable)["total"] == 4
    with pytest.raises(StreamError, match="cannot read the progress of g-new"):
        watch(feed(TopicAuthorizationFailedError()))


def test_the_default_group_is_named_after_the_version() -> None:
    assert backfill_group(Settings(consumer_group="cg"), "3fa9") == "cg-3fa9"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "0"], "--timeout must be a positive number"),
        (["--max-lag", "-1"], "--max-lag must be >= 0"),
        (["--drop-old-after", "60"], "--drop-old-after goes with --switch"),
    ],
)
def test_bad_options_are_one_line_errors(args, message, capsys) -> None:
    assert cli_main(["rollout", "v1", *args]) == 2
    assert message in capsys.readouterr().err
