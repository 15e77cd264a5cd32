"""``interest-stream bench encoder|e2e|soak``: the benchmarks."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from streams.cli.common import DEFAULT_MODELS, JSON_HELP, positive_ints, print_figures, print_json


def add_parsers(sub: Any) -> None:
    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(title="benchmarks", metavar="WHAT")
    enc = bench_sub.add_parser("encoder", help="raw ONNX Runtime vs the runtime encoder")
    enc.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODELS,
        help="model version directory or models root (default: %(default)s)",
    )
    enc.add_argument(
        "--provider",
        choices=["auto", "cuda", "cpu"],
        default="auto",
        help="ONNX Runtime provider (auto: CUDA when there is a GPU)",
    )
    enc.add_argument("--texts", type=int, default=2000, help="texts per pass")
    enc.add_argument(
        "--mix",
        choices=["mixed", "short32"],
        default="mixed",
        help="mixed: 80%% titles, 20%% long reviews; short32: 32-token texts",
    )
    enc.add_argument("--rounds", type=int, default=3, help="passes; the best is reported")
    enc.add_argument("--callers", type=int, default=64, help="concurrent callers (throughput)")
    enc.add_argument(
        "--per-call", type=int, default=16, help="texts per encode() call (throughput)"
    )
    enc.add_argument(
        "--latency-load",
        type=float,
        default=0.5,
        help="offered load of the latency pass, as a share of encoder throughput",
    )
    enc.add_argument(
        "--batch-sizes",
        type=positive_ints,
        default=[16, 32, 64, 128, 256],
        help="raw batch sizes to try; the best is used for both paths",
    )
    enc.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another model version to time raw in the same rounds (e.g. fp32)",
    )
    enc.add_argument("--json", action="store_true", help=JSON_HELP)
    enc.set_defaults(func=cmd_bench_encoder)
    e2e = bench_sub.add_parser("e2e", help="broker + worker + producer: events/s and freshness")
    e2e.add_argument("--events", type=int, default=100_000, help="throughput phase events")
    e2e.add_argument("--rate", type=float, default=1000.0, help="freshness phase events/s")
    e2e.add_argument("--seconds", type=float, default=20.0, help="freshness phase length")
    e2e.add_argument("--items", type=int, default=500, help="synthetic items in the catalogue")
    e2e.add_argument(
        "--users", type=int, default=5000, help="synthetic users the events spread over"
    )
    e2e.add_argument(
        "--no-ceiling",
        dest="ceiling",
        action="store_false",
        help="skip the baseline: the same events through a Faust agent that only acknowledges",
    )
    e2e.add_argument(
        "--workers",
        default="",
        metavar="N[,N...]",
        help="also the throughput phase through N worker processes sharing one Qdrant server "
        "(INTEREST_QDRANT_URL, else the local binary), for each N: e.g. 1,2",
    )
    e2e.add_argument("--json", action="store_true", help=JSON_HELP)
    e2e.set_defaults(func=cmd_bench_e2e)

    soak = bench_sub.add_parser(
        "soak", help="a long run at a steady rate: the worker's memory and the lag, sampled"
    )
    soak.add_argument("--minutes", type=float, default=30.0, help="how long the load runs")
    soak.add_argument("--rate", type=float, default=500.0, help="events per second (10%% reviews)")
    soak.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    soak.add_argument("--json", action="store_true", help=JSON_HELP)
    soak.set_defaults(func=cmd_bench_soak)

    state = bench_sub.add_parser(
        "state", help="user states in memory vs RocksDB: memory, disk and restart time"
    )
    state.add_argument("--users", type=int, default=100_000, help="synthetic users, a click each")
    state.add_argument(
        "--stores",
        nargs="+",
        choices=["memory", "rocksdb"],
        default=["memory", "rocksdb"],
        help="state stores to measure (default: both)",
    )
    state.add_argument("--json", action="store_true", help=JSON_HELP)
    state.set_defaults(func=cmd_bench_state)


def cmd_bench_encoder(args: argparse.Namespace) -> int:
    from encoder.bench import run_bench
    from encoder.model import load_model
    from encoder.registry import resolve_model_dir

    model = load_model(resolve_model_dir(args.model), provider=args.provider)
    baseline = None
    if args.baseline is not None:
        baseline = load_model(resolve_model_dir(args.baseline), provider=args.provider)
    sizes = args.batch_sizes
    result = run_bench(
        model,
        texts=args.texts,
        mix=args.mix,
        rounds=args.rounds,
        callers=args.callers,
        per_call=args.per_call,
        batch_sizes=sizes,
        latency_load=args.latency_load,
        baseline=baseline,
    )
    print_figures(result, args.json)
    return 0


def cmd_bench_e2e(args: argparse.Namespace) -> int:
    from streams.bench.e2e import run_e2e
    from streams.errors import StreamError
    from streams.settings import load_settings

    try:
        workers = [int(n) for n in args.workers.split(",") if n.strip()]
    except ValueError:
        workers = [0]
    if any(n < 1 for n in workers):
        raise StreamError(f"--workers takes counts of 1 or more, e.g. 1,2; not {args.workers!r}")
    result = run_e2e(
        load_settings(),
        events=args.events,
        rate=args.rate,
        seconds=args.seconds,
        items=args.items,
        users=args.users,
        ceiling=args.ceiling,
        workers=workers,
    )
    print_figures(result, args.json)
    return 0


def cmd_bench_state(args: argparse.Namespace) -> int:
    from streams.bench.state import run_state
    from streams.errors import StreamError
    from streams.settings import load_settings

    if args.users < 1:
        raise StreamError(f"--users must be at least 1, not {args.users}")
    result = run_state(load_settings(), users=args.users, stores=tuple(args.stores))
    if args.json:
        print_json(result)
    else:
        for store, figures in result["stores"].items():
            print_figures({"store": store, "users": result["users"], **figures}, False)
    return 0


def cmd_bench_soak(args: argparse.Namespace) -> int:
    from streams.bench.soak import run_soak
    from streams.errors import StreamError
    from streams.settings import load_settings

    for name in ("minutes", "rate", "sample_s"):
        value = getattr(args, name)
        if not 0 < value < math.inf:
            raise StreamError(f"--{name.replace('_', '-')} must be a positive number, not {value}")
    if args.sample_s > args.minutes * 60:
        raise StreamError("--sample-s must be shorter than the run")
    result = run_soak(load_settings(), minutes=args.minutes, rate=args.rate, sample_s=args.sample_s)
    if args.json:
        print_json(result)
    else:
        print_figures({k: v for k, v in result.items() if k != "samples"}, False)
    return 0
