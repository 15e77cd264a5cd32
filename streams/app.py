"""The Faust app: agents that turn Kafka topics into item and user vectors in Qdrant.

    app = build_app(Settings(), Metrics())
    app.main()          # or: interest-stream worker

Three agents: ``items`` (item texts -> vectors), ``events`` (clicks, views, reviews and
forget requests -> user vectors) and ``feedback`` (signals -> training examples in the
``examples`` topic, and the trigger that starts a fine-tuning job in its own process,
``streams/feedback.py``). Timers measure consumer lag and event-loop lag for the metrics
(``streams/metrics.py``).

Agents take records in windows (``window_events`` records or ``window_ms``, whichever comes
first), hand each window to the :class:`~streams.processor.EventProcessor`, send bad records
to the dead-letter topic, and only then acknowledge the window's records, so offsets are
committed after Qdrant acknowledged the writes that cover them. Transient failures (Qdrant or
the encoder down) are retried with backoff; while they last, the agent does not take more
records (back-pressure) and nothing is dead-lettered.

Each partition's records are checked for holes that Faust can leave around a restart or a
rebalance, and a hole is read again (``streams/gaps.py``); a window is acknowledged only
after the changelog records of the states it changed are delivered (``StateTable``).

User state lives in the Faust table ``user-state-<model version>`` (in memory, changelogged
to Kafka and restored from it on restart). The state's sums are made of one model's vectors,
so each version has its own table: a worker started on another version never folds new
vectors into sums of the old one (it starts that version's users afresh; a full rebuild of
a new version is a roll-out, see the README). The table is keyed by the user id's UTF-8 bytes and
partitioned by the same partitioner as the event topics, so each user's state lives in the
partition of its events.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any, TypeVar, cast

import faust
import orjson

from encoder.manifest import read_manifest
from encoder.model import load_model
from encoder.registry import resolve_model_dir
from encoder.service import Encoder
from streams.backfill import Backfill
from streams.deadletter import dead_letter
from streams.errors import StreamError
from streams.feedback import JOB_BUSY_EXIT, Trigger
from streams.gaps import GapGuard
from streams.metrics import Metrics
from streams.processor import EventProcessor, Outcome, ProcessorConfig, RawRecord, load_concepts
from streams.records import Limits
from streams.settings import Settings
from streams.stats import WorkerStats
from streams.store import Store, StoreError
from streams.store import open_store as _open
from streams.topics import EVENT_TOPICS, ssl_context

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0
GAP_CHECK_S = 5.0  # how often idle agents' partitions are checked for a hole at their end
GAP_IDLE_S = 10.0  # ... once nothing was taken from the partition for this long
LAG_EVERY_S = 5.0  # how often the consumer lag gauge is refreshed
JOB_CHECK_S = 5.0  # how often the fine-tuning trigger is asked
LOOP_LAG_EVERY_S = 0.25  # how often the event loop's lag is sampled
MAX_RECORD_BYTES = 16 * 1024 * 1024
T = TypeVar("T")


class StateTable(faust.Table):
    """A Faust table that remembers its changelog records until the broker has them.

    Faust commits offsets after flushing its producer buffer, but that flush gives up after
    0.1 s without a delivery (faust ``ProducerBuffer.flush_atmost``): under load a commit
    can overtake the changelog record of the state it covers, and a crash then loses that
    state. The agents therefore wait for :meth:`delivered` before they acknowledge a window.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight: list[asyncio.Future[Any]] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        fut = super().send_changelog(*args, **kwargs)
        self.in_flight.append(fut)
        return fut

    async def delivered(self) -> None:
        """Wait until every changelog record sent so far is acknowledged by the broker."""
        if self.in_flight:
            await asyncio.gather(*list(self.in_flight))
            self.in_flight = [f for f in self.in_flight if not f.done()]


class TableStates(MutableMapping[str, Any]):
    """A Faust table seen as ``user_id -> state bytes`` (keys stored as UTF-8 bytes)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        value = self.table.get(key.encode())
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        return (k.decode() for k in self.table)

    def __len__(self) -> int:
        return len(self.table)


def processor_config(settings: Settings) -> ProcessorConfig:
    return ProcessorConfig(
        half_lives=settings.half_lives,
        weights={
            "click": settings.weight_click,
            "view": settings.weight_view,
            "review": settings.weight_review,
            "negative": settings.weight_negative,
        },
        rating_center=settings.rating_center,
        rating_scale=settings.rating_scale,
        dedupe_window=settings.dedupe_window,
        concept_labels=load_concepts(settings.concept_vocab),
        concept_temperature=settings.concept_temperature,
        concepts_top=settings.concepts_top,
        item_wait_s=settings.item_wait_ms / 1000,
        item_cache_entries=settings.item_cache_entries,
        encode_timeout_s=settings.encoder_timeout_s,
        limits=Limits(settings.max_text_bytes, settings.min_ts, settings.max_future_s),
    )


def open_store(settings: Settings) -> Store:
    """The Qdrant store the settings name: a server with its API key, or the embedded one."""
    key = settings.qdrant_api_key
    return _open(
        settings.qdrant_url,
        key.get_secret_value() if key else None,
        settings.qdrant_location,
        settings.qdrant_backend,
    )


def rollout_from(settings: Settings, version: str) -> str | None:
    """With ``settings.rollout``: the version the aliases serve, when it is another one than
    ``version`` (CURRENT) and its model is in the models root; else None."""
    if not settings.rollout:
        return None
    store = open_store(settings)
    try:
        serving = store.serving()
    finally:
        store.close()
    if serving is None or serving == version:
        log.info("roll-out: the aliases serve %s already; nothing to roll out", serving)
        return None
    if not (settings.models_root / serving).is_dir():
        raise StreamError(
            f"roll-out from {serving} to {version}: the served version's model is not in "
            f"{settings.models_root} (it is written too until the switch)"
        )
    log.info("roll-out from %s to %s: writing both, backfilling %s", serving, version, version)
    return serving


def faust_app(settings: Settings) -> faust.App:
    """The worker's Faust app, without agents: broker, credentials, codecs, producer limits."""
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)  # Faust makes one level
    return faust.App(
        settings.consumer_group,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        broker_credentials=broker_credentials(settings),
        store="memory://",
        # Faust's own directory (default: "<group>-data" in the working directory).
        datadir=str(settings.data_dir / "faust" / "{conf.name}"),
        topic_partitions=settings.topic_partitions,
        value_serializer="raw",
        key_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.kafka_session_timeout_s,
        web_enabled=False,
        # The broker takes records up to 16 MiB (streams/broker.py); a dead letter carries
        # the original bytes, so the producer must be allowed as much.
        producer_max_request_size=MAX_RECORD_BYTES,
        table_cleanup_interval=60.0,
    )


def broker_credentials(settings: Settings) -> Any:
    """Faust's credentials for the security protocol: SASL (over TLS for SASL_SSL), TLS
    alone, or none."""
    context = ssl_context(settings)
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password else None,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def raw_topic(app: faust.App, *names: str) -> Any:
    """A topic (or several, read as one stream) of raw key and value bytes."""
    raw: Any = faust.Schema(
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    return app.topic(*names, schema=raw)


def build_app(settings: Settings, metrics: Metrics | None = None) -> faust.App:
    """The worker: agents for items and events; ``metrics`` (served by the caller) move."""
    metrics = metrics or Metrics()
    app = faust_app(settings)
    events_topic = raw_topic(app, *(settings.topic(t) for t in EVENT_TOPICS))
    items_topic = raw_topic(app, settings.topic("items"))
    feedback_topic = raw_topic(app, settings.topic("feedback"))
    examples_topic = raw_topic(app, settings.topic("examples"))
    dlq_topic = raw_topic(app, settings.topic("dlq"))
    model_dir = resolve_model_dir(settings.models_root)  # fixed for this worker's life
    version = read_manifest(model_dir).version
    metrics.model.labels(version).set(1)
    table = StateTable(
        app,
        name=f"user-state-{version}",
        default=None,
        beacon=app.tables.beacon,
        key_type=bytes,  # bytes keys and values: Faust picks its raw codec for both
        value_type=bytes,  # InterestState.to_bytes()
        partitions=settings.topic_partitions,
        use_partitioner=True,
    )
    app.tables.add(table)
    old_version = rollout_from(settings, version)
    old_table = None
    if old_version is not None:  # the version the aliases serve, written too until the switch
        old_table = StateTable(
            app,
            name=f"user-state-{old_version}",
            default=None,
            beacon=app.tables.beacon,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.topic_partitions,
            use_partitioner=True,
        )
        app.tables.add(old_table)
    rollout_lock = asyncio.Lock()  # the new version's states: live windows vs the backfill
    items_ready = asyncio.Event()  # the new version has every item: its events may start
    live_items: set[str] = set()  # items the live stream wrote to the new version
    said: set[str] = set()  # log lines said once
    kinds = {settings.topic(t): t for t in (*EVENT_TOPICS, "items", "feedback")}
    works = {topic: "events" if k in EVENT_TOPICS else k for topic, k in kinds.items()}
    trigger = Trigger(settings.finetune_min_examples, settings.finetune_every_s)
    jobs: dict[str, asyncio.subprocess.Process] = {}
    watchers: set[asyncio.Future[None]] = set()
    holder: dict[str, EventProcessor] = {}
    guards: dict[str, GapGuard] = {}  # per agent
    busy: set[str] = set()  # agents inside a window
    stats = WorkerStats()

    starting = asyncio.Lock()

    async def processor() -> EventProcessor:
        async with starting:  # the start-up task and a first window may both ask
            if "p" not in holder:
                await start_processor()
        return holder["p"]

    @app.task
    async def warm_up() -> None:
        """Load the model and open Qdrant at start-up, so the healthcheck says ready early."""
        await with_retry(processor, "start-up")

    async def start_processor() -> None:
        model = await asyncio.to_thread(
            load_model,
            model_dir,
            provider=settings.encoder_provider,
            threads=settings.encoder_threads,
        )
        encoder = Encoder(
            model,
            max_wait_ms=settings.encoder_max_wait_ms,
            max_batch_tokens=settings.encoder_max_batch_tokens,
            max_pending=settings.encoder_max_pending,
        )
        encoder.batcher.on_batch = metrics.encoder_batch
        store = open_store(settings)
        config = processor_config(settings)
        p = EventProcessor(
            encoder, store, TableStates(table), config, stamp_live=old_version is not None
        )
        await p.start()
        if old_version is not None and old_table is not None:
            old_model = await asyncio.to_thread(
                load_model,
                settings.models_root / old_version,
                provider=settings.encoder_provider,
                threads=settings.encoder_threads,
            )
            old = EventProcessor(Encoder(old_model), store, TableStates(old_table), config)
            await old.start()
            holder["old"] = old
            app.add_future(backfill_then_switch(p, store))
        holder["p"] = p
        metrics.cache_ratios(lambda: p.item_cache.hit_ratio, lambda: encoder.cache.hit_ratio)
        metrics.ready.set(1)
        serving = store.serving()
        log.info("model %s; the aliases serve %s", model.version, serving)
        if old_version is not None:
            log.info("roll-out: writing %s and %s until the switch", old_version, model.version)
        elif serving != model.version:
            log.warning(
                "this worker writes version %s, but readers see %s until a roll-out "
                "rebuilds %s and switches the aliases (README, Fine-tuning)",
                model.version,
                serving,
                model.version,
            )

    async def read_again(tp: Any, offset: int, where: str) -> None:
        log.warning(
            "records missing from %s %d %s: reading again from %d",
            tp.topic,
            tp.partition,
            where,
            offset,
        )
        stats.counts["gaps_reread"] += 1
        await app.consumer.seek(tp, offset)

    async def without_holes(events: list[Any], guard: GapGuard) -> list[Any]:
        """The window's records that continue their partitions (streams/gaps.py)."""
        # Faust keeps the group's committed offsets here; it has no public accessor.
        committed = cast(Any, app.consumer)._committed_offset
        taken = []
        for e in events:
            tp = e.message.tp
            verdict = guard.check(tp, e.message.offset, committed.get(tp))
            if verdict.seek_to is not None:
                await read_again(tp, verdict.seek_to, f"before offset {e.message.offset}")
            if verdict.take:
                taken.append(e)
        return taken

    async def run_windows(stream: Any, work: str) -> None:
        window_s = settings.window_ms / 1000
        guard = guards[work] = GapGuard()
        async for window in stream.noack_take(settings.window_events, within=window_s):
            busy.add(work)
            try:
                await run_window(stream, window, guard, work)
            finally:
                busy.discard(work)

    async def run_window(stream: Any, window: list[Any], guard: GapGuard, work: str) -> None:
        events = await without_holes(window, guard)
        if not events:
            return
        records = [RawRecord.of(kinds.get(e.message.topic, "clicks"), e.message) for e in events]
        outcome = await with_retry(functools.partial(process, work, records), f"{work} window")
        await table.delivered()  # the states this window changed are in the changelog
        acked_s = time.time()
        stats.window(work, [int(e.message.timestamp * 1000) for e in events], acked_s, outcome)
        observe(work, outcome, [e.message.timestamp for e in events], acked_s)
        log.debug(
            "%s window: %d records, %d written, %d dead, %d duplicates, %d unknown",
            work,
            len(records),
            outcome.written,
            len(outcome.dead),
            outcome.duplicates,
            outcome.unknown_items,
        )
        for rec, error in outcome.dead:
            value, headers = dead_letter(
                rec.value,
                rec.headers,
                rec.topic,
                rec.partition,
                rec.offset,
                error,
                max_bytes=MAX_RECORD_BYTES - 64 * 1024,  # room for headers
            )
            await with_retry(functools.partial(send_letter, value, headers), "dead letter")
        if outcome.examples:  # durable in the examples topic before the records are acked
            await with_retry(functools.partial(send_examples, outcome.examples), "examples")
            trigger.add(sum("item_id" in ex for ex in outcome.examples))  # not forget markers
        for event in events:
            await stream.ack(event)

    async def send_examples(examples: list[dict[str, Any]]) -> None:
        sent = [
            await examples_topic.send(key=ex["user_id"].encode(), value=orjson.dumps(ex))
            for ex in examples
        ]
        await asyncio.gather(*sent)  # acknowledged by the broker

    def observe(work: str, outcome: Outcome, produced: list[float], acked_s: float) -> None:
        for (topic, kind), n in outcome.types.items():
            metrics.events.labels(topic, kind).inc(n)
        for _, error in outcome.dead:
            metrics.dlq.labels(type(error).__name__).inc()
        metrics.duplicates.inc(outcome.duplicates)
        metrics.unknown_items.inc(outcome.unknown_items)
        metrics.forgotten_events.inc(outcome.forgotten_events)
        metrics.forgotten_users.inc(len(outcome.forgotten_users))
        metrics.texts_encoded.inc(outcome.encoded)
        if outcome.written:
            collection = "items" if work == "items" else "users"
            metrics.qdrant_write_seconds.labels(collection).observe(outcome.write_s)
        if work == "events" and outcome.written:
            by_produce = metrics.freshness.labels("produce")
            for t in produced:
                by_produce.observe(acked_s - t)
            by_event = metrics.freshness.labels("event")
            for t in outcome.event_times:
                by_event.observe(acked_s - t)

    @app.timer(LAG_EVERY_S)
    async def measure_lag() -> None:
        """Per assigned partition: the log's end minus the group's committed offset."""
        consumer: Any = app.consumer
        if consumer is None:
            return
        committed = consumer._committed_offset
        metrics.lag.clear()  # partitions revoked since the last look disappear
        for tp in consumer.assignment():
            if tp.topic not in kinds:
                continue
            end = consumer.highwater(tp)
            if end is not None:
                lag = max(0, end - (committed.get(tp) or 0))
                metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)

    @app.timer(GAP_CHECK_S)
    async def check_partition_ends() -> None:
        """Holes at the end of a partition (streams/gaps.py): look while an agent idles."""
        consumer: Any = app.consumer
        if consumer is None or app.in_recovery or getattr(app, "rebalancing", False):
            return
        committed = consumer._committed_offset
        for tp in consumer.assignment():
            work = works.get(tp.topic, "")
            if not work or work in busy or work not in guards:
                continue
            end = consumer.highwater(tp)
            seek_to = guards[work].stalled(tp, end, committed.get(tp), GAP_IDLE_S)
            if seek_to is not None:
                await read_again(tp, seek_to, f"at its end (the log ends at {end})")

    async def process(work: str, records: list[RawRecord]) -> Outcome:
        p = await processor()
        old = holder.get("old")
        if old is None:
            outcome: Outcome = await getattr(p, work)(records)
            return outcome
        # A roll-out: both versions take every record; the old one answers the metrics and
        # the feedback (its states hold the whole history until the switch).
        if work == "feedback":
            return await old.feedback(records)
        if work == "events":
            # An event needs its item's vector in the new version: wait for the backfill of
            # the items (a window held here holds back the stream; nothing is skipped).
            await items_ready.wait()
        async with rollout_lock:
            if work == "items":
                await p.items(records, written=live_items)
            else:
                await p.events(records)
        return await getattr(old, work)(records)

    async def backfill_then_switch(p: EventProcessor, store: Any) -> None:
        """A roll-out: the new version's items at once, then, once this worker holds every
        partition, its users from the topics; then the aliases point at it."""
        backfill = Backfill(
            settings,
            settings.consumer_group,
            p,
            rollout_lock,
            kinds={t: k for t, k in kinds.items() if k != "feedback"},
            chunk=settings.backfill_chunk,
            on_progress=functools.partial(backfill_progress, version),
        )
        backfill.live_items = live_items
        await with_retry(backfill.run_items, "backfill of the items")
        items_ready.set()
        while not holds_all(backfill.kinds):
            await asyncio.sleep(1.0)
        await with_retry(backfill.run_users, "backfill of the users")
        await with_retry(functools.partial(asyncio.to_thread, store.switch, version), "switch")
        log.warning(
            "roll-out: the aliases now serve %s; this worker keeps writing %s too (a roll-back "
            "stays fresh) until it restarts",
            version,
            old_version,
        )

    def backfill_progress(version: str, done: int, total: int) -> None:
        metrics.backfill.labels(version, "done").set(done)
        metrics.backfill.labels(version, "total").set(total)

    def holds_all(topics: dict[str, str]) -> bool:
        """This worker is assigned every partition of ``topics`` and its tables recovered
        (the backfill writes states of every user: one worker must hold them all)."""
        consumer: Any = app.consumer
        if consumer is None or app.in_recovery or getattr(app, "rebalancing", False):
            return False
        held = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        wanted = {
            (t, n)
            for t in topics
            for n in range(consumer.topic_partitions(t) or settings.topic_partitions)
        }
        if wanted <= held:
            return True
        if held and "waiting" not in said:
            log.warning("roll-out: the backfill waits until one worker holds every partition")
            said.add("waiting")
        return False

    async def send_letter(value: bytes, headers: list[tuple[str, bytes]]) -> None:
        delivered = await dlq_topic.send(value=value, headers=headers)  # queued
        await delivered  # acknowledged by the broker

    async def with_retry(call: Callable[[], Awaitable[T]], what: str) -> T:
        """Transient failures (Qdrant, the encoder or the broker away) are retried with
        backoff, never dead-lettered; meanwhile the agent takes no more records."""
        backoff = 0.5
        while True:
            try:
                return await call()
            except Exception as exc:
                metrics.retries.labels(what).inc()
                if isinstance(exc, StoreError):
                    metrics.qdrant_errors.inc()
                log.warning("%s failed (%s); retrying in %.1f s", what, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    @app.agent(items_topic, name="items")
    async def items(stream: Any) -> None:
        await run_windows(stream, "items")

    @app.agent(events_topic, name="events")
    async def user_events(stream: Any) -> None:
        await run_windows(stream, "events")

    @app.agent(feedback_topic, name="feedback")
    async def feedback(stream: Any) -> None:
        await run_windows(stream, "feedback")

    @app.task
    async def measure_loop_lag() -> None:
        """How late the event loop wakes up: CPU work on the loop shows here first."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(LOOP_LAG_EVERY_S)
            metrics.loop_lag.observe(max(0.0, loop.time() - asked - LOOP_LAG_EVERY_S))

    @app.timer(JOB_CHECK_S)
    async def maybe_finetune() -> None:
        """Start a fine-tuning job in its own process when enough examples arrived or
        enough time passed (streams/feedback.py); never two from this worker at once, and
        the job's lock keeps it to one per models root."""
        running = jobs.get("job")
        if running is not None and running.returncode is None:
            return
        if not trigger.due():
            return
        log_path = settings.data_dir / "finetune" / f"job-{int(time.time())}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as out:
            jobs["job"] = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "streams.cli",
                "finetune",
                "--feedback",
                "--steps",
                str(settings.finetune_steps),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        log.info(
            "fine-tuning job started on %d new examples (pid %d, log %s)",
            trigger.new,
            jobs["job"].pid,
            log_path,
        )
        metrics.finetune_jobs.labels("started").inc()
        trigger.started()
        watcher = asyncio.ensure_future(job_done(jobs["job"], log_path))
        watchers.add(watcher)  # held until done, so the task is not collected early
        watcher.add_done_callback(watchers.discard)

    async def job_done(job: asyncio.subprocess.Process, log_path: Path) -> None:
        code = await job.wait()
        outcome = {0: "finished", JOB_BUSY_EXIT: "busy"}.get(code, "failed")
        metrics.finetune_jobs.labels(outcome).inc()
        (log.info if code == 0 else log.warning)(
            "fine-tuning job %d %s (exit %d); log %s", job.pid, outcome, code, log_path
        )

    if settings.stats_file is not None:
        stats_file = settings.stats_file

        @app.timer(1.0)
        async def dump_stats() -> None:
            await asyncio.to_thread(stats.dump, stats_file)

    return app
