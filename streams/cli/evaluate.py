"""``interest-stream eval``: recommendation quality under the published protocol."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from streams.cli.common import JSON_HELP, data_arguments, print_json, split_and_settings


def add_parsers(sub: Any) -> None:
    ev = sub.add_parser(
        "eval",
        help="recommendation quality under the published protocol (5-core, leave-one-out)",
        description="Rows: popularity, last item, interest vectors (half-lives and weights "
        "tuned on validation only), the serving vector. Data: --dataset movielens --path DIR, "
        "or the generic pair --events events.csv (user_id,item_id,ts[,rating]) --items "
        "items.csv (item_id,text).",
    )
    data_arguments(ev)
    ev.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model version directory or models root (default: the settings' models root)",
    )
    ev.add_argument(
        "--through-pipeline",
        action="store_true",
        help="also replay the test histories through Kafka, a worker and Qdrant and rank "
        "with Qdrant queries (needs the broker: interest-stream kafka start)",
    )
    ev.add_argument("--json", action="store_true", help=JSON_HELP)
    ev.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from encoder.manifest import read_manifest
    from encoder.registry import resolve_model_dir
    from streams.evaluation.report import compare_pipeline, format_table
    from streams.evaluation.run import encode_items, evaluate
    from streams.head import load_head

    split, settings = split_and_settings(args)
    vectors, version = encode_items(split.texts, settings.models_root, settings)
    model_dir = resolve_model_dir(settings.models_root)
    head = load_head(model_dir)
    report = evaluate(split, vectors, version, settings, head=head)
    if head is not None and (read_manifest(model_dir).head or {}).get("refit"):
        for row in report["rows"]:  # a refit head trained on the validation targets
            if row["name"] == "serving" and row["split"] == "validation":
                row["detail"] += "; refit: trained on these targets"
    if args.through_pipeline:
        from streams.evaluation.pipeline import through_pipeline

        compare_pipeline(report, through_pipeline(split, settings))
    if args.json:
        print_json(report)
    else:
        print(format_table(report))
    agreement = report.get("pipeline")
    if agreement and not agreement["agree"]:
        print(
            "interest-stream: the pipeline and the offline serving row disagree "
            f"(max |difference| {agreement['max_abs_diff']:.4f})",
            file=sys.stderr,
        )
        return 1
    return 0
