"""One round of incremental fine-tuning of the text encoder (needs the ``train`` extra).

The loss trains the encoder for the way the stream uses it. For an example (a user's history
before some moment, the item that came next) the user vector is computed as the stream
computes it: the forward-decayed weighted sum of the *encoded* history items (DESIGN.md,
"Interest math": the stream's weights and short half-life, over the last ``history``
items), normalized. Every text of a step (each example's history items and next item) is
encoded with gradients, and each user vector is scored against all of them, its own history
masked out; cross-entropy on the next item (a contrastive loss with in-batch negatives):

    loss = -log softmax_i(u · e_i / τ)[next],  i over the step's items not in the history

Items users gave negative feedback on (``TrainingData.negatives``) join the step's items,
up to ``MAX_NEGATIVES`` per example: hard negatives for every row of the step.

Gradients flow through both sides, history and items, as the same encoder serves both.

    result = finetune(source_dir, data, examples, TrainConfig(steps=100), out_dir)
    result["loss_first"], result["loss_last"], result["seconds"]

``out_dir`` receives a Hugging Face / sentence-transformers directory that
``export.pipeline.export_model`` exports like any other source model.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from export.errors import ExportError, MissingExtraError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
MAX_NEGATIVES = 1  # feedback negatives per example and step, besides the in-batch ones


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """Item texts and each user's interactions in time order, with the stream's weights."""

    texts: list[str]  # item index -> text
    sequences: list[np.ndarray]  # per user: item indices
    times: list[np.ndarray]  # per user: event times (s)
    weights: list[np.ndarray]  # per user: event weights (the stream's)
    # per user: items the user gave negative feedback on; they join each step as negatives
    negatives: list[np.ndarray] | None = None
    item_ids: list[str] | None = None  # item index -> id, where the data has ids


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 100
    batch_size: int = 32
    history: int = 4  # the last N history items make the user vector
    half_life_s: float = 86_400.0  # the stream's short half-life
    temperature: float = 0.05
    learning_rate: float = 3e-5
    max_tokens: int = 64  # per text while training (titles are far shorter)
    seed: int = 0


def finetune(
    source_dir: Path,
    data: TrainingData,
    examples: Sequence[tuple[int, int]],
    config: TrainConfig,
    out_dir: Path,
    *,
    pooling: str = "mean",
    log: TextIO = sys.stderr,
    progress: bool = True,
) -> dict[str, Any]:
    """Train on ``examples`` ((user, position): the history is ``sequences[user][:position]``,
    the target ``sequences[user][position]``) and write the model to ``out_dir``."""
    try:
        import torch
        import torch.nn.functional as F
        from tqdm import tqdm
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise MissingExtraError(exc.name or "torch") from exc
    if not examples:
        raise ExportError("no training examples")
    if any(p < 1 for _, p in examples):
        raise ExportError("every example needs at least one history item (position >= 1)")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(source_dir))
    model = AutoModel.from_pretrained(str(source_dir))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)

    def encode(indices: Sequence[int]) -> Any:
        batch = tokenizer(
            [data.texts[i] for i in indices],
            padding=True,
            truncation=True,
            max_length=config.max_tokens,
            return_tensors="pt",
        )
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        if pooling == "cls":
            pooled = hidden[:, 0]
        elif pooling == "max":
            pooled = hidden.masked_fill(mask == 0, -1e9).max(dim=1).values
        else:
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    model.train()
    order = rng.permutation(len(examples))
    losses: list[float] = []
    bar = tqdm(range(config.steps), desc="fine-tune", unit="step", file=log, disable=not progress)
    for step in bar:
        picks = [
            examples[order[(step * config.batch_size + k) % len(order)]]
            for k in range(config.batch_size)
        ]
        windows = [(u, max(0, p - config.history), p) for u, p in picks]
        items = sorted(
            {int(i) for u, lo, p in windows for i in data.sequences[u][lo : p + 1]}
            | {int(i) for u, _ in picks for i in _negatives(data, u, rng)}
        )
        column = {item: n for n, item in enumerate(items)}
        fresh = encode(items)  # the step's items: every history item and every next item
        users, targets, masks = [], [], []
        for u, lo, p in windows:
            seq = data.sequences[u]
            t = data.times[u][lo:p]
            w = data.weights[u][lo:p] * np.exp2((t - t.max()) / config.half_life_s)
            rows = torch.as_tensor([column[int(i)] for i in seq[lo:p]])
            users.append(torch.as_tensor(w, dtype=fresh.dtype) @ fresh[rows])
            targets.append(column[int(seq[p])])
            seen = torch.zeros(len(items), dtype=torch.bool)
            seen[[column[int(i)] for i in seq[:p] if int(i) in column]] = True
            seen[targets[-1]] = False  # a repeated item may be the target again
            masks.append(seen)
        user = F.normalize(torch.stack(users), dim=-1)
        logits = (user @ fresh.T) / config.temperature
        logits = logits.masked_fill(torch.stack(masks), float("-inf"))
        loss = F.cross_entropy(logits, torch.as_tensor(targets))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    _save(model, source_dir, out_dir)
    window = max(1, min(10, len(losses) // 2))
    return {
        "steps": config.steps,
        "examples": len(examples),
        "loss_first": float(np.mean(losses[:window])),
        "loss_last": float(np.mean(losses[-window:])),
        "seconds": round(time.perf_counter() - started, 1),
        "config": dataclasses.asdict(config),
    }


def _negatives(data: TrainingData, user: int, rng: np.random.Generator) -> np.ndarray:
    """Up to MAX_NEGATIVES of the user's negative-feedback items, drawn at random."""
    if data.negatives is None or not len(data.negatives[user]):
        return np.zeros(0, dtype=np.int64)
    pool = data.negatives[user]
    return rng.choice(pool, min(len(pool), MAX_NEGATIVES), replace=False)


def _save(model: Any, source_dir: Path, out_dir: Path) -> None:
    """The source directory (tokenizer, sentence-transformers modules) with new weights."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(source_dir, out_dir, ignore=shutil.ignore_patterns(*WEIGHT_FILES, "README.md"))
    model.save_pretrained(str(out_dir))
