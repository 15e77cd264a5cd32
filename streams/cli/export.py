"""``interest-stream export``: a Hugging Face model to a checked ONNX version."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streams.cli.common import (
    DEFAULT_MODELS,
    cosine_floor,
    print_json,
)


def add_parsers(sub: Any) -> None:
    export = sub.add_parser("export", help="export a Hugging Face model to a checked ONNX version")
    export.add_argument(
        "--model",
        type=Path,
        default=None,
        help="source model directory (default: the packaged all-MiniLM-L6-v2)",
    )
    export.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_MODELS,
        help="models root; the version lands in OUT/<version> (default: %(default)s)",
    )
    export.add_argument(
        "--precision",
        choices=["fp32", "fp16", "int8"],
        default="fp32",
        help="fp32; fp16 for CUDA; int8 (dynamic quantization) for CPU",
    )
    export.add_argument("--parent", default=None, help="version this model was fine-tuned from")
    export.add_argument(
        "--set-current",
        action="store_true",
        help="make this the serving version (default: only if none is set)",
    )
    export.add_argument(
        "--min-cosine",
        type=cosine_floor,
        default=None,
        help="fp16/int8: lowest accepted per-row cosine to fp32 (default: 0.99)",
    )
    export.add_argument("--json", action="store_true", help="print the result as JSON")
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from export.pipeline import export_model

    result = export_model(
        args.model,
        args.out,
        precision=args.precision,
        parent=args.parent,
        set_current=True if args.set_current else None,
        min_cosine=args.min_cosine,
    )
    data = result.as_dict()
    if args.json:
        print_json(data)
    else:
        p = result.parity
        print(f"version     {result.version}{'' if result.created else ' (already present)'}")
        print(f"path        {result.path}")
        print(f"precision   {result.precision}")
        print(
            f"parity      fp32 max |onnx - torch| = {p['fp32_max_abs_diff']:.2e} "
            f"over {p['rows']} rows in {p['cases']} cases"
        )
        if result.precision != "fp32":
            key = f"{result.precision}_min_cosine"
            print(f"            {result.precision} min cosine to fp32 = {p[key]:.5f}")
        print(f"current     {'yes' if result.current else 'no'}")
        print(f"seconds     {result.seconds:.1f}")
    return 0
