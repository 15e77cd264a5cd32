"""Dead letters: the original bytes and headers of a bad record, plus why it was refused.

value, headers = dead_letter(raw, original_headers, "clicks", 3, 1042, exc)
await producer.send("dlq", value=value, key=key, headers=headers)
"""

from __future__ import annotations

from collections.abc import Sequence

HEADER_PREFIX = "dlq."


def dead_letter(
    raw: bytes,
    headers: Sequence[tuple[str, bytes]],
    topic: str,
    partition: int,
    offset: int,
    error: BaseException,
    max_bytes: int | None = None,
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The dead letter's value and headers. A value over ``max_bytes`` is cut to that size
    and says so in ``dlq.truncated-from`` (its original size): the letter still goes out."""
    ours = [
        ("dlq.source-topic", topic.encode()),
        ("dlq.source-partition", str(partition).encode()),
        ("dlq.source-offset", str(offset).encode()),
        ("dlq.error-type", type(error).__name__.encode()),
        ("dlq.error-message", str(error)[:1000].encode("utf-8", "replace")),
    ]
    if max_bytes is not None and len(raw) > max_bytes:
        ours.append(("dlq.truncated-from", str(len(raw)).encode()))
        raw = raw[:max_bytes]
    kept = [(k, v) for k, v in headers if not k.startswith(HEADER_PREFIX)]
    return raw, kept + ours
