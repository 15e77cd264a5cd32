"""``interest-stream bench soak``: a long run at a steady rate, memory and lag sampled.

A worker subprocess on private topics (as ``bench e2e``) takes ``rate`` click/view events
per second, with 10% reviews, for ``minutes``. Every ``sample_s`` seconds the soak records
the worker's resident memory (``/proc/<pid>/status``) and the group's lag (records not yet
committed). The promise it checks: resident memory stays flat once warm, and lag stays
bounded, i.e. the worker keeps up.

    result = run_soak(load_settings(), minutes=30, rate=500)
    result["rss_mb"], result["lag"]      # first / last / max of the samples
    result["rss_change_second_half"]     # last sample against the first half's last
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.bench.synthetic import load_items, synthetic_event
from streams.kafka.client import kafka_security
from streams.kafka.groups import group_lag
from streams.kafka.topics import EVENT_TOPICS
from streams.settings import Settings
from streams.worker.spawn import private_settings, spawned_worker


def resident_mb(pid: int) -> float:
    """A process's resident memory (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time a process has used so far, user and system, all its threads
    (``/proc/<pid>/stat``), or one of them (``thread``: ``/proc/<pid>/task/<thread>/stat``):
    a figure that does not depend on how busy the machine is."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def run_soak(
    settings: Settings,
    *,
    minutes: float,
    rate: float,
    users: int = 5000,
    items: int = 500,
    sample_s: float = 10.0,
    progress: bool = True,
) -> dict[str, Any]:
    run = private_settings(settings, "soak")
    workdir = Path(tempfile.mkdtemp(prefix="interest-soak-"))
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    with spawned_worker(run, workdir, settings.models_root) as worker:
        say(f"loading {items} items (worker log: {worker.log})")
        load_items(run, worker, items, random.Random(3))
        say(f"soak: {rate:.0f} events/s for {minutes:.0f} min, a sample every {sample_s:.0f} s")
        samples, sent = asyncio.run(
            _produce(run, worker.process.pid, minutes * 60, rate, users, items, sample_s, say)
        )
        worker.check()
    return summarize(samples, minutes, rate, sent)


def summarize(
    samples: list[dict[str, Any]], minutes: float, rate: float, sent: int
) -> dict[str, Any]:
    """The soak's figures from its samples. The memory promise is read at two points: the
    first half's last sample (warm: every user seen, the caches full) and the last one;
    ``rss_change_second_half`` is the relative change between them (flat: near 0)."""
    if not samples:
        raise ValueError("the soak took no sample: run it longer than --sample-s")
    rss = [s["rss_mb"] for s in samples]
    lag = [s["lag"] for s in samples]
    half = len(rss) // 2
    mid = rss[max(half - 1, 0)]
    return {
        "minutes": minutes,
        "rate": rate,
        "events": sent,
        "events_per_s": round(sent / (minutes * 60), 1),
        "rss_mb": {"first": rss[0], "first_half_last": mid, "last": rss[-1], "max": max(rss)},
        "rss_change_second_half": round(rss[-1] / mid - 1, 3),
        # Growth between the first and the second half's means.
        "rss_growth_mb": round(sum(rss[half:]) / (len(rss) - half) - sum(rss[:half]) / half, 1)
        if half
        else None,
        "lag": {"first": lag[0], "last": lag[-1], "max": max(lag)},
        "samples": samples,
    }


async def _produce(
    run: Settings,
    pid: int,
    seconds: float,
    rate: float,
    users: int,
    items: int,
    sample_s: float,
    say: Any,
) -> tuple[list[dict[str, Any]], int]:
    producer = AIOKafkaProducer(
        bootstrap_servers=run.kafka_bootstrap, linger_ms=5, **kafka_security(run)
    )
    await producer.start()
    rng = random.Random(5)
    samples: list[dict[str, Any]] = []
    topics = [run.topic(t) for t in EVENT_TOPICS]
    started = time.perf_counter()
    next_sample = started
    n = 0
    try:
        while (elapsed := time.perf_counter() - started) < seconds:
            ahead = n / rate - elapsed
            if ahead > 0:
                await asyncio.sleep(ahead)
            rec = synthetic_event(n, rng, users, items, review=rng.random() < 0.1)
            await producer.send(
                run.topic(rec.topic), orjson.dumps(rec.value), key=rec.key.encode()
            )  # queued; a full buffer makes this wait (the producer's own bound)
            n += 1
            if time.perf_counter() >= next_sample:
                next_sample += sample_s
                lag = await group_lag(run, run.consumer_group, topics)
                sample = {
                    "s": round(time.perf_counter() - started, 1),
                    "sent": n,
                    "rss_mb": round(resident_mb(pid), 1),
                    "lag": lag,
                }
                samples.append(sample)
                say(f"  {sample}")
        await producer.flush()
    finally:
        await producer.stop()
    return samples, n
