"""Client security, in one place, for every Kafka client of the project.

    AIOKafkaConsumer(bootstrap_servers=..., **kafka_security(settings))   # aiokafka
    faust.App(..., broker_credentials=broker_credentials(settings))       # Faust

PLAINTEXT, TLS (``SSL``, the CA file if given, else the system's), or SASL (PLAIN, SCRAM)
over plaintext or TLS: ``INTEREST_KAFKA_*`` in the settings.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from streams.errors import StreamError
from streams.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (the CA file if given, else the system's)."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    cafile = settings.kafka_ssl_cafile
    if cafile is not None and not cafile.is_file():
        raise StreamError(f"INTEREST_KAFKA_SSL_CAFILE {cafile}: no such file")
    try:
        return create_ssl_context(cafile=str(cafile) if cafile else None)
    except (ssl.SSLError, OSError) as exc:
        raise StreamError(f"INTEREST_KAFKA_SSL_CAFILE {cafile}: not a CA file ({exc})") from None


def unreachable(settings: Settings, exc: BaseException, logged: str = "") -> StreamError:
    """A one-line error for a broker that did not answer as configured: a refused login, a
    failed TLS handshake, a listener of another protocol, or no broker at all. ``logged``:
    what aiokafka logged meanwhile (it logs a refused login and raises "Unable to
    bootstrap")."""
    protocol, where = settings.kafka_security_protocol, settings.kafka_bootstrap
    name = exc.__class__.__name__
    if isinstance(exc, ssl.SSLError):
        return StreamError(
            f"TLS with the broker at {where} failed ({name}: {exc}): check "
            "INTEREST_KAFKA_SSL_CAFILE, and that the listener speaks TLS"
        )
    said = f"{name} {exc} {exc.__cause__!r} {logged}"
    if any(word in said for word in ("Sasl", "Authentication", "Authorization")):
        return StreamError(
            f"the broker at {where} refused the login: check INTEREST_KAFKA_SASL_MECHANISM, "
            "_USERNAME and _PASSWORD"
        )
    if protocol != "PLAINTEXT":
        return StreamError(
            f"the broker at {where} did not answer over {protocol} ({name}: {exc}): is the "
            "broker up, and does that listener speak INTEREST_KAFKA_SECURITY_PROTOCOL?"
        )
    return StreamError(
        f"no Kafka broker at {where} ({name}: {exc}); start one with `interest-stream kafka "
        "start`, or point INTEREST_KAFKA_BOOTSTRAP at yours"
    )


def kafka_security(settings: Settings) -> dict[str, object]:
    """aiokafka keyword arguments for the configured SASL / TLS options."""
    options: dict[str, object] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": password.get_secret_value() if password else None,
        }
    return options


def broker_credentials(settings: Settings) -> Any:
    """Faust's credentials for the security protocol: SASL (over TLS for SASL_SSL), TLS
    alone, or none."""
    import faust

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


class LoggedErrors(logging.Handler):
    """Collects aiokafka's warnings and errors while it is installed (``with`` block)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> LoggedErrors:
        logging.getLogger("aiokafka").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("aiokafka").removeHandler(self)

    @property
    def text(self) -> str:
        return " ".join(self.messages[-5:])
