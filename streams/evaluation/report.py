"""Printing and publishing an evaluation report.

print(format_table(report))                 # the terminal table
compare_pipeline(report, pipeline_metrics)  # adds the pipeline row and the agreement
markdown_table(report)                      # the README's results table (test split)
"""

from __future__ import annotations

from typing import Any

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
