"""``interest-stream bench e2e``: broker, worker and producer on one machine, measured.

One run, three phases, against the local broker and worker subprocesses (their own topics,
consumer groups and embedded Qdrant in a temporary folder):

0. ceiling (the baseline, skipped with ``ceiling=False``): the same click/view events
   through the worker's Faust app with an agent that takes windows and only acknowledges
   them (no decoding, state, changelog or Qdrant): what Faust, aiokafka and the broker cost
   on this machine. ``share_of_ceiling`` = events_per_s / ceiling_events_per_s;
   ``cpu_ms_per_1k_events`` (and ``ceiling_cpu_ms_per_1k_events``): the worker process's
   own CPU time over the phase, per 1,000 events, which a busy machine does not change;
1. throughput: ``events`` click/view events (no text) produced as fast as the broker takes
   them; ``events_per_s`` = events / (first send -> the group has committed every one),
   i.e. sustained processing including the Qdrant writes;
   Then the capacity with 10% reviews (``events_per_s_with_reviews``): a fifth as many
   events, one in ten a review whose text the encoder reads on the same cores;
2. freshness: events at ``rate`` per second for ``seconds`` with 10% reviews (texts to
   encode), then at half the capacity with reviews (``freshness_half_capacity_*``: below
   capacity for the same mix, so the p99 is latency, not queueing); freshness = Qdrant acknowledged
   the user's write - the event's produce time (Kafka record timestamp), recorded by the
   worker for every event. Reported beside the two knobs that bound it: the window's
   wait (``window_ms``) and the encoder's (``encoder_max_wait_ms``).

Items (``items``, synthetic titles) are loaded and processed before either phase.

Scale-out (``workers``, e.g. ``(1, 2)``): for each count, that many worker processes in one
consumer group share one Qdrant server (``INTEREST_QDRANT_URL`` when set, else the local
binary, streams/store/server.py), each count on fresh topics and a collection prefix of its
own, and take the throughput phase's events: events per second, the workers' CPU time per
1,000 events together, and an oracle check: the users' event counts in the store add up to
the events sent (``lost`` and ``duplicated``: both 0 when nothing was).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from streams.bench.soak import cpu_seconds
from streams.bench.synthetic import load_items, synthetic_event
from streams.datasets.replay import publish
from streams.kafka.groups import wait_caught_up
from streams.settings import Settings, load_settings
from streams.store import QdrantStore, backend_for
from streams.store.server import LocalQdrant
from streams.worker.spawn import SpawnedWorker, private_settings, spawned_worker


def run_e2e(
    settings: Settings,
    *,
    events: int = 100_000,
    rate: float = 1000.0,
    seconds: float = 20.0,
    items: int = 500,
    users: int = 5000,
    ceiling: bool = True,
    workers: Sequence[int] = (),
    progress: bool = True,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="interest-bench-"))
    rng = random.Random(3)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    ceiling_per_s = ceiling_cpu = None
    if ceiling:
        say(f"[0/3] ceiling: {events} click/view events through a Faust agent that only acks")
        ceiling_per_s, ceiling_cpu = _ceiling(
            settings, workdir / "ceiling", events, users, items, progress
        )
    run = private_settings(settings, "bench")
    prefix, tag = run.topic_prefix, run.consumer_group
    with spawned_worker(run, workdir, settings.models_root) as worker:
        say(f"[1/3] loading {items} items (worker log: {worker.log})")
        load_items(run, worker, items, rng)

        say(f"[2/3] throughput: {events} click/view events at max rate")
        events_per_s, cpu_s = _throughput(run, [worker], events, users, items, progress)
        mixed = max(events // 5, 1)
        say(f"[2/3] throughput: {mixed} events with 10% reviews at max rate")
        mixed_per_s, _ = _throughput(
            run, [worker], mixed, users, items, progress, reviews=0.1, first=events
        )

        # below the capacity for the freshness phase's own mix: latency, not queueing
        half = round(mixed_per_s / 2, 1)
        fresh: dict[str, np.ndarray] = {}
        sent = events + mixed
        for label, at in (("fixed", rate), ("half", half)):
            n_fresh = int(at * seconds)
            say(f"[3/3] freshness ({label}): {n_fresh} events at {at:.0f}/s with 10% reviews")
            start_ms = time.time() * 1000
            recs = [
                synthetic_event(sent + n, rng, users, items, review=rng.random() < 0.1)
                for n in range(n_fresh)
            ]
            sent += n_fresh
            asyncio.run(publish(recs, run, at, progress, desc="produce"))
            wait_caught_up(
                run,
                tag,
                [f"{prefix}clicks", f"{prefix}views", f"{prefix}reviews"],
                timeout=600,
                check=worker.check,
            )
            time.sleep(1.5)  # the worker dumps its stats every second
            stats = orjson.loads(worker.stats_file.read_bytes())
            fresh[label] = np.asarray([f for p, f in stats["freshness"] if p >= start_ms])
    counts = stats["counts"]
    scale_out = None
    if workers:
        say(f"[+] scale-out: {events} events through {', '.join(map(str, workers))} worker(s)")
        scale_out = _scale_out(settings, workdir / "scale", workers, events, users, items, progress)
    return {
        "events": events,
        "events_per_s": round(events_per_s, 1),
        "events_per_s_with_reviews": round(mixed_per_s, 1),
        "ceiling_events_per_s": round(ceiling_per_s, 1) if ceiling_per_s else None,
        "share_of_ceiling": round(events_per_s / ceiling_per_s, 3) if ceiling_per_s else None,
        "cpu_ms_per_1k_events": round(cpu_s * 1e6 / events, 1),
        "ceiling_cpu_ms_per_1k_events": round(ceiling_cpu * 1e6 / events, 1)
        if ceiling_cpu is not None
        else None,
        "freshness_events": len(fresh["fixed"]),
        "freshness_rate": rate,
        "freshness_p50_ms": _percentile(fresh["fixed"], 50),
        "freshness_p99_ms": _percentile(fresh["fixed"], 99),
        "freshness_half_capacity_rate": half,
        "freshness_half_capacity_p50_ms": _percentile(fresh["half"], 50),
        "freshness_half_capacity_p99_ms": _percentile(fresh["half"], 99),
        "window_ms": settings.window_ms,
        "encoder_max_wait_ms": settings.encoder_max_wait_ms,
        "encoded_texts": counts.get("encoded_texts", 0),
        "dlq": counts.get("dlq", 0),
        "backend": backend_for(None, worker.qdrant_location, settings.qdrant_backend),
        "users": users,
        "items": items,
        "scale_out": scale_out,
    }


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def _throughput(
    run: Settings,
    workers: Sequence[SpawnedWorker],
    events: int,
    users: int,
    items: int,
    progress: bool,
    reviews: float = 0.0,
    first: int = 0,
) -> tuple[float, float]:
    """``events`` click/view events (a ``reviews`` share of them reviews; ids from
    ``first``) as fast as the broker takes them: (events per second from the first send
    until the workers' group has committed every one, the workers' CPU seconds meanwhile,
    together)."""
    rng = random.Random(4)  # the same events for the ceiling and the pipeline
    recs = [
        synthetic_event(first + n, rng, users, items, review=reviews > 0 and rng.random() < reviews)
        for n in range(events)
    ]
    cpu0 = sum(cpu_seconds(w.process.pid) for w in workers)
    t0 = time.time()
    asyncio.run(publish(recs, run, None, progress, desc="produce"))
    wait_caught_up(
        run,
        run.consumer_group,
        [run.topic(kind) for kind in ("clicks", "views", "reviews")[: 3 if reviews else 2]],
        timeout=1800,
        check=lambda: _check_all(workers),
    )
    per_s = events / (time.time() - t0)
    return per_s, sum(cpu_seconds(w.process.pid) for w in workers) - cpu0


def _events_in(worker: SpawnedWorker) -> int:
    """The events a worker took, from its stats file (0 before its first dump)."""
    if not worker.stats_file.exists():
        return 0
    return int(orjson.loads(worker.stats_file.read_bytes())["counts"].get("events_in", 0))


READY = b"Worker ready"  # Faust's log line once a worker's recovery is done


def _wait_ready(workers: Sequence[SpawnedWorker], timeout_s: float = 300.0) -> None:
    """Until the newest worker is ready and every earlier one is ready again after the
    rebalance it caused. A group whose members joined while others were mid-window has
    stalled here (README, Reliability: known gap), so workers join an idle group."""
    newest, earlier = workers[-1], workers[:-1]
    before = {id(w): w.log.read_bytes().count(READY) for w in earlier}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _check_all(workers)
        if READY in newest.log.read_bytes() and all(
            w.log.read_bytes().count(READY) > before[id(w)] for w in earlier
        ):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the workers were not ready within {timeout_s:g} s; logs: {newest.log}")


def _check_all(workers: Sequence[SpawnedWorker]) -> None:
    for w in workers:
        w.check()


def _scale_out(
    settings: Settings,
    workdir: Path,
    counts: Sequence[int],
    events: int,
    users: int,
    items: int,
    progress: bool,
) -> list[dict[str, Any]]:
    """The throughput phase through 1, 2, ... worker processes sharing one Qdrant server."""
    with contextlib.ExitStack() as stack:
        if settings.qdrant_url:
            key = settings.qdrant_api_key
            url, api_key = settings.qdrant_url, key.get_secret_value() if key else ""
        else:
            server = stack.enter_context(LocalQdrant.start(workdir / "qdrant-server", "bench"))
            url, api_key = server.url, server.api_key
        rows = []
        for n in counts:
            run = private_settings(settings, f"scale{n}w")
            prefix = f"{run.consumer_group}_"
            with contextlib.ExitStack() as procs:
                started: list[SpawnedWorker] = []
                for k in range(n):  # one at a time, each into an idle group (_wait_ready)
                    worker = procs.enter_context(
                        spawned_worker(
                            run,
                            workdir / f"{n}w-{k}",
                            settings.models_root,
                            server=(url, api_key, prefix),
                        )
                    )
                    started.append(worker)
                    _wait_ready(started)
                load_items(run, started[0], items, random.Random(3))
                per_s, cpu_s = _throughput(run, started, events, users, items, progress)
                time.sleep(1.5)  # the workers dump their stats every second
                taken = [_events_in(w) for w in started]
            store = QdrantStore.connect(url, api_key, prefix=prefix)
            try:
                counted = store.event_total()
            finally:
                store.close()
            rows.append(
                {
                    "workers": n,
                    "events_per_s": round(per_s, 1),
                    "cpu_ms_per_1k_events": round(cpu_s * 1e6 / events, 1),
                    "events_per_worker": taken,  # from each worker's stats: all took part
                    "counted": counted,
                    "lost": max(0, events - counted),
                    "duplicated": max(0, counted - events),
                }
            )
        return rows


def _ceiling(
    settings: Settings, workdir: Path, events: int, users: int, items: int, progress: bool
) -> tuple[float, float]:
    run = private_settings(settings, "ceiling")
    with spawned_worker(run, workdir, settings.models_root, module=__name__) as worker:
        # Warm up as the pipeline's worker does on its items: started, joined, fetching.
        warm = [
            synthetic_event(-1 - n, random.Random(n), users, items, False) for n in range(items)
        ]
        asyncio.run(publish(warm, run, None, progress=False))
        topics = [run.topic("clicks"), run.topic("views")]
        wait_caught_up(run, run.consumer_group, topics, timeout=600, check=worker.check)
        return _throughput(run, [worker], events, users, items, progress)


def ceiling_app(settings: Settings) -> Any:
    """The worker's Faust app and event agent with the work taken out: windows are taken
    exactly as the worker takes them, then acknowledged."""
    from streams.kafka.topics import EVENT_TOPICS
    from streams.worker.app import faust_app, raw_topic

    app = faust_app(settings)
    topic = raw_topic(app, *(settings.topic(t) for t in EVENT_TOPICS))

    @app.agent(topic, name="events")
    async def acknowledge(stream: Any) -> None:
        within = settings.window_ms / 1000
        async for window in stream.noack_take(settings.window_events, within=within):
            for event in window:
                await stream.ack(event)

    return app


if __name__ == "__main__":  # the ceiling's worker process (spawned by _ceiling)
    import faust

    faust.Worker(ceiling_app(load_settings()), loglevel="warning").execute_from_commandline()
