"""Parity: does the ONNX file reproduce a fresh PyTorch model?

The reference comes from a *fresh* ``AutoModel.from_pretrained`` with the library's default
attention, never from the module that was exported: tracing can leave an in-memory model
changed, and a reference taken from it can hide a wrong graph. Pooling and normalisation of
the reference are done here in float64 numpy, apart from the exported torch code.

Cases: single texts (ASCII, accents, CJK, emoji, one character, over the max length), a sweep
of lengths from one token to the maximum, and batches of 1, 7 and 64 that mix lengths, so
that padding is exercised.

    report = check_parity(source, fp32_path, candidate_path, "int8")
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from tokenizers import Tokenizer
from transformers import AutoModel

from encoder.tokenize import pad
from export.errors import ParityError
from export.graph import quiet
from export.source import SourceModel

FP32_ATOL = 1e-4
MIN_COSINE = 0.99

TEXTS = {
    "ascii": "Toy Story (1995) Adventure|Animation|Children|Comedy|Fantasy",
    "accents": "Amélie (2001) — une comédie délicieuse, très française; Crème brûlée à Zoë.",
    "cjk": "千と千尋の神隠し (2001) 宮崎駿のアニメーション映画。東京で見ました。",
    "emoji": "Loved it 🎬🍿🔥 10/10 would watch again 😂👍🏽",
    "one-char": "a",
    "over-max": "A long review that keeps going. " * 200,
}
WORDS = [
    "the",
    "a",
    "movie",
    "film",
    "great",
    "plot",
    "slow",
    "actor",
    "brilliant",
    "boring",
    "épique",
    "映画",
    "좋은",
    "фильм",
    "🎥",
    "twist",
    "ending",
    "sequel",
    "noir",
    "comedy",
    "drama",
    "score",
    "音楽",
    "naïve",
    "déjà",
    "vu",
]


@dataclasses.dataclass
class Case:
    name: str
    rows: list[np.ndarray]
    texts: list[str] | None = None


def build_cases(tokenizer_json: str, max_length: int) -> list[Case]:
    tok = Tokenizer.from_str(tokenizer_json)
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)

    def ids(text: str) -> np.ndarray:
        return np.asarray(tok.encode(text).ids, dtype=np.int64)

    cases = [Case(f"single-{k}", [ids(v)], [v]) for k, v in TEXTS.items()]

    full = ids(TEXTS["over-max"])  # max_length ids: [CLS] ... [SEP]
    sweep = [n for n in sorted({1, 2, 3, 8, 17, 32, 64, 128, max_length}) if n <= len(full)]
    sweep_rows = [np.concatenate([full[: max(1, n - 1)], full[-1:]])[:n] for n in sweep]
    cases += [Case(f"length-{n}", [row]) for n, row in zip(sweep, sweep_rows, strict=True)]

    rng = random.Random(1234)

    def text(max_words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, max_words)))

    seven = [*list(TEXTS.values())[:5], text(40), text(300)]
    cases.append(Case("batch-7", [ids(t) for t in seven], seven))
    sixty_four = [text(rng.choice([3, 12, 60, 400])) for _ in range(64)]
    cases.append(Case("batch-64", [ids(t) for t in sixty_four], sixty_four))
    cases.append(Case("batch-sweep", sweep_rows))
    return cases


def reference(source: SourceModel, cases: list[Case]) -> list[np.ndarray]:
    with quiet():
        model = AutoModel.from_pretrained(str(source.path)).eval()  # fresh, default attention
    out = []
    with torch.no_grad():
        for case in cases:
            ids, mask = pad(case.rows, pad_id=0)
            hidden = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))[
                0
            ]
            out.append(_pool(hidden.double().numpy(), mask, source.pooling))
    return out


def _pool(hidden: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    m = mask[:, :, None].astype(np.float64)
    if pooling == "cls":
        pooled = hidden[:, 0]
    elif pooling == "max":
        pooled = np.where(m > 0, hidden, -np.inf).max(axis=1)
    else:
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def run_onnx(path: Path, cases: list[Case]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [
        session.run(
            None, dict(zip(("input_ids", "attention_mask"), pad(c.rows, pad_id=0), strict=True))
        )[0]
        for c in cases
    ]


def check_fp32(
    cases: list[Case], onnx_out: list[np.ndarray], ref: list[np.ndarray], atol: float = FP32_ATOL
) -> dict[str, Any]:
    worst = {"diff": -1.0}
    for case, got, want in zip(cases, onnx_out, ref, strict=True):
        diff = np.abs(got.astype(np.float64) - want).max(axis=1)
        row = int(diff.argmax())
        if diff[row] > worst["diff"]:
            worst = _describe(case, row, float(diff[row]), "diff")
    if not worst["diff"] <= atol:  # NaN fails too
        raise ParityError(
            f"fp32 parity failed: max |onnx - torch| = {worst['diff']:.3g} > {atol:g} "
            f"in case {worst['case']} row {worst['row']} ({worst['tokens']} tokens)"
            + (f": {worst['text']!r}" if worst.get("text") else ""),
            worst,
        )
    return {
        "fp32_max_abs_diff": worst["diff"],
        "fp32_worst_case": worst["case"],
        "atol": atol,
        "cases": len(cases),
        "rows": sum(len(c.rows) for c in cases),
    }


def check_cosine(
    precision: str,
    cases: list[Case],
    got_all: list[np.ndarray],
    fp32_all: list[np.ndarray],
    min_cosine: float = MIN_COSINE,
) -> dict[str, Any]:
    worst = {"cosine": 2.0}
    for case, got, ref in zip(cases, got_all, fp32_all, strict=True):
        g, r = got.astype(np.float64), ref.astype(np.float64)
        cos = (g * r).sum(1) / (np.linalg.norm(g, axis=1) * np.linalg.norm(r, axis=1))
        row = int(np.nan_to_num(cos, nan=-2.0).argmin())
        if not cos[row] >= worst["cosine"]:
            worst = _describe(case, row, float(cos[row]), "cosine")
    if not worst["cosine"] >= min_cosine:
        raise ParityError(
            f"{precision} parity failed: cosine to fp32 = {worst['cosine']:.4f} < {min_cosine} "
            f"in case {worst['case']} row {worst['row']} ({worst['tokens']} tokens)"
            + (f": {worst['text']!r}" if worst.get("text") else ""),
            worst,
        )
    return {
        f"{precision}_min_cosine": worst["cosine"],
        f"{precision}_worst_case": worst["case"],
        "min_cosine": min_cosine,
    }


def _describe(case: Case, row: int, value: float, key: str) -> dict[str, Any]:
    text = case.texts[row] if case.texts else None
    return {
        key: value,
        "case": case.name,
        "row": row,
        "tokens": len(case.rows[row]),
        "text": text[:80] if text else None,
    }
