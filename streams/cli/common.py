"""What the command modules share: data options, settings with ``--model``, output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

DEFAULT_MODELS = Path("data/models")


# -- argument types: a bad value is argparse's usage error (exit 2), naming the fix ----------


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {value}")
    return value


def cosine_floor(text: str) -> float:
    """A cosine in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a cosine in (0, 1], not {text!r}")
    return value


def tcp_port(text: str) -> int:
    """A TCP port, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 1..65535, not {text!r}")
    return value


def positive_ints(text: str) -> list[int]:
    """A comma-separated list of integers >= 1 (e.g. ``16,32,64``)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected numbers separated by commas, e.g. 16,32,64")
    return [positive_int(part) for part in parts]


def data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", choices=["movielens"], default=None, help="a known dataset, read from --path"
    )
    parser.add_argument("--path", type=Path, default=None, help="the dataset folder (--dataset)")
    parser.add_argument("--events", type=Path, default=None, help="events.csv (generic pair)")
    parser.add_argument("--items", type=Path, default=None, help="items.csv (generic pair)")


def settings_with_model(model: Path | None) -> Any:
    """The settings, with ``--model`` (a models root or version directory) when given."""
    from streams.settings import Settings, load_settings

    settings = load_settings()
    if model is None:
        return settings
    return Settings(**(settings.model_dump() | {"model_dir": model}))


TOP_K = 10  # the largest cut-off the protocol reports (Recall@10, NDCG@10)


def split_and_settings(args: argparse.Namespace) -> tuple[Any, Any]:
    """The protocol's split of the chosen data, and the settings (``--model`` applied)."""
    from streams.errors import StreamError
    from streams.evaluation.data import read_movielens, read_pair
    from streams.evaluation.protocol import five_core, leave_one_out

    if args.dataset and (args.events or args.items):
        raise StreamError("give either --dataset with --path, or --events with --items")
    if args.dataset:
        if args.path is None:
            raise StreamError("--dataset needs --path DIR")
        data = read_movielens(args.path)
    elif args.events and args.items:
        data = read_pair(args.events, args.items)
    else:
        raise StreamError("no data: give --dataset movielens --path DIR, or --events and --items")
    settings = settings_with_model(args.model)
    split = leave_one_out(five_core(data.interactions), data.texts)
    counts = split.counts
    print(
        f"after the 5-core filter: {counts['interactions']} interactions, "
        f"{counts['users']} users, {counts['items']} items",
        file=sys.stderr,
    )
    if counts["items"] <= TOP_K:
        print(
            f"warning: {counts['items']} items, not more than the {TOP_K} ranked: Recall@{TOP_K} "
            "is 1.0 for any ranking here, so the figures below say nothing about quality",
            file=sys.stderr,
        )
    return split, settings


def print_figures(result: dict[str, Any], as_json: bool) -> None:
    """Benchmark figures: one JSON object, or one aligned ``key  value`` line each."""
    if as_json:
        print_json(result)
        return
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")


JSON_HELP = "print the result as one JSON object on stdout (for scripts)"


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode() + "\n")
