"""Running a worker process: topics, metrics endpoint, the Faust app, Faust's worker loop.

run_worker(load_settings())                                  # interest-stream worker
run_worker(settings, store_factory=lambda s: faulty)    # the fault scenarios' worker
"""

from __future__ import annotations

import sys

import faust
from threadpoolctl import threadpool_limits

from streams.kafka.topics import ensure_topics
from streams.settings import Settings
from streams.store import store_for
from streams.worker.app import StoreFactory, build_app
from streams.worker.logs import logging_config
from streams.worker.metrics import Metrics


class StreamWorker(faust.Worker):
    """Faust's worker process, stopping in bounded time.

    Faust waits on a stop until every record its agents took is acknowledged
    (``stream_wait_empty``). A window retrying against a Qdrant that is away would hold a
    SIGTERM for as long as the outage lasts (compose kills after 10 s). On a stop the worker
    does not wait: what it acknowledged is committed, the rest is read again after the
    restart, and nothing unwritten is ever acknowledged. A rebalance still waits (Faust's
    default), since there the records move to another worker while this one runs on.
    """

    async def on_stop(self) -> None:
        self.app.conf.stream_wait_empty = False
        await super().on_stop()


def run_worker(
    settings: Settings, loglevel: str | None = None, store_factory: StoreFactory = store_for
) -> None:
    """Create the missing topics, serve the metrics, run the agents until stopped."""
    threadpool_limits(settings.blas_threads, user_api="blas")
    created = ensure_topics(settings)
    if created:
        print(f"created topics {created}", file=sys.stderr)
    metrics = Metrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_host, settings.metrics_port)
    app = build_app(settings, metrics, store_factory)
    level = loglevel or settings.log_level
    worker = StreamWorker(
        app, loglevel=level, logging_config=logging_config(level, settings.log_format)
    )
    worker.execute_from_commandline()
