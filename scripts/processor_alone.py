"""The events path without Kafka or Faust: EventProcessor.events on windows of synthetic
click/view events (500 items, 5,000 users, as `bench e2e`), the current model version and
its head, Qdrant Edge in a temporary folder, a dict for the state table, numpy's BLAS on
INTEREST_BLAS_THREADS threads as in the worker. Prints the CPU and wall time per event,
and the store's share, over the last 60% of the windows (the first 40% warm the states
up). With --profile: cProfile's top functions as well.

    .venv/bin/python scripts/processor_alone.py [--events 60000] [--model DIR] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import tempfile
import time
from pathlib import Path

import orjson
from threadpoolctl import threadpool_limits

from encoder.model import load_model
from encoder.registry import resolve_model_dir
from encoder.service import Encoder
from streams.bench.synthetic import WORDS
from streams.head import load_head
from streams.processor import EventProcessor, RawRecord
from streams.settings import load_settings
from streams.store import open_store
from streams.worker.app import processor_config

WINDOW, ITEMS, USERS = 256, 500, 5000


async def main(args: argparse.Namespace) -> None:
    settings = load_settings()
    threadpool_limits(settings.blas_threads, user_api="blas")  # as the worker (worker/main.py)
    version_dir = resolve_model_dir(args.model or settings.models_root)
    head = load_head(version_dir)
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(path=Path(tmp) / "qdrant")
        async with Encoder(load_model(version_dir), max_wait_ms=5) as encoder:
            states: dict[str, bytes] = {}
            config = processor_config(settings, head)
            proc = EventProcessor(encoder, store, states, config, head=head)
            await proc.start()
            await proc.items(
                [
                    RawRecord(
                        "items",
                        orjson.dumps(
                            {
                                "item_id": i,
                                "text": f"Movie {i}: "
                                + " ".join(rng.choice(WORDS) for _ in range(6)),
                            }
                        ),
                    )
                    for i in range(ITEMS)
                ]
            )

            def event(n: int) -> RawRecord:
                user = str(rng.randrange(USERS))
                value = {
                    "event_id": f"p{n}",
                    "user_id": user,
                    "item_id": rng.randrange(ITEMS),
                    "ts": time.time(),
                }
                return RawRecord(
                    rng.choice(["clicks", "views"]), orjson.dumps(value), key=user.encode()
                )

            windows = [
                [event(w * WINDOW + i) for i in range(WINDOW)] for w in range(args.events // WINDOW)
            ]
            warm = len(windows) * 2 // 5
            for window in windows[:warm]:
                await proc.events(window)
            profile = cProfile.Profile() if args.profile else None
            cpu0, wall0, write_s = time.process_time(), time.perf_counter(), 0.0
            if profile:
                profile.enable()
            for window in windows[warm:]:
                write_s += (await proc.events(window)).write_s
            if profile:
                profile.disable()
            n = (len(windows) - warm) * WINDOW
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        store.close()
    print(
        f"{n} events, model {version_dir.name}: CPU {cpu * 1e6 / n:.1f} us/event (all threads), "
        f"wall {wall * 1e6 / n:.1f} us/event, of which the Qdrant writes {write_s * 1e6 / n:.1f}; "
        f"state {sum(map(len, states.values())) / len(states):.0f} bytes a user"
    )
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--model", type=Path, default=None, help="version dir or models root")
    parser.add_argument("--profile", action="store_true")
    asyncio.run(main(parser.parse_args()))
