"""`python scripts/head_sweep.py [NAME ...]`: the learned head at several settings on
MovieLens, one line each: validation Recall@10 of the epoch kept (what a setting is chosen
by), its epoch, test Recall@10 (read, never chosen by) and seconds, for SEEDS seeds
(default 2) from FIRST_SEED (default 0). The names are the keys of SETTINGS; none: all
of them.

SHIFT=N (default 0) drops each user's last N interactions before the split, so that
validation and test are each user's earlier interactions: with SHIFT=1 the "test" column
is the usual validation target and "validation" the one before it, a second choice
between settings that never reads the real test target.

Needs the train extra and an encoder version (`make export`); reads
DATASET (default ../shared/data/movielens-latest-small).
"""

import dataclasses
import math
import os
import sys
from pathlib import Path

import numpy as np

from encoder.registry import resolve_model_dir
from streams.evaluation.data import Interaction, read_movielens
from streams.evaluation.protocol import Split, five_core, leave_one_out
from streams.evaluation.run import encode_items
from streams.settings import Settings
from streams.training.compare import _head_ranks, summary
from streams.training.head import HeadConfig, train_head

# The settings before the first sweep, spelled out (`train`'s defaults are now
# "sums5-mlp256").
BASE = HeadConfig(
    dim=128,
    half_life_events=10.0,
    epochs=40,
    patience=3,
    batch_size=512,
    learning_rate=3e-3,
    mask_history=False,
    weight_average=0.0,
    readout_hidden=0,
)
BATCH128 = dataclasses.replace(BASE, batch_size=128, learning_rate=1e-3, patience=5)
THREE_SUMS = (1.0, math.inf)  # the last event and the whole history beside the 10 events
AVERAGE = dataclasses.replace(
    BATCH128, mask_history=True, extra_half_lives=THREE_SUMS, weight_average=0.999
)
SUMS5 = dataclasses.replace(AVERAGE, extra_half_lives=(1.0, 3.0, 30.0, math.inf))
SETTINGS = {
    "base": BASE,
    "patience5": dataclasses.replace(BASE, patience=5),
    "dim384": dataclasses.replace(BASE, dim=384, patience=5),
    "dropout0.5": dataclasses.replace(BASE, id_dropout=0.5, patience=5),
    "lr1e-3": dataclasses.replace(BASE, learning_rate=1e-3, patience=5),
    "batch128": BATCH128,
    # the second sweep, from batch128: each example's history out of its softmax, then
    # sums of the last event and of the whole history beside the 10-event one, then the
    # weights' moving average
    "mask": dataclasses.replace(BATCH128, mask_history=True),
    "sums": dataclasses.replace(BATCH128, mask_history=True, extra_half_lives=THREE_SUMS),
    "average": AVERAGE,
    # the third sweep, from average: a slower average (0.9997), ID dropout 0.5, and five
    # sums (1, 3, 30 events and the whole history beside the 10 events)
    "average0.9997": dataclasses.replace(AVERAGE, weight_average=0.9997),
    "average-dropout0.5": dataclasses.replace(AVERAGE, id_dropout=0.5),
    "sums5": SUMS5,
    # the fourth sweep, from sums5: eight sums (2, 5 and 100 events beside the five), the
    # five sums at dimension 256, and with an MLP readout
    "sums8": dataclasses.replace(
        AVERAGE, extra_half_lives=(1.0, 2.0, 3.0, 5.0, 30.0, 100.0, math.inf)
    ),
    "sums5-dim256": dataclasses.replace(SUMS5, dim=256),
    # a ReLU layer of 256 units over the five sums' directions beside the linear readout
    # (`train`'s default)
    "sums5-mlp256": dataclasses.replace(SUMS5, readout_hidden=256),
}


def shifted(split: Split, n: int) -> Split:
    """``split`` without each user's last ``n`` interactions, split again (leave-one-out)."""
    if n == 0:
        return split
    rows = [
        Interaction(
            split.users[u],
            split.items[item],
            float(split.times[u][k]),
            None if split.ratings is None else float(split.ratings[u][k]),
        )
        for u, seq in enumerate(split.sequences)
        for k, item in enumerate(seq[:-n])
    ]
    return leave_one_out(rows, dict(zip(split.items, split.texts, strict=True)))


def main(names: list[str]) -> None:
    first = int(os.environ.get("FIRST_SEED", "0"))
    seeds = range(first, first + int(os.environ.get("SEEDS", "2")))
    shift = int(os.environ.get("SHIFT", "0"))
    path = Path(os.environ.get("DATASET", "../shared/data/movielens-latest-small"))
    data = read_movielens(path)
    split = shifted(leave_one_out(five_core(data.interactions), data.texts), shift)
    settings = Settings()
    vectors, _ = encode_items(split.texts, resolve_model_dir(settings.models_root), settings)
    for name in names or list(SETTINGS):
        val, test, epochs, seconds = [], [], [], []
        for seed in seeds:
            config = dataclasses.replace(SETTINGS[name], seed=seed)
            head, record = train_head(split, vectors, config, progress=False)
            val.append(record["epochs"][record["best_epoch"]]["validation"]["recall@10"])
            test.append(summary(_head_ranks(split, head, vectors, True), len(split.items)))
            epochs.append(record["best_epoch"])
            seconds.append(record["seconds"])
        print(
            f"{name:<12} validation {np.mean(val):.4f} ({' '.join(f'{v:.4f}' for v in val)})  "
            f"test {np.mean([t['recall@10'] for t in test]):.4f}  epochs {epochs}  "
            f"{sum(seconds):.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
