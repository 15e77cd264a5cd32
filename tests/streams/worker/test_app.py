"""Pieces of the Faust app that need no broker."""

from __future__ import annotations

import asyncio

import pytest

from streams.worker.app import StateTable


def test_a_window_is_acknowledged_only_after_its_changelog_records_are_delivered() -> None:
    async def body() -> None:
        table = object.__new__(StateTable)  # the waiting logic only; no app, no broker
        table.in_flight = []
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        table.in_flight += [first, second]
        waiter = asyncio.ensure_future(table.delivered())
        first.set_result(None)
        await asyncio.sleep(0.01)
        assert not waiter.done()  # one record still in flight
        second.set_result(None)
        await asyncio.wait_for(waiter, 1)
        assert table.in_flight == []

    asyncio.run(body())


def test_a_failed_changelog_delivery_is_not_swallowed() -> None:
    async def body() -> None:
        table = object.__new__(StateTable)
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(ConnectionError("broker gone"))
        table.in_flight = [failed]
        with pytest.raises(ConnectionError):
            await table.delivered()

    asyncio.run(body())


def test_each_model_version_has_its_own_state_table(tmp_path, tiny_model_dir) -> None:
    """Sums of one model's vectors never meet another model's vectors."""
    from encoder.manifest import read_manifest
    from streams.settings import Settings
    from streams.worker.app import build_app

    version = read_manifest(tiny_model_dir).version
    app = build_app(Settings(model_dir=tiny_model_dir, data_dir=tmp_path))
    assert list(app.tables) == [f"user-state-{version}"]


def test_a_worker_without_a_model_fails_at_once(tmp_path) -> None:
    from encoder.errors import ModelLoadError
    from streams.settings import Settings
    from streams.worker.app import build_app

    with pytest.raises(ModelLoadError, match="interest-stream export"):
        build_app(Settings(model_dir=tmp_path / "none", data_dir=tmp_path))


def test_faust_keeps_its_files_under_the_data_directory(tmp_path) -> None:
    from streams.settings import Settings
    from streams.worker.app import faust_app

    app = faust_app(Settings(data_dir=tmp_path, consumer_group="g1"))
    assert app.conf.appdir == tmp_path / "faust" / "g1" / "v1"


def test_a_rollout_starts_only_from_another_served_version_whose_model_is_at_hand(
    tmp_path,
) -> None:
    import pytest

    from streams.errors import StreamError
    from streams.rollout.dual import rollout_from
    from streams.settings import Settings
    from streams.store import open_store

    models = tmp_path / "models"
    (models / "v1").mkdir(parents=True)
    settings = Settings(data_dir=tmp_path, model_dir=models, rollout=True)
    store = open_store(path=settings.qdrant_location, backend=settings.qdrant_backend)
    assert rollout_from(settings, "v2", store) is None  # nothing served yet
    store.ensure_version("v1", 8)  # the aliases serve v1
    assert rollout_from(settings, "v1", store) is None  # served already
    assert rollout_from(settings, "v2", store) == "v1"
    off = Settings(data_dir=tmp_path, model_dir=models)
    assert rollout_from(off, "v2", store) is None
    (models / "v1").rmdir()
    with pytest.raises(StreamError, match="the served version's model is not in"):
        rollout_from(settings, "v2", store)
    store.close()


class FakeConsumer:
    """What ConsumerPartitions reads of Faust's consumer: commits, assignment, log starts."""

    def __init__(self, assigned: set[str], committed: dict[str, int | None]) -> None:
        self.assigned = assigned
        self._committed_offset = committed
        self.asked: list[tuple[str, ...]] = []

    def assignment(self) -> set[str]:
        return self.assigned

    async def earliest_offsets(self, *tps: str) -> dict[str, int]:
        self.asked.append(tuple(sorted(tps)))
        return {tp: 5 for tp in tps}


class FakeApp:
    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer
        self.in_recovery = False
        self.rebalancing = False


def test_a_partition_never_committed_starts_at_its_log_start_for_the_gap_guard() -> None:
    """The stall seen with two workers killed in turn: a partition the group never
    committed, whose first records were fetched and lost around a rebalance, was read no
    further (read offset none, 50 in the log) and never read again, because the guard had
    no offset to expect. Its log's start stands in for the commit, and the idle check asks
    for a re-read."""
    from streams.worker.app import ConsumerPartitions
    from streams.worker.gaps import GapGuard
    from streams.worker.stats import WorkerStats

    consumer = FakeConsumer({"clicks/0", "clicks/1"}, {"clicks/1": 40})
    app = FakeApp(consumer)
    partitions = ConsumerPartitions(app, WorkerStats())  # type: ignore[arg-type]
    guard = GapGuard()
    guard.started -= 60  # the agent has been idle a while
    assert partitions.committed().get("clicks/0") is None
    assert guard.stalled("clicks/0", 50, partitions.committed().get("clicks/0"), 10) is None

    app.in_recovery = True  # Faust has not read the group's commits yet: ask nothing
    asyncio.run(partitions.learn_starts(consumer.assignment()))
    assert consumer.asked == [] and partitions.committed().get("clicks/0") is None

    app.in_recovery = False
    asyncio.run(partitions.learn_starts(consumer.assignment()))
    assert consumer.asked == [("clicks/0",)]  # only the partition never committed
    committed = partitions.committed()
    assert committed["clicks/0"] == 5 and committed["clicks/1"] == 40
    assert guard.stalled("clicks/0", 50, committed["clicks/0"], 10) == 5  # read it again

    asyncio.run(partitions.learn_starts(consumer.assignment()))
    assert len(consumer.asked) == 1  # asked once per assignment
    consumer._committed_offset["clicks/0"] = 12  # committed since: the commit counts
    assert partitions.committed()["clicks/0"] == 12
    consumer.assigned = {"clicks/1"}  # revoked: forgotten
    asyncio.run(partitions.learn_starts(consumer.assignment()))
    assert partitions.starts == {}


class AwayConsumer(FakeConsumer):
    """The consumer while the broker is away and its own thread rebalances: the log
    starts cannot be asked, and a partition listed a moment ago is no longer assigned."""

    def highwater(self, tp: object) -> int:
        raise AssertionError("Partition is not assigned")  # what aiokafka raises

    async def earliest_offsets(self, *tps: object) -> dict[object, int]:
        from aiokafka.errors import KafkaConnectionError

        raise KafkaConnectionError("Connection at 127.0.0.1:9092 closed")


def test_a_timer_that_fails_is_logged_and_the_worker_runs_on(
    tmp_path, tiny_model_dir, caplog
) -> None:
    """An exception out of a Faust timer stops the whole app, and a broker away or a
    rebalance makes the ticks fail for a while. Every timer of the worker logs its
    failure, counts it, and ticks again."""
    from faust.types import TP

    from streams.settings import Settings
    from streams.store import store_for
    from streams.worker.app import Worker
    from streams.worker.metrics import Metrics

    settings = Settings(model_dir=tiny_model_dir, data_dir=tmp_path, stats_file=tmp_path / "s")
    metrics = Metrics()
    worker = Worker(settings, metrics, store_for)
    clicks = TP(settings.topic("clicks"), 0)
    worker.app.consumer = AwayConsumer({clicks}, {clicks: None})  # type: ignore[arg-type]

    def broken_dump(path: object) -> None:
        raise OSError("disk full")

    worker.stats.dump = broken_dump  # type: ignore[method-assign]
    assert set(worker.ticks) == {"lag", "partition ends", "fine-tuning jobs", "stats file"}
    for tick in worker.ticks.values():
        asyncio.run(tick())  # none raises
    assert metrics.retries.labels("partition ends")._value.get() == 1  # the broker away
    assert metrics.unexpected.labels("stats file")._value.get() == 1  # a bug: logged as one
    assert metrics.unexpected.labels("lag")._value.get() == 0  # a revoked partition: no end
    assert "partition ends: the broker did not answer" in caplog.text
    assert "stats file failed (a bug: please report it)" in caplog.text


class ThreadedConsumer(FakeConsumer):
    """Faust's consumer runs aiokafka in a thread of its own: ``seek`` changes aiokafka's
    fetch buffer from the caller's thread (the drain in the consumer's thread then raised
    KeyError and stopped the worker), ``seek_wait`` seeks in the consumer's thread."""

    def __init__(self, assigned: set[str]) -> None:
        super().__init__(assigned, {})
        self.seeks: list[tuple[str, int]] = []

    async def seek(self, tp: str, offset: int) -> None:
        raise AssertionError("seeked from the event loop's thread")

    async def seek_wait(self, partitions: dict[str, int]) -> None:
        from aiokafka.errors import IllegalStateError

        for tp, offset in partitions.items():
            if tp not in self.assigned:
                raise IllegalStateError(f"No current assignment for partition {tp}")
            self.seeks.append((tp, offset))


def test_a_partition_is_read_again_by_a_seek_in_the_consumers_thread(caplog) -> None:
    from faust.types import TP

    from streams.worker.app import ConsumerPartitions
    from streams.worker.stats import WorkerStats

    held, revoked = TP("clicks", 0), TP("clicks", 1)
    consumer = ThreadedConsumer({held})  # type: ignore[arg-type]
    partitions = ConsumerPartitions(FakeApp(consumer), WorkerStats())  # type: ignore[arg-type]
    asyncio.run(partitions.read_again(held, 25, "at its end"))
    assert consumer.seeks == [(held, 25)]
    asyncio.run(partitions.read_again(revoked, 75, "at its end"))  # revoked meanwhile
    assert consumer.seeks == [(held, 25)]
    assert "clicks 1 was not read again" in caplog.text
