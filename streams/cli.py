"""``interest-stream``: one command, many subcommands.

    interest-stream export [--model DIR] [--out DIR] [--precision fp32|fp16|int8] [--json]
    interest-stream bench encoder [--model DIR] [--json]

Progress and steps go to stderr, figures to stdout (``--json`` for machines). Errors of our
own packages print one line and exit 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from encoder.errors import EncoderError

DEFAULT_MODELS = Path("data/models")


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
    from streams.broker import BrokerError
    from streams.errors import StreamError

    if isinstance(exc, (EncoderError, BrokerError, StreamError)):
        return True
    try:
        from export.errors import ExportError
    except ImportError:
        return False
    return isinstance(exc, ExportError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interest-stream",
        description="Streaming user-interest vectors: Kafka events -> ONNX encoder -> Qdrant.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

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
        type=float,
        default=None,
        help="fp16/int8: lowest accepted per-row cosine to fp32 (default: 0.99)",
    )
    export.add_argument("--json", action="store_true", help="print the result as JSON")
    export.set_defaults(func=cmd_export)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(title="benchmarks", metavar="WHAT")
    enc = bench_sub.add_parser("encoder", help="raw ONNX Runtime vs the runtime encoder")
    enc.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODELS,
        help="model version directory or models root (default: %(default)s)",
    )
    enc.add_argument("--provider", choices=["auto", "cuda", "cpu"], default="auto")
    enc.add_argument("--texts", type=int, default=2000, help="texts per pass")
    enc.add_argument(
        "--mix",
        choices=["mixed", "short32"],
        default="mixed",
        help="mixed: 80%% titles, 20%% long reviews; short32: 32-token texts",
    )
    enc.add_argument("--rounds", type=int, default=3)
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
        default="16,32,64,128,256",
        help="raw batch sizes to try; the best is used for both paths",
    )
    enc.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another model version to time raw in the same rounds (e.g. fp32)",
    )
    enc.add_argument("--json", action="store_true")
    enc.set_defaults(func=cmd_bench_encoder)
    e2e = bench_sub.add_parser("e2e", help="broker + worker + producer: events/s and freshness")
    e2e.add_argument("--events", type=int, default=100_000, help="throughput phase events")
    e2e.add_argument("--rate", type=float, default=1000.0, help="freshness phase events/s")
    e2e.add_argument("--seconds", type=float, default=20.0, help="freshness phase length")
    e2e.add_argument("--items", type=int, default=500)
    e2e.add_argument("--users", type=int, default=5000)
    e2e.add_argument(
        "--no-ceiling",
        dest="ceiling",
        action="store_false",
        help="skip the baseline: the same events through a Faust agent that only acknowledges",
    )
    e2e.add_argument("--json", action="store_true")
    e2e.set_defaults(func=cmd_bench_e2e)

    soak = bench_sub.add_parser(
        "soak", help="a long run at a steady rate: the worker's memory and the lag, sampled"
    )
    soak.add_argument("--minutes", type=float, default=30.0)
    soak.add_argument("--rate", type=float, default=500.0, help="events per second (10%% reviews)")
    soak.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    soak.add_argument("--json", action="store_true")
    soak.set_defaults(func=cmd_bench_soak)
    kafka = sub.add_parser("kafka", help="the local single-node Kafka broker (KRaft)")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.add_argument(
        "--home",
        type=Path,
        default=Path(".cache/kafka"),
        help="jars, storage and log (default: %(default)s)",
    )
    kafka.add_argument("--port", type=int, default=9092)
    kafka.add_argument("--json", action="store_true")
    kafka.set_defaults(func=cmd_kafka)
    replay = sub.add_parser("replay", help="publish a dataset as events (MovieLens)")
    replay.add_argument("--dataset", choices=["movielens"], default="movielens")
    replay.add_argument("--path", type=Path, required=True, help="the dataset folder")
    replay.add_argument("--rate", default="max", help="events per second, or 'max'")
    replay.add_argument("--limit", type=int, default=None, help="first N events only")
    replay.add_argument(
        "--wait-items",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after the items, wait up to SECONDS for the worker's consumer group to take "
        "them before sending events (else early events may find their items unknown)",
    )
    replay.add_argument(
        "--feedback",
        action="store_true",
        help="also send feedback derived from the ratings: positive from 4, negative up to 2, "
        "one second after each rating",
    )
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(func=cmd_replay)

    rec = sub.add_parser("recommend", help="the nearest items for a user (through the aliases)")
    rec.add_argument("user_id")
    rec.add_argument("-k", type=int, default=10)
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(func=cmd_recommend)

    ev = sub.add_parser(
        "eval",
        help="recommendation quality under the published protocol (5-core, leave-one-out)",
        description="Rows: popularity, last item, interest vectors (half-lives and weights "
        "tuned on validation only), the serving vector. Data: --dataset movielens --path DIR, "
        "or the generic pair --events events.csv (user_id,item_id,ts[,rating]) --items "
        "items.csv (item_id,text).",
    )
    _data_arguments(ev)
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
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)

    sw = sub.add_parser(
        "switch",
        help="point the items and users aliases at a model version at once (roll-out, roll-back)",
    )
    sw.add_argument("version", help="a version whose items__ and users__ collections exist")
    sw.add_argument(
        "--drop-old-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="after a grace period, drop the collections of the version served before "
        "(unless the aliases moved back to it meanwhile)",
    )
    sw.add_argument("--json", action="store_true")
    sw.set_defaults(func=cmd_switch)

    ro = sub.add_parser(
        "rollout",
        help="follow a new version's backfill (its worker's consumer group) and switch to it "
        "once it has caught up",
    )
    ro.add_argument("version", help="the version a worker with its own consumer group builds")
    ro.add_argument(
        "--group",
        default=None,
        help="that worker's consumer group (default: INTEREST_CONSUMER_GROUP-VERSION)",
    )
    ro.add_argument(
        "--max-lag",
        type=int,
        default=0,
        help="records the group may still have to read and count as caught up (default: 0)",
    )
    ro.add_argument(
        "--timeout", type=float, default=86_400.0, help="seconds to wait (default: a day)"
    )
    ro.add_argument("--switch", action="store_true", help="then point the aliases at the version")
    ro.add_argument(
        "--drop-old-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --switch: drop the version served before after a grace period",
    )
    ro.add_argument("--json", action="store_true")
    ro.set_defaults(func=cmd_rollout)

    drop = sub.add_parser(
        "drop", help="delete the collections of a model version no alias serves (after a roll-out)"
    )
    drop.add_argument("version")
    drop.add_argument("--json", action="store_true")
    drop.set_defaults(func=cmd_drop)

    ft = sub.add_parser(
        "finetune",
        help="incremental fine-tuning rounds, each gated on the hold-out (needs the train extra)",
        description="Each round trains the serving version on its slice of the examples (plus "
        "a replay sample), exports the candidate, and promotes it only if its hold-out "
        "Recall@10 beats the serving version's. Records go to <models root>/finetune.jsonl.",
    )
    _data_arguments(ft)
    ft.add_argument("--model", type=Path, default=None, help="models root (default: settings')")
    ft.add_argument("--rounds", type=int, default=1)
    ft.add_argument("--steps", type=int, default=100, help="training steps per round")
    ft.add_argument("--batch-size", type=int, default=32)
    ft.add_argument("--learning-rate", type=float, default=3e-5)
    ft.add_argument("--history", type=int, default=4, help="history items per user vector")
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument(
        "--feedback",
        action="store_true",
        help="one round on the examples the feedback agent stored in the examples topic "
        "(what a worker's trigger runs) instead of a dataset",
    )
    ft.add_argument("--json", action="store_true")
    ft.set_defaults(func=cmd_finetune)

    worker = sub.add_parser("worker", help="run the Faust agents (settings from INTEREST_*)")
    worker.add_argument(
        "--loglevel",
        choices=["debug", "info", "warning", "error"],
        help="default: INTEREST_LOG_LEVEL (info)",
    )
    worker.set_defaults(func=cmd_worker)

    forget = sub.add_parser(
        "forget",
        help="ask the workers to forget a user: vector, state, history (README: Forgetting)",
    )
    forget.add_argument("user_id")
    forget.add_argument(
        "--at", type=float, default=None, help="forget events up to this time (default: now)"
    )
    forget.set_defaults(func=cmd_forget)

    topics = sub.add_parser("topics", help="create the topics the settings name (idempotent)")
    topics.add_argument("--json", action="store_true")
    topics.set_defaults(func=cmd_topics)

    health = sub.add_parser(
        "health", help="exit 0 if the worker's metrics endpoint says it is ready (healthcheck)"
    )
    health.add_argument("--url", help="default: http://<metrics_host>:<metrics_port>/metrics")
    health.add_argument("--timeout", type=float, default=3.0)
    health.set_defaults(func=cmd_health)
    return parser


def cmd_forget(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from streams.errors import StreamError
    from streams.replay import Record, publish
    from streams.settings import Settings
    from streams.topics import ensure_topics

    user = args.user_id.strip()
    if not user:
        raise StreamError("the user id is empty")
    at = time.time() if args.at is None else args.at
    settings = Settings()
    if not (math.isfinite(at) and settings.min_ts <= at <= time.time() + settings.max_future_s):
        raise StreamError(f"--at must be a time in epoch seconds, up to now; not {args.at}")
    ensure_topics(settings)
    record = Record("clicks", user, {"type": "forget", "user_id": user, "ts": at}, at)
    asyncio.run(publish([record], settings, None, progress=False))
    print(f"asked to forget user {user!r} up to {at:.0f} (topic {settings.topic('clicks')})")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from streams.settings import Settings
    from streams.topics import TOPICS, ensure_topics

    settings = Settings()
    created = ensure_topics(settings)
    names = [settings.topic(t) for t in TOPICS]
    if args.json:
        _print_json({"topics": names, "created": created})
    else:
        print(f"topics {', '.join(names)}; created {', '.join(created) or 'none'}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    import urllib.request

    from streams.settings import Settings

    url = args.url
    if url is None:
        settings = Settings()
        if not settings.metrics_port:
            print("unhealthy: metrics are off (INTEREST_METRICS_PORT=0)", file=sys.stderr)
            return 1
        host = "127.0.0.1" if settings.metrics_host in ("0.0.0.0", "::") else settings.metrics_host
        url = f"http://{host}:{settings.metrics_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            body = response.read().decode()
    except OSError as exc:
        print(f"unhealthy: no worker answers at {url} ({exc})", file=sys.stderr)
        return 1
    if "\ninterest_worker_ready 1.0" not in body:
        print(f"unhealthy: the worker at {url} is not ready yet (model, Qdrant)", file=sys.stderr)
        return 1
    print(f"healthy: {url}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.errors import StreamError
    from streams.replay import replay_movielens
    from streams.settings import Settings
    from streams.topics import ensure_topics

    try:
        rate = None if args.rate == "max" else float(args.rate)
    except ValueError:
        rate = -1.0
    if rate is not None and not 0 < rate < math.inf:
        raise StreamError(f"--rate must be a positive number or 'max', not {args.rate!r}")
    if not 0 <= args.wait_items < math.inf:
        raise StreamError(f"--wait-items must be a number of seconds >= 0, not {args.wait_items}")
    settings = Settings()
    ensure_topics(settings)
    stats = replay_movielens(
        args.path,
        settings,
        rate=rate,
        limit=args.limit,
        wait_items=args.wait_items,
        feedback=args.feedback,
    )
    if args.json:
        _print_json(stats)
    else:
        for part, s in stats.items():
            print(
                f"{part:<7} {s['records']} records in {s['seconds']} s "
                f"({s['records_per_s']}/s) {s['by_topic']}"
            )
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from streams.app import open_store
    from streams.settings import Settings
    from streams.store import recent_items

    store = open_store(Settings())
    try:
        user = store.user(args.user_id)
        if user is None:
            print(f"interest-stream: error: no user {args.user_id!r} in Qdrant", file=sys.stderr)
            return 2
        seen = recent_items(user.payload)
        points = store.recommend(args.user_id, k=args.k, exclude=seen)
    finally:
        store.close()
    rows = [
        {
            "item_id": p.payload["item_id"],
            "score": round(p.score, 4),
            "text": p.payload.get("text", ""),
        }
        for p in points
    ]
    if args.json:
        _print_json(
            {"user_id": args.user_id, "concepts": user.payload.get("concepts", []), "items": rows}
        )
    else:
        concepts = ", ".join(f"{c['label']} {c['p']:.2f}" for c in user.payload["concepts"])
        print(f"user {args.user_id} ({user.payload['event_count']} events; {concepts})")
        for r in rows:
            print(f"  {r['score']:.3f}  {r['item_id']:>7}  {r['text']}")
    return 0


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=["movielens"], default=None)
    parser.add_argument("--path", type=Path, default=None, help="the dataset folder (--dataset)")
    parser.add_argument("--events", type=Path, default=None, help="events.csv (generic pair)")
    parser.add_argument("--items", type=Path, default=None, help="items.csv (generic pair)")


def _settings_with_model(model: Path | None) -> Any:
    """The settings, with ``--model`` (a models root or version directory) when given."""
    from streams.settings import Settings

    settings = Settings()
    if model is None:
        return settings
    return Settings(**(settings.model_dump() | {"model_dir": model}))


def _split_and_settings(args: argparse.Namespace) -> tuple[Any, Any]:
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
    settings = _settings_with_model(args.model)
    split = leave_one_out(five_core(data.interactions), data.texts)
    counts = split.counts
    print(
        f"after the 5-core filter: {counts['interactions']} interactions, "
        f"{counts['users']} users, {counts['items']} items",
        file=sys.stderr,
    )
    return split, settings


def cmd_switch(args: argparse.Namespace) -> int:
    from streams.settings import Settings

    before, dropped = _switch(Settings(), args.version, args.drop_old_after)
    if args.json:
        _print_json({"before": before, "serving": args.version, "dropped": dropped})
    elif dropped:
        print(f"dropped {', '.join(dropped)}")
    return 0


def _switch(settings: Any, version: str, grace: float | None) -> tuple[str | None, list[str]]:
    """Point the aliases at ``version``; after ``grace`` seconds drop the version served
    before, unless the aliases moved back meanwhile. (version served before, dropped)."""
    import time

    from streams.app import open_store
    from streams.errors import StreamError
    from streams.store import ITEMS, USERS, collection

    if grace is not None and not 0 <= grace < math.inf:
        raise StreamError(f"--drop-old-after must be seconds >= 0, not {grace}")
    store = open_store(settings)
    try:
        names = store.collections()
        missing = [c for c in (collection(k, version) for k in (ITEMS, USERS)) if c not in names]
        if missing:
            raise StreamError(
                f"version {version} has no {', '.join(missing)} in Qdrant: a worker on "
                "that version builds them (README, Fine-tuning: roll-out)"
            )
        before = store.serving()
        store.switch(version)
        print(f"aliases items, users: {before} -> {version}", file=sys.stderr)
        dropped: list[str] = []
        if grace is not None and before not in (None, version):
            print(f"dropping {before} in {grace:.0f} s", file=sys.stderr)
            time.sleep(grace)
            if store.serving() == version:  # not rolled back meanwhile
                dropped = store.drop(before)
    finally:
        store.close()
    return before, dropped


def cmd_rollout(args: argparse.Namespace) -> int:
    from streams.errors import StreamError
    from streams.rollout import backfill_group, watch_backfill
    from streams.settings import Settings

    if not 0 < args.timeout < math.inf:
        raise StreamError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    if args.max_lag < 0:
        raise StreamError(f"--max-lag must be >= 0, not {args.max_lag}")
    if args.drop_old_after is not None and not args.switch:
        raise StreamError("--drop-old-after goes with --switch")
    settings = Settings()
    group = args.group or backfill_group(settings, args.version)
    result = watch_backfill(settings, group, timeout=args.timeout, max_lag=args.max_lag)
    result |= {"version": args.version, "switched": False, "before": None, "dropped": []}
    if args.switch:
        before, dropped = _switch(settings, args.version, args.drop_old_after)
        result |= {"switched": True, "before": before, "dropped": dropped}
    if args.json:
        _print_json(result)
    else:
        _print_figures(result, False)
    return 0


def cmd_drop(args: argparse.Namespace) -> int:
    from streams.app import open_store
    from streams.settings import Settings

    store = open_store(Settings())
    try:
        dropped = store.drop(args.version)
    finally:
        store.close()
    if args.json:
        _print_json({"dropped": dropped})
    else:
        print(f"dropped {', '.join(dropped) or 'nothing (no such collections)'}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from streams.errors import StreamError
    from streams.training import run_rounds

    for name in ("rounds", "steps", "batch_size", "history"):
        if getattr(args, name) < 1:
            raise StreamError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < args.learning_rate < math.inf:
        raise StreamError(f"--learning-rate must be a positive number, not {args.learning_rate}")
    if args.feedback:
        return _finetune_from_feedback(args)
    split, settings = _split_and_settings(args)
    records = run_rounds(split, settings, args.rounds, _train_config(args, settings))
    if args.json:
        _print_json(records)
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
    from streams.feedback import JOB_BUSY_EXIT, run_feedback_job
    from streams.training import JobRunning

    if args.dataset or args.events or args.items:
        raise StreamError("--feedback trains on the stored examples: give no dataset")
    settings = _settings_with_model(args.model)
    try:
        r = run_feedback_job(settings, _train_config(args, settings))
    except JobRunning as exc:
        print(f"interest-stream: {exc}", file=sys.stderr)
        return JOB_BUSY_EXIT
    if args.json:
        _print_json(r)
        return 0
    print(
        f"feedback round: {r['candidate']} from {r['parent']} {r['decision']}; "
        f"{r['data']['examples']} examples, hold-out {r['data']['hold_out']}; loss "
        f"{r['train']['loss_first']:.3f} -> {r['train']['loss_last']:.3f}; hold-out Recall@10 "
        f"{r['hold_out']['current']['recall@10']:.4f} -> "
        f"{r['hold_out']['candidate']['recall@10']:.4f}; {r['seconds']:.0f} s"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from streams.evaluation.report import compare_pipeline, format_table
    from streams.evaluation.run import encode_items, evaluate

    split, settings = _split_and_settings(args)
    vectors, version = encode_items(split.texts, settings.models_root, settings)
    report = evaluate(split, vectors, version, settings)
    if args.through_pipeline:
        from streams.evaluation.pipeline import through_pipeline

        compare_pipeline(report, through_pipeline(split, settings))
    if args.json:
        _print_json(report)
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


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from streams.app import build_app
    from streams.logs import logging_config
    from streams.metrics import Metrics
    from streams.settings import Settings
    from streams.topics import ensure_topics

    settings = Settings()
    created = ensure_topics(settings)
    if created:
        print(f"created topics {created}", file=sys.stderr)
    metrics = Metrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_host, settings.metrics_port)
    app = build_app(settings, metrics)
    level = args.loglevel or settings.log_level
    faust.Worker(
        app, loglevel=level, logging_config=logging_config(level, settings.log_format)
    ).execute_from_commandline()
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    from streams.broker import LocalBroker

    broker = LocalBroker(args.home, port=args.port)
    if args.action == "start":
        print(f"starting Kafka on {broker.bootstrap} (log: {broker.log})", file=sys.stderr)
    state = getattr(broker, args.action)()
    if args.json:
        _print_json(state)
    else:
        print(
            f"kafka {'running' if state['running'] else 'stopped'} "
            f"on {state['bootstrap']} (pid {state['pid']}, log {state['log']})"
        )
    return 0


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
        _print_json(data)
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


def cmd_bench_encoder(args: argparse.Namespace) -> int:
    from encoder.bench import run_bench
    from encoder.model import load_model
    from encoder.registry import resolve_model_dir

    model = load_model(resolve_model_dir(args.model), provider=args.provider)
    baseline = None
    if args.baseline is not None:
        baseline = load_model(resolve_model_dir(args.baseline), provider=args.provider)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s]
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
    _print_figures(result, args.json)
    return 0


def cmd_bench_e2e(args: argparse.Namespace) -> int:
    from streams.bench_e2e import run_e2e
    from streams.settings import Settings

    result = run_e2e(
        Settings(),
        events=args.events,
        rate=args.rate,
        seconds=args.seconds,
        items=args.items,
        users=args.users,
        ceiling=args.ceiling,
    )
    _print_figures(result, args.json)
    return 0


def cmd_bench_soak(args: argparse.Namespace) -> int:
    from streams.errors import StreamError
    from streams.settings import Settings
    from streams.soak import run_soak

    for name in ("minutes", "rate", "sample_s"):
        value = getattr(args, name)
        if not 0 < value < math.inf:
            raise StreamError(f"--{name.replace('_', '-')} must be a positive number, not {value}")
    if args.sample_s > args.minutes * 60:
        raise StreamError("--sample-s must be shorter than the run")
    result = run_soak(Settings(), minutes=args.minutes, rate=args.rate, sample_s=args.sample_s)
    if args.json:
        _print_json(result)
    else:
        _print_figures({k: v for k, v in result.items() if k != "samples"}, False)
    return 0


def _print_figures(result: dict[str, Any], as_json: bool) -> None:
    """Benchmark figures: one JSON object, or one aligned ``key  value`` line each."""
    if as_json:
        _print_json(result)
        return
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode() + "\n")


if __name__ == "__main__":
    sys.exit(main())
