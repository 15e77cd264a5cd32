"""One frozen settings object per process; the only module that reads the environment.

Every field can be set as ``INTEREST_<FIELD>`` (e.g. ``INTEREST_KAFKA_BOOTSTRAP``) or in a
``.env`` file. Everything below the CLI receives plain constructor arguments.

    settings = load_settings()               # from the environment; SettingsError if bad
    settings = Settings(topic_prefix="t1.")  # in tests

A bad value is a :class:`SettingsError` that names each ``INTEREST_*`` variable and what is
wrong with it, and never echoes a value (a secret may sit beside the bad one).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.errors import StreamError

DAY = 86_400.0
PLACEHOLDER = "change-me"  # how docker/.env.example's secrets start: refused as secrets


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INTEREST_",
        env_file=".env",
        frozen=True,
        extra="ignore",
        allow_inf_nan=False,  # NaN or infinity works for no setting
        hide_input_in_errors=True,
    )

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    topic_prefix: str = ""
    topic_partitions: int = Field(4, ge=1)
    # Replicas of every topic the stream creates, Faust's changelogs included, and the
    # replicas a write must reach (a real cluster: 3 and 2; None: the broker's default).
    topic_replication: int = Field(1, ge=1)
    topic_min_insync_replicas: int | None = Field(None, ge=1)
    consumer_group: str = "interest-stream"
    # How long the group waits for a silent worker before its partitions move on.
    kafka_session_timeout_s: float = Field(60.0, gt=0)
    # Static membership: a worker restarted under the same id takes its partitions back at
    # once, without waiting out its dead predecessor's session (unset: dynamic membership).
    consumer_instance_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,200}$")

    # Qdrant: a URL means a server; without one, the embedded store under data_dir.
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_path: Path | None = None  # embedded store folder; ":memory:" = local mode in memory
    qdrant_backend: Literal["edge", "local"] = "edge"  # the embedded store, when no URL is set
    # Of every collection and alias name on a server (deployments sharing one keep apart).
    qdrant_collection_prefix: str = Field("", pattern=r"^[A-Za-z0-9_-]{0,64}$")
    # A user's recent item ids in its payload: one JSON string (cheap on Qdrant Edge) or a
    # payload list (a downstream filter reads it without parsing).
    recent_items_payload: Literal["json", "list"] = "json"

    # User states: in memory (restored from the changelog at every start), or in RocksDB
    # under data_dir/faust (restored from the changelog only past what is on disk).
    state_store: Literal["memory", "rocksdb"] = "memory"

    # Files
    data_dir: Path = Path("data")
    model_dir: Path | None = None  # a version directory or a models root (default data/models)

    # Interest math (DESIGN.md, "Interest math")
    half_life_short_s: float = Field(1 * DAY, gt=0)
    half_life_long_s: float = Field(30 * DAY, gt=0)
    weight_click: float = 1.0
    weight_view: float = 0.5
    weight_review: float = 2.0
    weight_negative: float = -1.0
    # rating r weighs 2^((r - rating_center) / rating_scale): 5 -> 2, 3 -> 1, 1 -> 0.5
    rating_center: float = 3.0
    rating_scale: float = Field(2.0, gt=0)
    # Event ids remembered per user (16 bytes each); older events are refused as TooLate.
    dedupe_window: int = Field(4096, ge=1)
    # Also refuse events older than the user's latest event time minus this (None: no bound).
    allowed_lateness_s: float | None = Field(None, gt=0)
    concept_temperature: float = Field(0.05, gt=0)
    concepts_top: int = Field(3, ge=0)
    concept_vocab: Path | None = None  # one label per line; default: the MovieLens genres

    # Windows and batches
    window_events: int = Field(256, ge=1)  # flush a partition's window after N events ...
    # ... or T ms after its first event. 100 ms (was 250): at 400 events/s with 10% reviews
    # the freshness p99 halves and the capacity stays (scripts/window_ab.sh, benchmarks.md).
    window_ms: float = Field(100.0, gt=0)
    item_wait_ms: float = Field(2000.0, ge=0)  # look again this much later for an unknown item
    # ... then the event is parked (streams/parking.py) and tried again every park_retry_s,
    # until park_max_s after its parking: then it is dead-lettered as UnknownItem.
    park_retry_s: float = Field(5.0, gt=0)
    park_max_s: float = Field(3600.0, gt=0)
    item_cache_entries: int = Field(100_000, ge=0)
    state_cache_mb: float = Field(32.0, ge=0)
    encoder_max_wait_ms: float = Field(5.0, ge=0)
    encoder_max_batch_tokens: int = Field(32_768, ge=1)
    encoder_max_pending: int = Field(8192, ge=1)
    encoder_provider: Literal["auto", "cuda", "cpu"] = "auto"
    encoder_threads: int | None = Field(None, ge=1)  # ONNX Runtime CPU threads; default: all cores
    # numpy's BLAS threads in a worker. Its products are small; an idle BLAS thread spins on a
    # core between them (docs/benchmarks.md: scripts/worker_threads.py).
    blas_threads: int = Field(1, ge=1)
    # A window whose texts are not encoded within this long is retried (a stalled model)
    encoder_timeout_s: float = Field(30.0, gt=0)
    # A window that fails with an unexpected error (a bug) is retried this many times, then
    # its records are tried one by one and those failing alone are dead-lettered.
    unexpected_retries: int = Field(3, ge=0)
    # Liveness: records waiting and no window completed for this long -> not ready (health)
    stuck_after_s: float = Field(120.0, gt=0)

    # Fine-tuning from feedback: a worker starts `interest-stream finetune --feedback` in its
    # own process once this many new examples arrived (0: never by itself), or once
    # finetune_every_s passed with at least one new example.
    finetune_min_examples: int = Field(0, ge=0)
    finetune_every_s: float = Field(86_400.0, gt=0)
    finetune_steps: int = Field(100, ge=1)

    # Roll-out (README): with CURRENT newer than the version the aliases serve, write both
    # versions, backfill the new one from the topics, then switch the aliases to it.
    rollout: bool = False
    backfill_chunk: int = Field(2000, ge=1)  # records read and merged at a time

    # Where the worker writes its counters and freshness samples each second (benchmarks)
    stats_file: Path | None = None

    # Operations: Prometheus metrics at http://<metrics_host>:<metrics_port>/metrics (port 0:
    # off; the compose stack listens on 0.0.0.0), and logs (text, or one JSON object a line)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9108, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"

    # Records
    max_text_bytes: int = Field(64 * 1024, ge=1)
    min_ts: float = Field(631_152_000.0, ge=0)  # 1990-01-01: older timestamps are errors
    max_future_s: float = Field(DAY, ge=0)  # tolerated clock skew into the future
    # Forget requests arrive on the forget topic; also on clicks, views and reviews while on
    # (older producers); off, those are dead-lettered, so that ACLs decide who may forget.
    forget_on_event_topics: bool = True

    @model_validator(mode="after")
    def _check(self) -> Settings:
        for name in ("weight_click", "weight_view", "weight_review", "weight_negative"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"INTEREST_{name.upper()} must be finite")
        placeholders = [
            f"INTEREST_{name.upper()}"
            for name in ("kafka_sasl_password", "qdrant_api_key")
            if (secret := getattr(self, name)) is not None
            and secret.get_secret_value().startswith(PLACEHOLDER)
        ]
        if placeholders:
            raise ValueError(
                f"{' and '.join(placeholders)} still the placeholder of .env.example: "
                "set secrets of your own (e.g. `openssl rand -hex 32`)"
            )
        if (self.topic_min_insync_replicas or 1) > self.topic_replication:
            raise ValueError(
                "INTEREST_TOPIC_MIN_INSYNC_REPLICAS must not exceed INTEREST_TOPIC_REPLICATION"
            )
        if self.half_life_short_s > self.half_life_long_s:
            raise ValueError("INTEREST_HALF_LIFE_SHORT_S must not exceed INTEREST_HALF_LIFE_LONG_S")
        if (self.kafka_sasl_mechanism is None) != (self.kafka_sasl_username is None):
            raise ValueError(
                "set INTEREST_KAFKA_SASL_MECHANISM and INTEREST_KAFKA_SASL_USERNAME together"
            )
        if (self.kafka_sasl_mechanism is None) == self.kafka_security_protocol.startswith("SASL"):
            raise ValueError(
                "INTEREST_KAFKA_SECURITY_PROTOCOL SASL_PLAINTEXT or SASL_SSL goes with "
                "INTEREST_KAFKA_SASL_MECHANISM, and only with it"
            )
        return self

    @property
    def half_lives(self) -> dict[str, float]:
        return {"short": self.half_life_short_s, "long": self.half_life_long_s}

    @property
    def models_root(self) -> Path:
        return self.model_dir or self.data_dir / "models"

    @property
    def qdrant_location(self) -> Path:
        default = "qdrant-edge" if self.qdrant_backend == "edge" else "qdrant"
        return self.qdrant_path or self.data_dir / default

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


# What each setting means: `interest-stream settings` prints it beside the type and default
# (streams/cli/settings.py); a test keeps it in step with the fields.
MEANINGS = {
    # Kafka
    "kafka_bootstrap": "Kafka bootstrap servers, host:port[,host:port]",
    "kafka_security_protocol": "how clients talk to the brokers (SASL_SSL for a secured cluster)",
    "kafka_sasl_mechanism": "SASL login mechanism; goes with a SASL_* protocol and a username",
    "kafka_sasl_username": "SASL user",
    "kafka_sasl_password": "SASL password (a secret: never printed)",
    "kafka_ssl_cafile": "CA certificate (PEM) the client trusts for SSL / SASL_SSL",
    "topic_prefix": (
        "prefix of every topic and consumer-group changelog (deployments on one cluster)"
    ),
    "topic_partitions": (
        "partitions of the topics the stream creates: the most workers that share work"
    ),
    "topic_replication": (
        "replicas of every topic the stream creates, changelogs included (a real cluster: 3)"
    ),
    "topic_min_insync_replicas": (
        "replicas a write must reach (a real cluster: 2; unset: the broker's default)"
    ),
    "consumer_group": "the workers' consumer group (and the Faust app id)",
    "consumer_instance_id": (
        "static membership: a worker restarted under the same id gets its partitions back "
        "at once (one id per worker; unset: dynamic)"
    ),
    "kafka_session_timeout_s": (
        "how long the group waits for a silent worker before its partitions move on"
    ),
    # Qdrant
    "qdrant_url": "a Qdrant server; unset: the embedded store under data_dir",
    "qdrant_api_key": "the server's API key (a secret: never printed)",
    "qdrant_path": "the embedded store's folder; ':memory:' for local mode in memory",
    "qdrant_backend": (
        "the embedded store when no URL is set: Qdrant Edge or qdrant-client local mode"
    ),
    "qdrant_collection_prefix": (
        "prefix of every collection and alias on a server (deployments sharing one)"
    ),
    "recent_items_payload": (
        "a user's recent_items as one JSON string (fast on Qdrant Edge) or a payload list "
        "(read by downstream filters without parsing; for a server)"
    ),
    "state_store": (
        "user states in memory (restored from the changelog at start) or in RocksDB under data_dir"
    ),
    # Files
    "data_dir": "where the worker keeps its files (embedded store, RocksDB, models by default)",
    "model_dir": "a model version directory or a models root (default: data_dir/models)",
    # Interest math
    "half_life_short_s": "half-life of the short interest vector, seconds (a head serves its own)",
    "half_life_long_s": "half-life of the long interest vector, seconds",
    "weight_click": "weight of a click (without a head)",
    "weight_view": "weight of a view (without a head)",
    "weight_review": "weight of a review (without a head)",
    "weight_negative": "weight of a negative event",
    "rating_center": "a rated event weighs 2^((rating - center) / scale): 5 -> 2, 3 -> 1, 1 -> 0.5",
    "rating_scale": "see rating_center",
    "dedupe_window": (
        "event ids remembered per user (16 bytes each); older events are refused as TooLate"
    ),
    "allowed_lateness_s": (
        "also refuse events older than the user's latest event minus this (unset: no bound)"
    ),
    "concept_temperature": "softmax temperature of the concepts in a user's payload",
    "concepts_top": "concepts kept in a user's payload",
    "concept_vocab": "one concept label per line (default: the MovieLens genres)",
    # Windows and batches
    "window_events": "a partition's window is processed after this many events ...",
    "window_ms": "... or this many ms after its first event",
    "item_wait_ms": "look again this much later for an event's unknown item, then park the event",
    "park_retry_s": "a parked event is tried again this often ...",
    "park_max_s": "... until this long after its parking; then dead-lettered as UnknownItem",
    "item_cache_entries": "item vectors cached in memory (0: none)",
    "state_cache_mb": (
        "user states kept decoded beside the table's bytes, newest written first, up to "
        "this many MB of state bytes (decoded: up to about 2x that; 0: none)"
    ),
    "encoder_max_wait_ms": "the encoder waits at most this long to fill a micro-batch",
    "encoder_max_batch_tokens": "tokens in one encoder micro-batch at most",
    "encoder_max_pending": "texts waiting for the encoder at most (callers wait beyond: bounded)",
    "encoder_provider": "ONNX Runtime provider: auto (CUDA when there is a GPU), cuda or cpu",
    "encoder_threads": "ONNX Runtime CPU threads (default: all cores)",
    "blas_threads": "numpy's BLAS threads in a worker (more only spin between small products)",
    "encoder_timeout_s": "a window whose texts are not encoded within this long is retried",
    "unexpected_retries": (
        "a window failing with an unexpected error is retried this often, then split"
    ),
    "stuck_after_s": "records waiting and no window done for this long: not ready (health)",
    # Fine-tuning
    "finetune_min_examples": (
        "start a fine-tuning job once this many new examples arrived (0: never)"
    ),
    "finetune_every_s": "or once this long passed with at least one new example",
    "finetune_steps": "steps of an encoder fine-tuning round",
    # Roll-out
    "rollout": (
        "write both versions, backfill the new one, then switch the aliases (README, Roll-out)"
    ),
    "backfill_chunk": "records a backfill reads and merges at a time",
    # Operations
    "stats_file": (
        "where the worker writes its counters and freshness samples each second (benchmarks)"
    ),
    "metrics_host": "address of the Prometheus endpoint",
    "metrics_port": "port of the Prometheus endpoint (0: off)",
    "log_level": "log level",
    "log_format": "logs as text, or one JSON object a line",
    # Records
    "max_text_bytes": "a review's or an item's text at most, in UTF-8 bytes",
    "min_ts": "events older than this (epoch seconds) are dead-lettered",
    "max_future_s": "tolerated clock skew into the future, seconds",
    "forget_on_event_topics": (
        "take forget requests on clicks, views and reviews too (off: only the forget topic)"
    ),
}


class SettingsError(StreamError):
    """Settings that cannot work: each problem names its ``INTEREST_*`` variable."""


def load_settings(**overrides: object) -> Settings:
    """The settings from the environment (and ``overrides``), or a :class:`SettingsError`
    with one line per problem and no value in it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            where = [str(part) for part in err["loc"]]
            name = f"INTEREST_{where[0].upper()}" if where else "the settings"
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if where else message)
        raise SettingsError("bad settings: " + "; ".join(problems)) from None
