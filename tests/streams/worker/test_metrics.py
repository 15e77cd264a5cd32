"""Metrics, JSON logs, and the health, topics, forget and soak commands, without a broker."""

from __future__ import annotations

import logging
import socket
import sys

import orjson
import pytest
from prometheus_client import generate_latest

from streams.cli import main
from streams.errors import StreamError
from streams.worker.logs import JsonFormatter, logging_config
from streams.worker.metrics import Metrics
from tests.streams.kafka_helpers import free_port


def test_metrics_have_their_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.events.labels("clicks", "click").inc(3)
    assert b'interest_events_total{topic="clicks",type="click"} 3.0' in generate_latest(a.registry)
    assert b"interest_events_total{" not in generate_latest(b.registry)


def test_cache_ratios_are_read_at_scrape_time() -> None:
    m = Metrics()
    hits = {"item": 0.0}
    m.cache_ratios(lambda: hits["item"], lambda: 0.25)
    hits["item"] = 0.75
    text = generate_latest(m.registry).decode()
    assert "interest_item_cache_hit_ratio 0.75" in text
    assert "interest_text_cache_hit_ratio 0.25" in text


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StreamError, match=rf"127\.0\.0\.1:{port}.*INTEREST_METRICS_PORT"):
            Metrics().serve("127.0.0.1", port)


def test_health_says_ready_only_once_the_worker_is(capsys: pytest.CaptureFixture[str]) -> None:
    m = Metrics()
    port = free_port()
    m.serve("127.0.0.1", port)
    url = f"http://127.0.0.1:{port}/metrics"
    assert main(["health", "--url", url]) == 1
    assert "not ready" in capsys.readouterr().err
    m.ready.set(1)
    assert main(["health", "--url", url]) == 0
    assert "healthy" in capsys.readouterr().out


def test_health_without_a_worker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--url", f"http://127.0.0.1:{free_port()}/metrics"]) == 1
    assert "no worker answers" in capsys.readouterr().err


def test_health_with_metrics_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INTEREST_METRICS_PORT", "0")
    assert main(["health"]) == 1
    assert "metrics are off" in capsys.readouterr().err


def test_json_log_lines() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord(
        "streams.worker.app", logging.WARNING, __file__, 1, "lag %d", (5,), None
    )
    line = orjson.loads(formatter.format(record))
    assert line["level"] == "warning" and line["logger"] == "streams.worker.app"
    assert line["message"] == "lag 5" and "exc" not in line
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "streams.worker.app", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    assert "ValueError: boom" in orjson.loads(formatter.format(failed))["exc"]


def test_text_logs_keep_fausts_own_setup() -> None:
    assert logging_config("info", "text") is None
    config = logging_config("debug", "json")
    assert config is not None and config["root"]["level"] == "DEBUG"


def test_topics_without_a_broker_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INTEREST_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    assert main(["topics"]) == 2
    err = capsys.readouterr().err
    assert "no Kafka broker at 127.0.0.1:9" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["forget", " "], "the user id is empty"),
        (["forget", "u1", "--at", "nan"], "--at must be a time"),
        (["forget", "u1", "--at", "1e12"], "--at must be a time"),  # the far future
    ],
)
def test_forget_refuses_bad_requests_before_sending(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err
