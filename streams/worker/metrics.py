"""The worker's Prometheus metrics, served over HTTP on ``metrics_port`` (0 turns them off).

    metrics = Metrics()                     # its own registry: tests build as many as they like
    metrics.serve("0.0.0.0", 9108)          # GET /metrics
    metrics.events.labels(topic="clicks", type="click").inc()

Names and what moves them (the Grafana dashboard in ``docker/grafana`` plots these):

- ``interest_events_total{topic,type}``: valid records taken (items count as type ``item``);
  ``interest_dlq_total{error}``: records dead-lettered, by error class;
  ``interest_duplicate_events_total``, ``interest_forgotten_events_total``;
  ``interest_forgotten_users_total``; ``interest_unknown_item_events_total``: feedback
  about an item not in the store; ``interest_parked_events_total`` and
  ``interest_parked_waiting``: events parked for their item (streams/parking.py);
- ``interest_encoder_batch_rows`` and ``interest_encoder_batch_seconds``: one observation per
  encoder batch; ``interest_texts_encoded_total``: texts run through the model (cache misses);
- ``interest_item_cache_hit_ratio``, ``interest_text_cache_hit_ratio``: read at scrape time;
- ``interest_qdrant_write_seconds{collection}``: one batched upsert (``users`` or ``items``);
  ``interest_qdrant_errors_total``: failed Qdrant calls (each retried with backoff);
  ``interest_retries_total{what}``: every transient failure retried;
  ``interest_unexpected_errors_total{what}``: errors that are bugs (logged with a traceback);
- ``interest_backfill_records{version,of}``: a roll-out's backfill, records ``done`` and
  ``total``;
- ``interest_freshness_seconds{clock}``: per event, its user's Qdrant write acknowledged minus
  the event's ``produce`` time (Kafka record timestamp) or its ``event`` time (``ts``);
- ``interest_consumer_lag{topic,partition}``: records not yet committed, per assigned partition;
- ``interest_event_loop_lag_seconds``: how late the event loop wakes (sampled every 0.25 s);
- ``interest_finetune_jobs_total{outcome}``: jobs started by the feedback trigger, and their
  ends (``finished``, ``busy``: another job held the lock, ``failed``);
- ``interest_model_info{version}``: 1 for the model version this worker writes;
  ``interest_worker_ready``: 1 once the model is loaded and Qdrant answered, 0 while stuck
  (the healthcheck); ``interest_worker_stuck``: 1 while records wait and no window completed
  for ``INTEREST_STUCK_AFTER_S``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from streams.errors import StreamError

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FRESHNESS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0)
ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.events = Counter(
            "interest_events", "Valid records taken", ["topic", "type"], registry=r
        )
        self.dlq = Counter(
            "interest_dlq", "Records sent to the dead-letter topic", ["error"], registry=r
        )
        self.duplicates = Counter(
            "interest_duplicate_events", "Events skipped as already folded (event_id)", registry=r
        )
        self.unknown_items = Counter(
            "interest_unknown_item_events",
            "Feedback signals skipped: their item is not in the store",
            registry=r,
        )
        self.parked = Counter(
            "interest_parked_events",
            "Events parked because their item was not in the catalogue yet (first parking)",
            registry=r,
        )
        self.parked_waiting = Gauge(
            "interest_parked_waiting",
            "Records in the parked topic not yet taken again (this worker's partitions)",
            registry=r,
        )
        self.forgotten_events = Counter(
            "interest_forgotten_events",
            "Events skipped: at or before their user's forget time",
            registry=r,
        )
        self.forgotten_users = Counter(
            "interest_forgotten_users", "Users forgotten (forget records)", registry=r
        )
        self.encoder_batch_rows = Histogram(
            "interest_encoder_batch_rows", "Texts per encoder batch", buckets=ROWS, registry=r
        )
        self.encoder_batch_seconds = Histogram(
            "interest_encoder_batch_seconds",
            "Time of one encoder batch (padding and ONNX Runtime)",
            buckets=SECONDS,
            registry=r,
        )
        self.texts_encoded = Counter(
            "interest_texts_encoded", "Texts run through the model (cache misses)", registry=r
        )
        self.item_cache_hit_ratio = Gauge(
            "interest_item_cache_hit_ratio", "Item vectors found in the worker's cache", registry=r
        )
        self.text_cache_hit_ratio = Gauge(
            "interest_text_cache_hit_ratio", "Texts found in the encoder's cache", registry=r
        )
        self.qdrant_write_seconds = Histogram(
            "interest_qdrant_write_seconds",
            "One batched Qdrant upsert",
            ["collection"],
            buckets=SECONDS,
            registry=r,
        )
        self.qdrant_errors = Counter(
            "interest_qdrant_errors", "Failed Qdrant calls (retried)", registry=r
        )
        self.retries = Counter(
            "interest_retries", "Transient failures retried with backoff", ["what"], registry=r
        )
        self.unexpected = Counter(
            "interest_unexpected_errors",
            "Unexpected errors (bugs), logged with their traceback",
            ["what"],
            registry=r,
        )
        self.freshness = Histogram(
            "interest_freshness_seconds",
            "Qdrant acknowledged the user's write minus the event's produce or event time",
            ["clock"],
            buckets=FRESHNESS,
            registry=r,
        )
        self.lag = Gauge(
            "interest_consumer_lag",
            "Records not yet committed by the group, per assigned partition",
            ["topic", "partition"],
            registry=r,
        )
        self.model = Gauge(
            "interest_model_info", "The model version this worker writes", ["version"], registry=r
        )
        self.loop_lag = Histogram(
            "interest_event_loop_lag_seconds",
            "How late the event loop woke from a short sleep (CPU work on the loop)",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
            registry=r,
        )
        self.finetune_jobs = Counter(
            "interest_finetune_jobs",
            "Fine-tuning jobs this worker started, and how they ended",
            ["outcome"],
            registry=r,
        )
        self.ready = Gauge(
            "interest_worker_ready",
            "1 once the model is loaded and Qdrant answered, 0 while stuck",
            registry=r,
        )
        self.stuck = Gauge(
            "interest_worker_stuck",
            "1 while records wait and no window completed for INTEREST_STUCK_AFTER_S",
            registry=r,
        )
        self.backfill = Gauge(
            "interest_backfill_records",
            "A roll-out's backfill: records read so far (done) and to read (total)",
            ["version", "of"],
            registry=r,
        )

    def cache_ratios(self, item: Callable[[], float], text: Callable[[], float]) -> None:
        """Read the cache hit ratios from these callables at each scrape."""
        self.item_cache_hit_ratio.set_function(item)
        self.text_cache_hit_ratio.set_function(text)

    def encoder_batch(self, rows: int, tokens: int, seconds: float) -> None:
        """The encoder's batch hook (``MicroBatcher.on_batch``)."""
        self.encoder_batch_rows.observe(rows)
        self.encoder_batch_seconds.observe(seconds)

    def serve(self, host: str, port: int) -> None:
        """Serve ``/metrics`` from a daemon thread; a clear error when the port is taken."""
        try:
            start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise StreamError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror}); set "
                "INTEREST_METRICS_PORT to a free port, or 0 to turn metrics off"
            ) from exc
