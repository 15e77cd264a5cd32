"""``interest-stream``: one command, many subcommands; one module per command family.

    interest-stream export [--model DIR] [--out DIR] [--precision fp32|fp16|int8] [--json]
    interest-stream bench encoder [--model DIR] [--json]

Each module here (``export``, ``bench``, ``kafka``, ``produce``, ``recommend``,
``evaluate``, ``train``, ``rollout``, ``finetune``, ``worker``, ``settings``) adds its
parsers and owns their handlers; the domain logic lives in the domain's folder. Progress
and steps go to stderr, figures to stdout (``--json`` for machines). Errors of our own
packages print one line and exit 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from encoder.errors import EncoderError
from streams.cli import (
    bench,
    evaluate,
    export,
    finetune,
    kafka,
    produce,
    recommend,
    rollout,
    settings,
    train,
    worker,
)

# In the order of `interest-stream --help`.
FAMILIES = (
    export,
    bench,
    kafka,
    produce,
    recommend,
    evaluate,
    train,
    rollout,
    finetune,
    worker,
    settings,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if _is_ours(exc):
            print(f"interest-stream: error: {exc}", file=sys.stderr)
            return 2
        raise


def _is_ours(exc: BaseException) -> bool:
    from streams.errors import StreamError

    if isinstance(exc, (EncoderError, StreamError)):
        return True
    try:
        from export.errors import ExportError
    except ImportError:
        return False
    return isinstance(exc, ExportError)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("interest-stream")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interest-stream",
        description="Streaming user-interest vectors: Kafka events -> ONNX encoder -> Qdrant.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for family in FAMILIES:
        family.add_parsers(sub)
    return parser
