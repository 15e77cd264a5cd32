"""Client security, in one place, for every Kafka client of the project.

    AIOKafkaConsumer(bootstrap_servers=..., **kafka_security(settings))   # aiokafka
    faust.App(..., broker_credentials=broker_credentials(settings))       # Faust

PLAINTEXT, TLS (``SSL``, the CA file if given, else the system's), or SASL (PLAIN, SCRAM)
over plaintext or TLS: ``INTEREST_KAFKA_*`` in the settings.
"""

from __future__ import annotations

import ssl
from typing import Any

from streams.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (the CA file if given, else the system's)."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return create_ssl_context(cafile=cafile)


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
