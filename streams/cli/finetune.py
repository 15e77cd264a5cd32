"""``interest-stream finetune``: gated fine-tuning rounds (the ``train`` extra)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from streams.cli.common import (
    JSON_HELP,
    data_arguments,
    print_json,
    settings_with_model,
    split_and_settings,
)


def add_parsers(sub: Any) -> None:
    ft = sub.add_parser(
        "finetune",
        help="incremental fine-tuning rounds, each gated on the hold-out (needs the train extra)",
        description="Each round trains the serving version on its slice of the examples (plus "
        "a replay sample), exports the candidate, and promotes it only if its hold-out "
        "Recall@10 beats the serving version's. Records go to <models root>/finetune.jsonl.",
    )
    data_arguments(ft)
    ft.add_argument("--model", type=Path, default=None, help="models root (default: settings')")
    ft.add_argument("--rounds", type=int, default=1, help="gated rounds, one after another")
    ft.add_argument("--steps", type=int, default=100, help="training steps per round")
    ft.add_argument("--batch-size", type=int, default=32, help="examples per step")
    ft.add_argument("--learning-rate", type=float, default=3e-5, help="AdamW learning rate")
    ft.add_argument("--history", type=int, default=4, help="history items per user vector")
    ft.add_argument("--seed", type=int, default=0, help="random seed (sampling, dropout)")
    ft.add_argument(
        "--feedback",
        action="store_true",
        help="one round on the examples the feedback agent stored in the examples topic "
        "(what a worker's trigger runs) instead of a dataset",
    )
    ft.add_argument("--json", action="store_true", help=JSON_HELP)
    ft.set_defaults(func=cmd_finetune)


def cmd_finetune(args: argparse.Namespace) -> int:
    from streams.errors import StreamError
    from streams.training.rounds import run_rounds

    for name in ("rounds", "steps", "batch_size", "history"):
        if getattr(args, name) < 1:
            raise StreamError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < args.learning_rate < math.inf:
        raise StreamError(f"--learning-rate must be a positive number, not {args.learning_rate}")
    if args.feedback:
        return _finetune_from_feedback(args)
    split, settings = split_and_settings(args)
    records = run_rounds(split, settings, args.rounds, _train_config(args, settings))
    if args.json:
        print_json(records)
        return 0
    for r in records:
        print(
            f"round {r['round']}: {r['candidate']} from {r['parent']} {r['decision']}; "
            f"loss {r['train']['loss_first']:.3f} -> {r['train']['loss_last']:.3f}; hold-out "
            f"Recall@10 {r['hold_out']['current']['recall@10']:.4f} -> "
            f"{r['hold_out']['candidate']['recall@10']:.4f}; test Recall@10 "
            f"{r['test']['current']['recall@10']:.4f} -> "
            f"{r['test']['candidate']['recall@10']:.4f}; {r['seconds']:.0f} s"
        )
    return 0


def _train_config(args: argparse.Namespace, settings: Any) -> Any:
    from export.finetune import TrainConfig

    return TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        history=args.history,
        half_life_s=settings.half_life_short_s,  # the stream's short half-life
        seed=args.seed,
    )


def _finetune_from_feedback(args: argparse.Namespace) -> int:
    from streams.errors import StreamError
    from streams.training.feedback import run_feedback_job
    from streams.training.rounds import JobRunning
    from streams.worker.finetune import JOB_BUSY_EXIT  # what the worker's launcher reads

    if args.dataset or args.events or args.items:
        raise StreamError("--feedback trains on the stored examples: give no dataset")
    settings = settings_with_model(args.model)
    try:
        r = run_feedback_job(settings, _train_config(args, settings))
    except JobRunning as exc:
        print(f"interest-stream: {exc}", file=sys.stderr)
        return JOB_BUSY_EXIT
    if args.json:
        print_json(r)
        return 0
    print(
        f"feedback round: {r['candidate']} from {r['parent']} {r['decision']}; "
        f"{r['data']['examples']} examples, hold-out {r['data']['hold_out']}; loss "
        f"{r['train']['loss_first']:.3f} -> {r['train']['loss_last']:.3f}; hold-out Recall@10 "
        f"{r['hold_out']['current']['recall@10']:.4f} -> "
        f"{r['hold_out']['candidate']['recall@10']:.4f}; {r['seconds']:.0f} s"
    )
    return 0
