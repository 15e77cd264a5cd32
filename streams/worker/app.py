"""The Faust app: agents that turn Kafka topics into item and user vectors in Qdrant.

    app = build_app(Settings(), Metrics())                  # or: interest-stream worker
    app = build_app(settings, metrics, store_factory=...)   # tests: a store that fails
    app.main()

Four agents, each a :class:`~streams.worker.windows.WindowRunner`: ``items`` (item texts
-> vectors), ``events`` (clicks, views, reviews and forget requests -> user vectors),
``parked`` (events that came before their item, taken again: streams/parking.py) and
``feedback`` (signals -> training examples in the ``examples`` topic, counted by the
fine-tuning trigger, streams/worker/finetune.py). Timers measure consumer lag and event-loop
lag for the metrics, look for holes at the end of idle partitions, and ask the trigger.

The parts are named objects held by a :class:`Worker`: the window runners, the retry policy
(streams/worker/retry.py), the state tables (streams/worker/tables.py), the output to Kafka
(:class:`KafkaOutput`), the launcher of fine-tuning jobs, and during a roll-out the dual
write and its backfill (streams/rollout/). The processor, which does the work of a window
(decode, encode, fold, write), is made on the first window or at start-up, whichever comes
first, and retried until the model loads and Qdrant answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import faust
from aiokafka.errors import IllegalStateError, KafkaError

from encoder.manifest import read_manifest
from encoder.model import load_model
from encoder.registry import resolve_model_dir
from encoder.service import Encoder
from streams.errors import BrokerUnavailable
from streams.head import Head, load_head, stream_half_lives
from streams.kafka.client import broker_credentials
from streams.kafka.topics import EVENT_TOPICS, changelog_prefix, topic_configs
from streams.parking import parked_at, retry_at, unparked
from streams.processor import EventProcessor, Outcome, ProcessorConfig, RawRecord, load_concepts
from streams.records import Example, ForgetMarker, Limits, encode_example
from streams.rollout.dual import DualWrite, Rollout, rollout_from
from streams.settings import Settings
from streams.store import Store, store_for
from streams.worker import commits
from streams.worker.finetune import FinetuneLauncher, Trigger
from streams.worker.liveness import Liveness
from streams.worker.metrics import Metrics
from streams.worker.retry import Retry, Stopping
from streams.worker.stats import WorkerStats
from streams.worker.tables import StateTable, TableStates, state_table
from streams.worker.windows import MAX_RECORD_BYTES, Agent, Parking, WindowRunner

log = logging.getLogger(__name__)
GAP_CHECK_S = 5.0  # how often idle agents' partitions are checked for a hole at their end
GAP_IDLE_S = 10.0  # ... once nothing was taken from the partition for this long
LAG_EVERY_S = 5.0  # how often the consumer lag gauge is refreshed
JOB_CHECK_S = 5.0  # how often the fine-tuning trigger is asked
LOOP_LAG_EVERY_S = 0.25  # how often the event loop's lag is sampled

# Which agent reads a topic of each kind.
AGENT_OF_KIND: dict[str, Agent] = {
    **{kind: "events" for kind in EVENT_TOPICS},
    "items": "items",
    "feedback": "feedback",
    "parked": "parked",
}
StoreFactory = Callable[[Settings], Store]


def processor_config(settings: Settings, head: Head | None = None) -> ProcessorConfig:
    return ProcessorConfig(
        half_lives=stream_half_lives(head, settings.half_lives),
        weights={
            "click": settings.weight_click,
            "view": settings.weight_view,
            "review": settings.weight_review,
            "negative": settings.weight_negative,
        },
        rating_center=settings.rating_center,
        rating_scale=settings.rating_scale,
        dedupe_window=settings.dedupe_window,
        allowed_lateness_s=settings.allowed_lateness_s,
        concept_labels=load_concepts(settings.concept_vocab),
        concept_temperature=settings.concept_temperature,
        concepts_top=settings.concepts_top,
        item_wait_s=settings.item_wait_ms / 1000,
        item_cache_entries=settings.item_cache_entries,
        state_cache_bytes=int(settings.state_cache_mb * 2**20),
        encode_timeout_s=settings.encoder_timeout_s,
        limits=Limits(
            settings.max_text_bytes,
            settings.min_ts,
            settings.max_future_s,
            settings.forget_on_event_topics,
        ),
    )


def faust_app(settings: Settings) -> faust.App:
    """The worker's Faust app, without agents: broker, credentials, codecs, producer limits."""
    commits.install()  # Faust's offset commits, corrected (streams/worker/commits.py)
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)  # Faust makes one level
    return faust.App(
        settings.consumer_group,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        broker_credentials=broker_credentials(settings),
        store=f"{settings.state_store}://",  # rocksdb: Faust's RocksDB store (rocksdict)
        # Faust's own directory (default: "<group>-data" in the working directory).
        datadir=str(settings.data_dir / "faust" / "{conf.name}"),
        topic_partitions=settings.topic_partitions,
        value_serializer="raw",
        key_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.kafka_session_timeout_s,
        consumer_group_instance_id=settings.consumer_instance_id,
        # Faust's own topics (the state changelogs) as replicated as ours; its leader topic
        # (`<group>-__assignor-__leader`) is not made: nothing here runs on the leader only.
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        web_enabled=False,
        # The broker takes records up to 16 MiB (streams/kafka/broker.py); a dead letter
        # carries the original bytes, so the producer must be allowed as much.
        producer_max_request_size=MAX_RECORD_BYTES,
        table_cleanup_interval=60.0,
    )


def raw_topic(app: faust.App, *names: str) -> Any:
    """A topic (or several, read as one stream) of raw key and value bytes."""
    raw: Any = faust.Schema(
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    return app.topic(*names, schema=raw)


def build_app(
    settings: Settings, metrics: Metrics | None = None, store_factory: StoreFactory = store_for
) -> faust.App:
    """The worker's Faust app; ``metrics`` (served by the caller) move as it works."""
    return Worker(settings, metrics or Metrics(), store_factory).app


class KafkaOutput:
    """A window's output to Kafka: dead letters, examples, and the changelog it waits for."""

    def __init__(
        self,
        dlq_topic: Any,
        examples_topic: Any,
        parked_topic: Any,
        tables: Sequence[StateTable],
    ) -> None:
        self.dlq_topic = dlq_topic
        self.examples_topic = examples_topic
        self.parked_topic = parked_topic
        self.tables = tables

    async def dead_letter(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        try:
            delivered = await self.dlq_topic.send(key=key, value=value, headers=headers)
            await delivered  # acknowledged by the broker
        except KafkaError as exc:
            raise BrokerUnavailable(f"the dead-letter topic did not take a record: {exc}") from exc

    async def park(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        try:
            delivered = await self.parked_topic.send(key=key, value=value, headers=headers)
            await delivered
        except KafkaError as exc:
            raise BrokerUnavailable(f"the parked topic did not take a record: {exc}") from exc

    async def examples(self, records: Sequence[Example | ForgetMarker]) -> None:
        try:
            sent = [
                await self.examples_topic.send(key=r.user_id.encode(), value=encode_example(r))
                for r in records
            ]
            await asyncio.gather(*sent)  # acknowledged by the broker
        except KafkaError as exc:
            raise BrokerUnavailable(f"the examples topic did not take a record: {exc}") from exc

    async def changelog_delivered(self) -> None:
        for table in self.tables:
            await table.delivered()


class ConsumerPartitions:
    """The Faust consumer's committed offsets, and reading a partition again from one.

    A partition the group never committed has no committed offset; the group starts it at
    the log's start (the consumer resets to the earliest offset). That start stands in for
    the commit once :meth:`learn_starts` has asked for it, so that the gap guard also sees
    records lost before a partition's first commit: without it, a partition whose first
    records were fetched and lost around a rebalance (read offset none, the log's end 50)
    was never read again, and its records waited forever.
    """

    def __init__(self, app: faust.App, stats: WorkerStats) -> None:
        self.app = app
        self.stats = stats
        self.starts: dict[Hashable, int] = {}  # partition -> its log's start, if never committed

    def committed(self) -> Mapping[Hashable, int | None]:
        # Faust keeps the group's committed offsets here; it has no public accessor.
        committed: Mapping[Hashable, int | None] = cast(Any, self.app.consumer)._committed_offset
        if not self.starts:
            return committed
        merged: dict[Hashable, int | None] = dict(self.starts)
        merged.update((tp, offset) for tp, offset in committed.items() if offset is not None)
        return merged

    async def learn_starts(self, tps: Collection[Hashable]) -> None:
        """Ask the log's start of each of ``tps`` (assigned partitions) that the group never
        committed; forget those of partitions no longer held or committed since. Only while
        settled: during recovery Faust has not read the group's commits yet."""
        if not self.settled():
            return
        consumer: Any = self.app.consumer
        committed = consumer._committed_offset
        held = set(tps)
        for tp in [tp for tp in self.starts if tp not in held or committed.get(tp) is not None]:
            del self.starts[tp]
        missing = [tp for tp in held if committed.get(tp) is None and tp not in self.starts]
        if not missing:
            return
        starts = await consumer.earliest_offsets(*missing)
        if self.settled():  # no rebalance began while the broker answered
            now = set(consumer.assignment())
            self.starts.update(
                (tp, int(offset))
                for tp, offset in starts.items()
                if tp in now and offset is not None and committed.get(tp) is None
            )

    def end(self, tp: Any) -> int | None:
        """The log's end of ``tp`` as the consumer last saw it; None if not known yet or no
        longer assigned. The consumer's own thread can take a partition away between
        ``assignment()`` and this call (a rebalance), and aiokafka then asserts."""
        try:
            return cast(Any, self.app.consumer).highwater(tp)
        except (AssertionError, KeyError):
            return None

    async def read_again(self, tp: Any, offset: int, where: str) -> None:
        log.warning(
            "records missing from %s %d %s: reading again from %d",
            tp.topic,
            tp.partition,
            where,
            offset,
        )
        self.stats.counts["gaps_reread"] += 1
        # In the consumer's own thread (Faust's ``seek_wait``, as its table recovery seeks):
        # ``consumer.seek`` changes aiokafka's fetch buffer from this thread while the
        # consumer's thread drains it, and the drain then raised KeyError, which stopped the
        # whole worker (seen after a broker restart, once in a few runs).
        try:
            await self.app.consumer.seek_wait({tp: offset})
        except (IllegalStateError, AssertionError, KeyError) as exc:
            log.warning(
                "%s %d was not read again (%r): no longer assigned; its new owner reads "
                "it from the group's commit",
                tp.topic,
                tp.partition,
                exc,
            )

    def settled(self) -> bool:
        """The consumer runs, and is neither recovering tables nor rebalancing."""
        app: Any = self.app
        return not (app.consumer is None or app.in_recovery or getattr(app, "rebalancing", False))


class Worker:
    """The worker's parts and state, wired into one Faust app (``self.app``)."""

    def __init__(self, settings: Settings, metrics: Metrics, store_factory: StoreFactory) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store_factory = store_factory
        self.app = app = faust_app(settings)
        self.model_dir = resolve_model_dir(settings.models_root)  # fixed for this worker's life
        self.version = read_manifest(self.model_dir).version
        metrics.model.labels(self.version).set(1)
        self.changelog_prefix = changelog_prefix(settings)  # asks the broker, if prefixed
        self.table = self._state_table(self.version)
        self.old_version = self._rollout_source()
        self.old_table = None
        if self.old_version is not None:  # the served version, written too until the switch
            self.old_table = self._state_table(self.old_version)
        # full topic name -> its kind (clicks, views, reviews, items, feedback)
        kinds = (*EVENT_TOPICS, "items", "feedback", "parked")
        self.topic_kinds = {settings.topic(kind): kind for kind in kinds}
        self.stats = WorkerStats()
        self.retry = Retry(metrics, stopping=lambda: bool(self.app.should_stop))
        self.partitions = ConsumerPartitions(app, self.stats)
        self.trigger = Trigger(settings.finetune_min_examples, settings.finetune_every_s)
        self.launcher = FinetuneLauncher(
            self.trigger, settings.finetune_steps, settings.data_dir / "finetune", metrics
        )
        self.liveness = Liveness(settings.stuck_after_s)
        self._stuck = False
        self.processing: EventProcessor | DualWrite | None = None
        self._starting = asyncio.Lock()  # the start-up task and a first window may both ask
        self._said: set[str] = set()  # log lines said once
        tables = [t for t in (self.table, self.old_table) if t is not None]
        output = KafkaOutput(
            raw_topic(app, settings.topic("dlq")),
            raw_topic(app, settings.topic("examples")),
            raw_topic(app, settings.topic("parked")),
            tables,
        )
        parking = Parking(settings.park_max_s, settings.park_retry_s)
        self.runners: dict[Agent, WindowRunner] = {}
        self.ticks: dict[str, Callable[[], Any]] = {}  # the timers' bodies (``every``)
        for agent in ("items", "events", "parked", "feedback"):
            self.runners[agent] = WindowRunner(
                agent,
                {t: k for t, k in self.topic_kinds.items() if AGENT_OF_KIND[k] == agent},
                self._work_of(agent),
                output,
                self.retry,
                partitions=self.partitions,
                observe=self.observe,
                unexpected_retries=settings.unexpected_retries,
                parking=parking,
            )
        self._wire()

    def _state_table(self, version: str) -> StateTable:
        s = self.settings
        configs = topic_configs(s, "changelog")  # min.insync.replicas, if set
        return state_table(self.app, version, s.topic_partitions, self.changelog_prefix, configs)

    def _wire(self) -> None:
        app, s = self.app, self.settings
        for agent, runner in self.runners.items():
            topic = raw_topic(app, *runner.topic_kinds)
            app.agent(topic, name=agent)(self._agent_body(runner))
        app.task(self.warm_up)
        app.task(self.measure_loop_lag)
        self.every(LAG_EVERY_S, "lag", self.measure_lag)
        self.every(GAP_CHECK_S, "partition ends", self.check_partition_ends)
        self.every(JOB_CHECK_S, "fine-tuning jobs", self.launcher.maybe_start)
        if s.stats_file is not None:
            self.every(1.0, "stats file", self.dump_stats)

    def every(self, seconds: float, what: str, tick: Callable[[], Any]) -> None:
        """Run ``tick`` every ``seconds`` (a Faust timer); a tick that fails is logged and
        the next one comes as usual. An exception out of a Faust timer stops the whole
        app, and a tick can fail for a while without a bug: the partition-end check asks
        the broker for log starts (KafkaTimeoutError once it has been away for the request
        timeout, 90 s)."""

        async def guarded() -> None:
            try:
                await tick()
            except KafkaError as exc:
                self.metrics.retries.labels(what).inc()
                log.warning(
                    "%s: the broker did not answer (%r); again in %.0f s", what, exc, seconds
                )
            except Exception:
                self.metrics.unexpected.labels(what).inc()
                log.exception("%s failed (a bug: please report it); again in %.0f s", what, seconds)

        self.ticks[what] = guarded
        self.app.timer(seconds, name=what)(guarded)

    def _agent_body(self, runner: WindowRunner) -> Callable[[Any], Any]:
        window_s = self.settings.window_ms / 1000

        async def body(stream: Any) -> None:
            await runner.run(stream, self.settings.window_events, window_s)

        return body

    def _rollout_source(self) -> str | None:
        if not self.settings.rollout:
            return None
        store = self.store_factory(self.settings)
        try:
            return rollout_from(self.settings, self.version, store)
        finally:
            store.close()

    # -- the processor ----------------------------------------------------------------------

    def _work_of(self, agent: Agent) -> Callable[[Sequence[RawRecord]], Any]:
        async def work(records: Sequence[RawRecord]) -> Outcome:
            processing = await self.ready_processing()
            if agent == "items":
                return await processing.items(records)
            if agent == "events":
                return await processing.events(records)
            if agent == "parked":
                await self._until_due(records)
                return await processing.events([unparked(r) for r in records])
            return await processing.feedback(records)

        return work

    async def _until_due(self, records: Sequence[RawRecord]) -> None:
        """Wait until the window's parked records may be tried again (at most one retry
        interval: a clock set back does not hold them longer)."""
        due = max((retry_at(r) or 0.0 for r in records), default=0.0)
        wait = min(due - time.time(), self.settings.park_retry_s)
        if wait > 0:
            await asyncio.sleep(wait)

    async def ready_processing(self) -> EventProcessor | DualWrite:
        async with self._starting:
            if self.processing is None:
                self.processing = await self._start()
        return self.processing

    async def warm_up(self) -> None:
        """Load the model and open Qdrant at start-up, so the healthcheck says ready early."""
        with contextlib.suppress(Stopping):
            await self.retry(self.ready_processing, "start-up")

    async def _start(self) -> EventProcessor | DualWrite:
        s = self.settings
        model = await asyncio.to_thread(
            load_model, self.model_dir, provider=s.encoder_provider, threads=s.encoder_threads
        )
        encoder = Encoder(
            model,
            max_wait_ms=s.encoder_max_wait_ms,
            max_batch_tokens=s.encoder_max_batch_tokens,
            max_pending=s.encoder_max_pending,
        )
        encoder.batcher.on_batch = self.metrics.encoder_batch
        store = self.store_factory(s)
        rolling = self.old_version is not None
        new = self._processor(encoder, store, self.model_dir, self.table, stamp_live=rolling)
        await new.start()
        processing: EventProcessor | DualWrite = new
        if self.old_version is not None and self.old_table is not None:
            old_model = await asyncio.to_thread(
                load_model,
                s.models_root / self.old_version,
                provider=s.encoder_provider,
                threads=s.encoder_threads,
            )
            old_dir = s.models_root / self.old_version
            old = self._processor(Encoder(old_model), store, old_dir, self.old_table)
            await old.start()
            processing = DualWrite(new, old)
            rollout = Rollout(
                s,
                processing,
                store,
                self.retry,
                self.holds_all,
                self.topic_kinds,
                self.backfill_progress,
            )
            self.app.add_future(rollout.run())
        self.metrics.cache_ratios(lambda: new.item_cache.hit_ratio, lambda: encoder.cache.hit_ratio)
        self.metrics.ready.set(1)
        serving = store.serving()
        log.info("model %s; the aliases serve %s", model.version, serving)
        if self.old_version is not None:
            log.info(
                "roll-out: writing %s and %s until the switch", self.old_version, model.version
            )
        elif serving != model.version:
            log.warning(
                "this worker writes version %s, but readers see %s until a roll-out "
                "rebuilds %s and switches the aliases (README, Fine-tuning)",
                model.version,
                serving,
                model.version,
            )
        return processing

    def _processor(
        self,
        encoder: Encoder,
        store: Store,
        version_dir: Path,
        table: StateTable,
        stamp_live: bool = False,
    ) -> EventProcessor:
        """A version's processor: with its learned head (and the head's half-life for the
        served vector) when it has one."""
        head = load_head(version_dir)
        config = processor_config(self.settings, head)
        states = TableStates(table)
        return EventProcessor(encoder, store, states, config, stamp_live=stamp_live, head=head)

    # -- what a window tells -----------------------------------------------------------------

    def observe(
        self, agent: Agent, outcome: Outcome, produced: list[float], acked_s: float
    ) -> None:
        """Metrics, statistics and the fine-tuning trigger, after a window's output is out."""
        m = self.metrics
        self.liveness.progressed()
        self.stats.window(agent, [int(t * 1000) for t in produced], acked_s, outcome)
        for (topic, kind), n in outcome.types.items():
            m.events.labels(topic, kind).inc(n)
        for _, error in outcome.dead:
            m.dlq.labels(type(error).__name__).inc()
        m.duplicates.inc(outcome.duplicates)
        m.unknown_items.inc(outcome.unknown_items)
        m.parked.inc(sum(parked_at(r) is None for r in outcome.parked))
        m.forgotten_events.inc(outcome.forgotten_events)
        m.forgotten_users.inc(len(outcome.forgotten_users))
        m.texts_encoded.inc(outcome.encoded)
        self.trigger.add(sum(isinstance(r, Example) for r in outcome.examples))
        if outcome.written:
            m.qdrant_write_seconds.labels("items" if agent == "items" else "users").observe(
                outcome.write_s
            )
        if agent == "events" and outcome.written:
            by_produce = m.freshness.labels("produce")
            for t in produced:
                by_produce.observe(acked_s - t)
            by_event = m.freshness.labels("event")
            for t in outcome.event_times:
                by_event.observe(acked_s - t)
        log.debug(
            "%s window: %d records, %d written, %d dead, %d duplicates, %d parked",
            agent,
            len(produced),
            outcome.written,
            len(outcome.dead),
            outcome.duplicates,
            len(outcome.parked),
        )

    # -- timers ------------------------------------------------------------------------------

    async def measure_lag(self) -> None:
        """Per assigned partition: the log's end minus the group's committed offset; and
        liveness: records waiting but no window completed for a while is not ready."""
        consumer: Any = self.app.consumer
        if consumer is None:
            return
        committed = self.partitions.committed()
        self.metrics.lag.clear()  # partitions revoked since the last look disappear
        waiting = parked = 0
        for tp in consumer.assignment():
            if tp.topic not in self.topic_kinds:
                continue
            end = self.partitions.end(tp)
            if end is not None:
                lag = max(0, end - (committed.get(tp) or 0))
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
                waiting += lag
                if self.topic_kinds[tp.topic] == "parked":
                    parked += lag
        self.metrics.parked_waiting.set(parked)
        stuck = self.liveness.stuck(waiting)
        if stuck and not self._stuck:
            log.error(
                "stuck: %d records wait and no window completed for %.0f s; health says not "
                "ready; %s",
                waiting,
                self.settings.stuck_after_s,
                self.consumer_state(),
            )
        self._stuck = stuck
        self.metrics.stuck.set(1 if stuck else 0)
        if self.processing is not None:
            self.metrics.ready.set(0 if stuck else 1)

    def consumer_state(self) -> str:
        """Where the consumer stands, for the stuck log: flow, recovery, busy agents, and
        the committed offset, the offset read so far and the log's end of each partition of
        ours that is behind, paused, or waiting for a re-read (the gap guard)."""
        app: Any = self.app
        consumer: Any = app.consumer
        if consumer is None:
            return "no consumer"
        committed = self.partitions.committed()
        ours = sorted(
            (tp for tp in consumer.assignment() if tp.topic in self.topic_kinds),
            key=lambda tp: (tp.topic, tp.partition),
        )
        paused: set[Any] = getattr(consumer, "_paused_partitions", set())
        waiting = {tp for runner in self.runners.values() for tp in runner.guard.waiting}
        busy = [name for name, runner in self.runners.items() if runner.busy]
        rebalancing = bool(getattr(app, "rebalancing", False))

        read: Mapping[Any, int | None] = getattr(consumer, "_read_offset", {})

        def where(tp: Any) -> str:
            marks = ("P" if tp in paused else "") + ("W" if tp in waiting else "")
            return (
                f"{tp.topic}/{tp.partition}{'[' + marks + ']' if marks else ''}="
                f"{committed.get(tp)}/{read.get(tp)}/{self.partitions.end(tp)}"
            )

        def behind(tp: Any) -> bool:
            end = self.partitions.end(tp)
            return tp in paused or tp in waiting or (end or 0) > (committed.get(tp) or 0)

        shown = [tp for tp in ours if behind(tp)]
        return (
            f"flow {'on' if getattr(consumer, 'flow_active', True) else 'off'}, "
            f"flow control {'on' if app.flow_control.is_active() else 'off'}, "
            f"in recovery {bool(app.in_recovery)}, rebalancing {rebalancing}, "
            f"busy agents {busy or 'none'}; committed/read/end offsets of the partitions "
            f"behind, paused [P] or waiting for a re-read [W]: "
            f"{' '.join(map(where, shown)) or 'none'} "
            f"({len(ours) - len(shown)} others caught up)"
        )

    async def check_partition_ends(self) -> None:
        """Holes at the end of a partition (streams/worker/gaps.py): look while an agent idles."""
        if not self.partitions.settled():
            return
        consumer: Any = self.app.consumer
        await self.partitions.learn_starts(
            [tp for tp in consumer.assignment() if tp.topic in self.topic_kinds]
        )
        committed = self.partitions.committed()
        for tp in consumer.assignment():
            kind = self.topic_kinds.get(tp.topic)
            if kind is None:
                continue  # a changelog topic
            runner = self.runners[AGENT_OF_KIND[kind]]
            if runner.busy:
                continue
            end = self.partitions.end(tp)
            seek_to = runner.guard.stalled(tp, end, committed.get(tp), GAP_IDLE_S)
            if seek_to is not None:
                await self.partitions.read_again(tp, seek_to, f"at its end (the log ends at {end})")

    async def measure_loop_lag(self) -> None:
        """How late the event loop wakes up: CPU work on the loop shows here first."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(LOOP_LAG_EVERY_S)
            self.metrics.loop_lag.observe(max(0.0, loop.time() - asked - LOOP_LAG_EVERY_S))

    async def dump_stats(self) -> None:
        assert self.settings.stats_file is not None
        await asyncio.to_thread(self.stats.dump, self.settings.stats_file)

    # -- roll-out ----------------------------------------------------------------------------

    def backfill_progress(self, version: str, done: int, total: int) -> None:
        self.metrics.backfill.labels(version, "done").set(done)
        self.metrics.backfill.labels(version, "total").set(total)

    def holds_all(self, topics: Mapping[str, str]) -> bool:
        """This worker is assigned every partition of ``topics`` and its tables recovered
        (the backfill writes states of every user: one worker must hold them all)."""
        if not self.partitions.settled():
            return False
        consumer: Any = self.app.consumer
        held = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        partitions = self.settings.topic_partitions
        wanted = {(t, n) for t in topics for n in range(consumer.topic_partitions(t) or partitions)}
        if wanted <= held:
            return True
        if held and "waiting" not in self._said:
            log.warning("roll-out: the backfill waits until one worker holds every partition")
            self._said.add("waiting")
        return False
