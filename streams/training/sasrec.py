"""SASRec (Kang & McAuley, 2018), trained here as the ID-only baseline of the evaluation.

    model, record = train_sasrec(split, SasrecConfig(seed=0))
    scores = model.scores(split, "test")       # users x items

The standard configuration: sequences of the last 200 items, 2 self-attention blocks of one
head, hidden size 64, dropout 0.2, learned positions, item embeddings shared with the
output layer; full-softmax cross-entropy at every position of each user's training
sequence (everything before the validation target); Adam. Validation Recall@10 is measured
every ``eval_every`` epochs; training stops after ``patience`` measurements without a better
one and keeps the best (with ``refit``, a second run then trains that many epochs on the
sequences through the validation targets). It knows items only by id: an item with no
training interaction has an untrained embedding, so SASRec cannot rank new items (the
cold-start row).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Collection
from typing import Any

import numpy as np
from tqdm import tqdm

from streams.evaluation.metrics import metrics
from streams.evaluation.protocol import Split, SplitName
from streams.evaluation.run import ranks_by_scores


@dataclasses.dataclass(frozen=True)
class SasrecConfig:
    max_length: int = 200
    hidden: int = 64
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.2
    batch_size: int = 128
    learning_rate: float = 1e-3
    epochs: int = 400  # at most
    eval_every: int = 5
    patience: int = 5  # measurements without a better validation Recall@10
    # Train again for the chosen epochs with the validation targets (as the head's refit).
    refit: bool = False
    seed: int = 0


def _network(n_items: int, config: SasrecConfig) -> Any:
    import torch
    from torch import nn

    class SASRec(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.items = nn.Embedding(n_items + 1, config.hidden, padding_idx=0)  # 0: padding
            self.positions = nn.Embedding(config.max_length, config.hidden)
            self.dropout = nn.Dropout(config.dropout)
            layer = nn.TransformerEncoderLayer(
                config.hidden,
                config.heads,
                dim_feedforward=config.hidden,
                dropout=config.dropout,
                batch_first=True,
                norm_first=True,
            )
            self.blocks = nn.TransformerEncoder(layer, config.blocks, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(config.hidden)
            # Small initial embeddings (as the reference implementations): N(0, 1) ones make
            # the first logits huge and the softmax saturated.
            nn.init.normal_(self.items.weight, std=0.02)
            nn.init.normal_(self.positions.weight, std=0.02)
            with torch.no_grad():
                self.items.weight[0].zero_()
            mask = torch.triu(torch.ones(config.max_length, config.max_length, dtype=torch.bool), 1)
            self.register_buffer("causal", mask)

        def forward(self, seqs: torch.Tensor) -> torch.Tensor:
            """(batch, length) item ids + 1, left-padded with 0 -> (batch, length, hidden)."""
            length = seqs.shape[1]
            x = self.items(seqs) * config.hidden**0.5
            x = x + self.positions(torch.arange(length))[None]
            x = self.dropout(x) * (seqs > 0)[..., None]
            causal: torch.Tensor = self.causal  # type: ignore[assignment]
            x = self.blocks(x, mask=causal[:length, :length], is_causal=True)
            return self.norm(x)

        def logits(self, hidden: torch.Tensor) -> torch.Tensor:
            return hidden @ self.items.weight[1:].T  # items 0..n-1

    return SASRec()


class TrainedSasrec:
    def __init__(self, net: Any, config: SasrecConfig) -> None:
        self.net = net
        self.config = config

    def scores(self, split: Split, which: SplitName) -> np.ndarray:
        import torch

        seqs = _left_padded(
            [s[: split.history_length(u, which)] for u, s in enumerate(split.sequences)],
            self.config.max_length,
        )
        self.net.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(seqs), 256):
                hidden = self.net(torch.from_numpy(seqs[start : start + 256]))[:, -1]
                out.append(self.net.logits(hidden).numpy())
        return np.concatenate(out)


def _left_padded(sequences: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for r, seq in enumerate(sequences):
        tail = seq[-length:] + 1
        out[r, length - len(tail) :] = tail
    return out


def rank(split: Split, which: SplitName, scores: np.ndarray) -> dict[str, float]:
    """The protocol's metrics for SASRec's (users x items) scores."""
    return metrics(*ranks_by_scores(split, which, scores), len(split.items))


def train_sasrec(
    split: Split,
    config: SasrecConfig,
    *,
    cold: Collection[int] = (),
    progress: bool = True,
) -> tuple[TrainedSasrec, dict[str, Any]]:
    """Train on every user's sequence before the validation target; ``cold``: item indices
    left out of training altogether (a cold-start evaluation). With ``config.refit``, train
    again from the same start for the chosen number of epochs on the sequences through the
    validation target, and return that model (as the learned head does:
    streams/training/head.py). (model, record)."""
    started = time.perf_counter()
    model, best_epoch, curve = _fit(split, config, cold, through="validation", progress=progress)
    record: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "curve": curve,
        "best_epoch": best_epoch,
    }
    if config.refit and best_epoch > 0:
        refit_started = time.perf_counter()
        model, _, _ = _fit(
            split, config, cold, through="test", epochs=best_epoch, progress=progress
        )
        record["refit"] = {
            "epochs": best_epoch,
            "seconds": round(time.perf_counter() - refit_started, 1),
        }
    record["seconds"] = round(time.perf_counter() - started, 1)
    return model, record


def _fit(
    split: Split,
    config: SasrecConfig,
    cold: Collection[int],
    *,
    through: SplitName,
    epochs: int | None = None,
    progress: bool,
) -> tuple[TrainedSasrec, int, list[dict[str, Any]]]:
    """One training run on the sequences before ``through``'s target. ``epochs`` None: at
    most ``config.epochs``, the best on validation kept; a number: exactly that many, the
    last kept, no validation. (model, its epoch, the validation curve)."""
    import torch

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    n_items = len(split.items)
    held = np.zeros(n_items, dtype=bool)
    held[list(cold)] = True
    train = [s[: split.history_length(u, through)] for u, s in enumerate(split.sequences)]
    train = [s[~held[s]] for s in train]
    train = [s for s in train if len(s) >= 2]
    inputs = _left_padded([s[:-1] for s in train], config.max_length)
    targets = _left_padded([s[1:] for s in train], config.max_length)  # 0: no target
    net = _network(n_items, config)
    model = TrainedSasrec(net, config)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate, betas=(0.9, 0.98))
    selecting = epochs is None
    best: dict[str, float] = {"recall@10": -1.0, "ndcg@10": -1.0}
    best_state, best_epoch, waited = None, 0, 0
    curve: list[dict[str, Any]] = []
    bar = tqdm(
        range(1, (config.epochs if epochs is None else epochs) + 1),
        desc="SASRec" if selecting else "SASRec refit",
        disable=not progress,
        file=sys.stderr,
    )
    for epoch in bar:
        net.train()
        order = rng.permutation(len(inputs))
        losses = []
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            x = torch.from_numpy(inputs[rows])
            y = torch.from_numpy(targets[rows])
            hidden = net(x)
            keep = y > 0
            loss = torch.nn.functional.cross_entropy(net.logits(hidden[keep]), y[keep] - 1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if not selecting or epoch % config.eval_every:
            continue
        scores = rank(split, "validation", model.scores(split, "validation"))
        curve.append({"epoch": epoch, "loss": float(np.mean(losses)), "validation": scores})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val=f"{scores['recall@10']:.4f}")
        if (scores["recall@10"], scores["ndcg@10"]) > (best["recall@10"], best["ndcg@10"]):
            best, best_epoch, waited = scores, epoch, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= config.patience:
                break
    if epochs is not None:
        return model, epochs, curve
    if best_state is not None:
        net.load_state_dict(best_state)
    return model, best_epoch, curve
