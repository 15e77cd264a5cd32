"""Printing and publishing an evaluation report.

    print(format_table(report))                 # the terminal table
    compare_pipeline(report, pipeline_metrics)  # adds the pipeline row and the agreement
    markdown_table(report)                      # the README's results table (test split)

``python -m streams.evaluation.report --readme README.md --results docs/results.json --plot
PNG`` (``make results``) rewrites the README's results section and the Recall@10 plot from a
saved ``eval --json`` report; ``--curve docs/finetune_curve.json`` (``make finetune-curve``)
the fine-tuning table from a saved ``finetune --json``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from streams.evaluation.metrics import KS

COLUMNS = (
    *(f"recall@{k}" for k in KS),
    *(f"ndcg@{k}" for k in KS),
    "mrr@10",
    "coverage@10",
)
# "Agree to the third decimal": no metric differs by more than half a unit of it.
AGREE_WITHIN = 5e-4
PIPELINE_ROW = "serving, through the pipeline"
# ../shared/data/README.md (LlamaRec, Table 1, ML-100k column: this file set and protocol)
# name, Recall@10, NDCG@10, Recall@5, NDCG@5
PUBLISHED = (
    ("SASRec", 0.0993, 0.0522, 0.0641, 0.0409),
    ("LRURec", 0.1426, 0.0705, 0.0705, 0.0468),
    ("LlamaRec (Llama-2-7B re-ranker)", 0.1524, 0.0759, 0.0852, 0.0543),
)


def compare_pipeline(report: dict[str, Any], measured: dict[str, float]) -> None:
    """Add the pipeline's test row and how far it is from the offline ``serving`` row."""
    offline = next(r for r in report["rows"] if r["name"] == "serving" and r["split"] == "test")
    diff = max(abs(measured[c] - offline[c]) for c in COLUMNS)
    report["rows"].append(
        {"name": PIPELINE_ROW, "split": "test", **measured, "detail": offline.get("detail", "")}
    )
    report["pipeline"] = {"max_abs_diff": diff, "agree": diff <= AGREE_WITHIN}


def format_table(report: dict[str, Any]) -> str:
    counts = report["counts"]
    lines = [
        f"{counts['interactions']} interactions, {counts['users']} users, "
        f"{counts['items']} items; model {report['model_version']}",
        f"{'row':<30} {'split':<10} " + " ".join(f"{c:>11}" for c in COLUMNS) + "  detail",
    ]
    for row in report["rows"]:
        figures = " ".join(f"{row[c]:>11.4f}" for c in COLUMNS)
        lines.append(f"{row['name']:<30} {row['split']:<10} {figures}  {row.get('detail', '')}")
    agreement = report.get("pipeline")
    if agreement:
        verdict = "agree" if agreement["agree"] else "DISAGREE"
        lines.append(
            f"pipeline vs offline serving row: max |difference| "
            f"{agreement['max_abs_diff']:.5f} ({verdict}; tolerance {AGREE_WITHIN})"
        )
    return "\n".join(lines)


def markdown_table(report: dict[str, Any]) -> str:
    """Test-split rows beside the published numbers (Recall@10, NDCG@10, Recall@5, ...)."""
    head = "| row | Recall@10 | NDCG@10 | Recall@5 | NDCG@5 | MRR@10 | coverage@10 |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        if row["split"] != "test":
            continue
        detail = f" ({row['detail']})" if row.get("detail") else ""
        lines.append(
            f"| {row['name']}{detail} | {row['recall@10']:.4f} | {row['ndcg@10']:.4f} | "
            f"{row['recall@5']:.4f} | {row['ndcg@5']:.4f} | {row['mrr@10']:.4f} | "
            f"{row['coverage@10']:.3f} |"
        )
    for name, *figures in PUBLISHED:
        cells = " | ".join(f"{f:.4f}" for f in figures)
        lines.append(f"| *{name}, published* | {cells} | | |")
    return "\n".join(lines)


BEGIN, END = "<!-- {}:begin -->", "<!-- {}:end -->"  # README sections, by name


def readme_section(report: dict[str, Any], plot: str, command: str) -> str:
    counts = report["counts"]
    agreement = report.get("pipeline")
    lines = [
        f"Test split, {counts['interactions']:,} interactions of {counts['users']} users on "
        f"{counts['items']:,} items after the 5-core filter; model `{report['model_version']}`; "
        f"made by `{command}`.",
        "",
        markdown_table(report),
        "",
    ]
    if agreement:
        lines += [
            "The pipeline row replays every history through Kafka, the worker and Qdrant and "
            "ranks with the query a downstream service makes; it differs from the offline "
            f"serving row by at most {agreement['max_abs_diff']:.5f} on any metric.",
            "",
        ]
    lines += [standing(report), "", f"![Recall@10 per row]({plot})"]
    return "\n".join(lines)


def curve_section(records: list[dict[str, Any]], command: str) -> str:
    """The fine-tuning rounds of one ``finetune --json`` run, as a table."""
    lines = [
        f"Made by `{command}`; Recall@10 of the served user vector (1 d half-life), hold-out "
        "= each user's validation target, test reported only.",
        "",
        "| round | examples (targets from .. to) | loss first -> last | hold-out: serving -> "
        "candidate | test: serving -> candidate | decision | minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        data, train = r["data"], r["train"]
        lines.append(
            f"| {r['round']} | {data['examples']:,} ({data['from']} .. {data['to']}) | "
            f"{train['loss_first']:.3f} -> {train['loss_last']:.3f} | "
            f"{r['hold_out']['current']['recall@10']:.4f} -> "
            f"{r['hold_out']['candidate']['recall@10']:.4f} | "
            f"{r['test']['current']['recall@10']:.4f} -> "
            f"{r['test']['candidate']['recall@10']:.4f} | {r['decision']} | "
            f"{r['seconds'] / 60:.1f} |"
        )
    return "\n".join(lines)


def standing(report: dict[str, Any]) -> str:
    """Where we stand, in one sentence, from the test rows."""
    test = {r["name"]: r["recall@10"] for r in report["rows"] if r["split"] == "test"}
    best = max(test, key=lambda name: test[name])
    sasrec, llamarec = PUBLISHED[0][1], PUBLISHED[-1][1]
    serving, popularity = test["serving"], test["popularity"]
    relation = "above" if serving > popularity else "below"
    return (
        f"**Where we stand:** the best row on test, `{best}`, reaches {test[best]:.4f} "
        f"Recall@10: {test[best] / sasrec:.0%} of SASRec's {sasrec} and "
        f"{test[best] / llamarec:.0%} of LlamaRec's {llamarec}. The interest vector as served "
        f"reaches {serving:.4f}, {relation} popularity ({popularity:.4f})."
    )


TRAIN_KEYS = ("recall@10", "ndcg@10", "recall@5", "ndcg@5")


def update_readme(readme: Path, name: str, body: str) -> None:
    """Replace what stands between the README's ``name`` markers with ``body``."""
    begin, end = BEGIN.format(name), END.format(name)
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {begin} ... {end} section to replace")
    section = f"{begin}\n{body}\n{end}"
    readme.write_text(pattern.sub(lambda _: section, text), encoding="utf-8")


def train_table(report: dict[str, Any]) -> str:
    """The comparison as a Markdown table (test split)."""
    lines = [
        "| row | Recall@10 | NDCG@10 | Recall@5 | NDCG@5 | seeds |",
        "|---|---|---|---|---|---|",
    ]

    def cell(row: dict[str, Any], k: str) -> str:
        if row.get("seeds", 0) > 1:
            return f"{row[k]:.4f} ± {row[f'{k}_std']:.4f}"
        return f"{row[k]:.4f}"

    def add(name: str, row: dict[str, Any]) -> None:
        cells = " | ".join(cell(row, k) for k in TRAIN_KEYS)
        lines.append(f"| {name} | {cells} | {row.get('seeds', 0) or '-'} |")

    for row in report["rows"]:
        add(row["name"] + (" (train extra)" if row.get("train") else ""), row)
    cold = report.get("cold_start")
    if cold:
        for row in cold["rows"]:
            add(
                f"cold start ({cold['users']} users, {cold['items']} new items): {row['name']}", row
            )
    return "\n".join(lines)


def train_section(report: dict[str, Any], command: str) -> str:
    """The README's learned-head section: the table and where it stands."""
    rows = {r["name"]: r for r in report["rows"]}
    head, lines = rows["learned head"], []
    lines.append(
        f"Test split, {report['counts']['interactions']:,} interactions of "
        f"{report['counts']['users']} users on {report['counts']['items']:,} items; encoder "
        f"`{report['model_version']}`; made by `{command}`."
    )
    lines += ["", train_table(report), ""]
    said = f"**Where we stand:** the learned head reaches {head['recall@10']:.4f} Recall@10"
    if "SASRec" in rows:
        sasrec = rows["SASRec"]["recall@10"]
        ratio = f"{head['recall@10'] / sasrec:.2f}x" if sasrec > 0 else "against"
        said += f", {ratio} SASRec trained here ({sasrec:.4f})"
    said += f"; the goal of 0.153 is {'met' if head['recall@10'] >= 0.153 else 'not met'}."
    lines.append(said)
    records = report.get("records", {})
    times = []
    for name, key in (("the head", "head"), ("SASRec", "sasrec")):
        runs = records.get(key) or []
        if runs:
            epochs = ", ".join(str(r["best_epoch"]) for r in runs)
            seconds = sum(r["seconds"] for r in runs) / len(runs)
            refit = [r["refit"]["seconds"] for r in runs if "refit" in r]
            of_which = f", of which the refit {sum(refit) / len(refit):.0f} s" if refit else ""
            times.append(f"{name} {seconds:.0f} s a seed{of_which} (best epochs {epochs})")
    if times:
        lines += ["", "Training on this machine: " + "; ".join(times) + "."]
    return "\n".join(lines)


def plot_recall(report: dict[str, Any], path: Path) -> None:
    """Test Recall@10 per row, with the published models for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours = [(r["name"], r["recall@10"]) for r in report["rows"] if r["split"] == "test"]
    published = [(f"{name} (published)", recall) for name, recall, *_ in PUBLISHED]
    names = [n for n, _ in ours + published]
    values = [v for _, v in ours + published]
    colors = ["tab:blue"] * len(ours) + ["tab:gray"] * len(published)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.2))
    ax.barh(names[::-1], values[::-1], color=colors[::-1])
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:.4f}", va="center", fontsize=8)
    ax.set_xlabel("Recall@10 (test, full ranking)")
    ax.set_xlim(0, max(values) * 1.2)
    counts = report["counts"]
    ax.set_title(
        f"MovieLens latest-small, 5-core, leave-one-out ({counts['users']} users, "
        f"{counts['items']} items)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})  # no version stamp: stable bytes
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--readme",
        type=Path,
        required=True,
        help="the Markdown page whose marked sections to rewrite",
    )
    parser.add_argument("--results", type=Path, help="a saved `interest-stream eval --json`")
    parser.add_argument("--plot", type=Path, help="the Recall@10 PNG to write (--results)")
    parser.add_argument("--curve", type=Path, help="a saved `interest-stream finetune --json`")
    parser.add_argument("--train", type=Path, help="a saved `interest-stream train --json`")
    parser.add_argument("--command", default="make results", help="named in the README")
    args = parser.parse_args(argv)
    if args.results is None and args.curve is None and args.train is None:
        parser.error("nothing to publish: give --results (with --plot), --curve or --train")
    if args.results is not None:
        if args.plot is None:
            parser.error("--results needs --plot")
        report = orjson.loads(args.results.read_bytes())
        plot_recall(report, args.plot)
        base = args.readme.parent.absolute()
        plot = args.plot.absolute()
        shown = plot.relative_to(base) if plot.is_relative_to(base) else plot
        update_readme(
            args.readme, "results", readme_section(report, shown.as_posix(), args.command)
        )
    if args.train is not None:
        trained = orjson.loads(args.train.read_bytes())
        update_readme(args.readme, "train", train_section(trained, args.command))
    if args.curve is not None:
        records = orjson.loads(args.curve.read_bytes())
        update_readme(args.readme, "curve", curve_section(records, args.command))
    print(f"updated {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
