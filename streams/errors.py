"""Errors of the streaming side, rooted in :class:`StreamError`."""

from __future__ import annotations


class StreamError(Exception):
    """Base class of every error raised by streams/."""


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


class KeyMismatch(RecordError):
    """An event whose Kafka key is not its user_id: it would land in another user's partition."""
