"""``interest-stream train``: learn the interest head, compare it with the baselines, and
write it into a model version (the ``train`` extra: torch)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from streams.cli.common import JSON_HELP, data_arguments, print_json, split_and_settings

# The user's sum decays by events by default: on MovieLens validation a 10-event half-life
# beat 5 and 20 events and every time half-life tried (README, "The learned interest head").
DEFAULT_HALF_LIFE_EVENTS = 10.0


def add_parsers(sub: Any) -> None:
    # import-free: every subcommand builds this
    from streams.training.config import EXTRA_HALF_LIVES_EVENTS, HeadConfig

    tr = sub.add_parser(
        "train",
        help="learn the interest head over the item vectors; compare it with popularity, "
        "zero-shot and SASRec trained here (needs the train extra)",
        description="Trains the two-tower interest head (history side A·e + h, item side "
        "B·e + v with a bias) on every training prefix, epochs chosen on validation, over "
        "--seeds seeds; SASRec likewise; a cold-start row holds out the newest items. "
        "Prints test-split figures. Data as for eval.",
    )
    data_arguments(tr)
    tr.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model version directory or models root (default: the settings' models root)",
    )
    tr.add_argument("--seeds", type=int, default=3, help="seeds per trained row (default: 3)")
    tr.add_argument("--dim", type=int, default=128, help="the head's dimension (default: 128)")
    clock = tr.add_mutually_exclusive_group()
    clock.add_argument(
        "--half-life-events",
        type=float,
        default=None,
        metavar="EVENTS",
        help="decay the user's sum by events: x 2^(-1/EVENTS) per later event of the user, "
        f"in arrival order (default: {DEFAULT_HALF_LIFE_EVENTS:g}, chosen on validation)",
    )
    clock.add_argument(
        "--half-life",
        default=None,
        metavar="SECONDS|none",
        help="decay the user's sum by event time instead (order-independent), or 'none' for "
        "no decay at all; the worker serves the head's own",
    )
    tr.add_argument(
        "--extra-half-lives",
        default=None,
        metavar="H,H|none",
        help="the user's other sums, in the clock of the first (events or seconds; inf: no "
        "decay), read out with it by a learned linear map; 'none' for the single sum "
        f"(default with decay by events: {','.join(f'{h:g}' for h in EXTRA_HALF_LIVES_EVENTS)}, "
        "chosen on validation; by time: none)",
    )
    tr.add_argument(
        "--keep-history-in-softmax",
        dest="mask_history",
        action="store_false",
        help="train with each example's own history among the softmax's candidates (by "
        "default it is left out, as the protocol leaves it out of the ranking)",
    )
    tr.add_argument(
        "--epochs",
        type=int,
        default=HeadConfig.epochs,
        help=f"at most (default: {HeadConfig.epochs})",
    )
    tr.add_argument(
        "--patience",
        type=int,
        default=HeadConfig.patience,
        help="epochs without a better validation Recall@10 before stopping "
        f"(default: {HeadConfig.patience})",
    )
    tr.add_argument(
        "--batch-size",
        type=int,
        default=HeadConfig.batch_size,
        help=f"training prefixes per step (default: {HeadConfig.batch_size})",
    )
    tr.add_argument(
        "--learning-rate",
        type=float,
        default=HeadConfig.learning_rate,
        help=f"AdamW learning rate (default: {HeadConfig.learning_rate:g})",
    )
    tr.add_argument(
        "--id-dropout",
        type=float,
        default=HeadConfig.id_dropout,
        help=f"share of per-item parts dropped in training (default: {HeadConfig.id_dropout:g})",
    )
    tr.add_argument(
        "--readout-hidden",
        type=int,
        default=HeadConfig.readout_hidden,
        help="units of a ReLU layer over the sums' directions beside the linear readout; 0: "
        f"none (default: {HeadConfig.readout_hidden})",
    )
    tr.add_argument(
        "--no-refit",
        dest="refit",
        action="store_false",
        help="keep the head (and SASRec) of the epoch chosen on validation; by default each "
        "is trained again from the start for that many epochs with the validation targets "
        "among its training targets, and that model is kept",
    )
    tr.add_argument("--no-sasrec", dest="sasrec", action="store_false", help="skip SASRec")
    tr.add_argument("--sasrec-epochs", type=int, default=400, help="at most (default: 400)")
    tr.add_argument(
        "--sasrec-seeds", type=int, default=None, help="seeds for SASRec (default: --seeds)"
    )
    tr.add_argument(
        "--cold-share",
        type=float,
        default=0.15,
        help="newest share of the items held out for the cold-start row (0: none)",
    )
    tr.add_argument(
        "--write",
        action="store_true",
        help="write the best seed's head into a new model version beside the encoder's",
    )
    tr.add_argument(
        "--set-current",
        action="store_true",
        help="with --write: make that version the one workers serve (CURRENT); roll it out "
        "as any new version (README, Roll-out)",
    )
    tr.add_argument("--json", action="store_true", help=JSON_HELP)
    tr.set_defaults(func=cmd_train)


def _half_life(text: str) -> float | None:
    from streams.errors import StreamError

    if text == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise StreamError(f"--half-life must be seconds > 0 or 'none', not {text!r}")
    return value


def _extra_half_lives(text: str | None, by_events: bool) -> tuple[float, ...]:
    from streams.errors import StreamError
    from streams.training.config import EXTRA_HALF_LIVES_EVENTS

    if text is None:
        return EXTRA_HALF_LIVES_EVENTS if by_events else ()
    if text == "none":
        return ()
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = (math.nan,)
    if not all(h > 0 for h in values):  # NaN too
        raise StreamError(
            f"--extra-half-lives must be half-lives > 0 separated by commas (inf: no decay) "
            f"or 'none', not {text!r}"
        )
    return values


def cmd_train(args: argparse.Namespace) -> int:
    from encoder.manifest import read_manifest
    from encoder.registry import resolve_model_dir
    from streams.errors import StreamError

    for name in (
        "seeds",
        "dim",
        "epochs",
        "patience",
        "batch_size",
        "sasrec_epochs",
        "sasrec_seeds",
    ):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise StreamError(f"--{name.replace('_', '-')} must be at least 1")
    if args.readout_hidden < 0:
        raise StreamError(f"--readout-hidden must be 0 or more, not {args.readout_hidden}")
    if not 0 < args.learning_rate < math.inf:
        raise StreamError(f"--learning-rate must be a positive number, not {args.learning_rate}")
    for name in ("id_dropout", "cold_share"):
        if not 0 <= getattr(args, name) < 1:
            raise StreamError(f"--{name.replace('_', '-')} must be in [0, 1)")
    if args.set_current and not args.write:
        raise StreamError("--set-current goes with --write")
    half_life, half_life_events = None, args.half_life_events  # one clock: events or time
    if args.half_life is not None:
        half_life = _half_life(args.half_life)
    elif half_life_events is None:
        half_life_events = DEFAULT_HALF_LIFE_EVENTS
    if half_life_events is not None and not 0 < half_life_events < math.inf:
        raise StreamError(f"--half-life-events must be > 0, not {args.half_life_events}")
    extra = _extra_half_lives(args.extra_half_lives, half_life_events is not None)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise StreamError(
            "train needs torch: pip install 'interest-stream[train]' (the train extra)"
        ) from None
    from streams.evaluation.report import train_table
    from streams.evaluation.run import encode_items
    from streams.training.compare import CompareConfig, compare
    from streams.training.config import HeadConfig
    from streams.training.versions import write_head_version

    split, settings = split_and_settings(args)
    model_dir = resolve_model_dir(settings.models_root)
    manifest = read_manifest(model_dir)
    if manifest.head:  # a head version (CURRENT after `train --write --set-current`)
        parent = model_dir.parent / (manifest.parent or "")
        if not manifest.parent or not (parent / "manifest.json").exists():
            raise StreamError(
                f"{model_dir} carries a head already and its encoder version is not beside "
                "it: train from an encoder version (--model)"
            )
        print(
            f"{model_dir} carries a head: training from its encoder version {parent}",
            file=sys.stderr,
        )
        model_dir, manifest = parent, read_manifest(parent)
    if args.dim > manifest.dimension:
        raise StreamError(f"--dim {args.dim} exceeds the encoder's {manifest.dimension}")
    vectors, version = encode_items(split.texts, model_dir, settings)
    head_config = HeadConfig(
        dim=args.dim,
        half_life_s=half_life,
        half_life_events=half_life_events,
        extra_half_lives=extra,
        mask_history=args.mask_history,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        id_dropout=args.id_dropout,
        readout_hidden=args.readout_hidden,
        refit=args.refit,
    )
    config = CompareConfig(
        seeds=args.seeds,
        head=head_config,
        sasrec=args.sasrec,
        sasrec_epochs=args.sasrec_epochs,
        sasrec_seeds=args.sasrec_seeds,
        sasrec_refit=args.refit,
        cold_share=args.cold_share,
    )
    report, head = compare(split, vectors, version, settings, config)
    if args.write:
        root = model_dir.parent
        meta = {
            "half_life_s": half_life,
            "half_life_events": half_life_events,
            "extra_half_lives": [h if math.isfinite(h) else "inf" for h in extra],
            "readout_hidden": args.readout_hidden,
            "best_seed": report["best_seed"],
            "refit": args.refit,  # trained through the validation targets
            "trained_on": split.counts,
        }
        new, created = write_head_version(root, version, head, meta, args.set_current)
        report["written"] = {"version": new, "parent": version, "created": created}
        print(f"head written as model version {new} (parent {version})", file=sys.stderr)
    if args.json:
        print_json(report)
    else:
        print(train_table(report))
    return 0
