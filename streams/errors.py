"""Errors of the streaming side, rooted in :class:`StreamError`.

    StreamError
     ├── RecordError        a record that can never be processed: dead-lettered, never retried
     │    ├── InvalidJson, MissingField, KeyMismatch, ... (the ``error-type`` header)
     │    └── UnexpectedError    a bug, every time for this record alone (see below)
     ├── TransientError     the world is away for a while: retried with back-off, never
     │    │                 dead-lettered (the worker takes no more records meanwhile)
     │    ├── StoreError         Qdrant refused or failed a call (streams.store)
     │    ├── EncoderStalled     the encoder did not answer in time (streams.processor)
     │    ├── ModelChanged       the model was swapped during a batch
     │    └── BrokerUnavailable  Kafka did not take a record (dead letter, example)
     ├── StateFormatError   stored bytes that are not an interest state (streams.interest)
     ├── BrokerError        the local broker cannot be set up or started (streams.kafka.broker)
     └── usage errors       everything else: a bad option or setting, a missing model; the
                            CLI prints one line

Anything that is not a StreamError (a ``TypeError``, a ``ZeroDivisionError``) is a bug: the
worker logs it with its traceback and counts it as unexpected (``interest_unexpected_errors``),
retries the window a few times (``INTEREST_UNEXPECTED_RETRIES``), then tries its records one
by one and dead-letters as :class:`UnexpectedError` those that fail alone.
"""

from __future__ import annotations


class StreamError(Exception):
    """Base class of every error raised by streams/."""


class TransientError(StreamError):
    """A failure that passes: Qdrant, the encoder or the broker away for a while. Retry it."""


class ModelChanged(TransientError):
    """The encoder's model was swapped during a batch: the batch is retried whole, so no
    user sum ever mixes two models' vectors."""


class BrokerUnavailable(TransientError):
    """Kafka did not acknowledge a record the worker must deliver before it commits."""


class RecordError(StreamError, ValueError):
    """A record that can never be processed: it goes to the dead-letter topic.

    The subclass name is the ``error-type`` header of the dead letter.
    """


class InvalidUtf8(RecordError):
    pass


class InvalidJson(RecordError):
    pass


class NotAnObject(RecordError):
    pass


class MissingField(RecordError):
    pass


class WrongType(RecordError):
    pass


class EmptyField(RecordError):
    pass


class InvalidTimestamp(RecordError):
    pass


class InvalidNumber(RecordError):
    pass


class TextTooLong(RecordError):
    pass


class UnknownEventType(RecordError):
    pass


class UnexpectedError(RecordError):
    """A record whose processing raised an unexpected error (a bug) every time it was tried,
    alone: dead-lettered with the error, so its partition moves on and nothing is lost."""


class TooLate(RecordError):
    """An event at or before its user's dedupe floor (streams/interest.py): the ids that old
    are no longer remembered, so it cannot be told from a duplicate and is not folded."""


class ForgetElsewhere(RecordError):
    """A forget request on an event topic while only the forget topic may carry them."""


class UnknownItem(RecordError):
    """An event whose item did not reach the catalogue within ``INTEREST_PARK_MAX_S`` of
    its parking (streams/parking.py)."""


class KeyMismatch(RecordError):
    """An event whose Kafka key is not its user_id: it would land in another user's partition."""
