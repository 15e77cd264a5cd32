"""Worker logs: Faust's text lines, or one JSON object per line (``INTEREST_LOG_FORMAT=json``).

    faust.Worker(app, loglevel="info", logging_config=logging_config("info", "json"))

A JSON line: ``{"ts": ..., "level": "info", "logger": "streams.worker.app", "message": "...",
"pid": ...}``, plus ``"exc"`` with the traceback when there is one.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def logging_config(level: str, fmt: str) -> dict[str, Any] | None:
    """A ``logging.config.dictConfig`` for the worker; None leaves Faust's own (text)."""
    if fmt == "text":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
