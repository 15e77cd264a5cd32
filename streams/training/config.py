"""The interest head's training settings, with nothing to import: the CLI reads their
defaults when it builds its parsers, before any training module loads."""

from __future__ import annotations

import dataclasses
import math

# The sums a head that decays by events keeps besides its own half-life: the last event
# (a 1-event half-life), the last few (3), a longer stretch (30) and the whole history (no
# decay). Chosen on MovieLens validation (scripts/head_sweep.py sums5, README).
EXTRA_HALF_LIVES_EVENTS = (1.0, 3.0, 30.0, math.inf)


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    dim: int = 128
    half_life_s: float | None = None  # None: no decay by time
    # Decay by events (x 2^(-1/h) per later event of the user): not order-independent, so
    # the stream cannot fold it for late events; measured beside time half-lives.
    half_life_events: float | None = None
    # The user's other sums, in the same clock (inf: no decay), read out by a learned
    # linear map (streams/head.py); () is the single sum.
    extra_half_lives: tuple[float, ...] = ()
    # Units of a ReLU layer read out of the sums' directions beside the linear readout
    # (streams/head.py, ``mlp``); 0: none. Its output layer starts at zero, so training
    # starts from the linear readout. Chosen on MovieLens data other than test
    # (scripts/head_sweep.py, README): 256 units tied five sums alone on validation over
    # three seeds (0.1984 vs 0.2000) and beat them on the interaction before validation
    # (SHIFT=1: 0.2033 vs 0.1836).
    readout_hidden: int = 256
    # Chosen on MovieLens validation (scripts/head_sweep.py, README): batches of 128 at
    # 1e-3 with patience 5 beat batches of 512 at 3e-3 with patience 3 (0.1787 vs 0.1566).
    epochs: int = 40  # at most
    patience: int = 5  # epochs without a better validation Recall@10 before stopping
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    id_dropout: float = 0.3
    # Leave each example's history out of its softmax, as the protocol leaves it out of
    # the ranking.
    mask_history: bool = True
    # The head kept and validated is an exponential moving average of the trained weights
    # (this much of the average per step; 0: the weights themselves): steadier from epoch
    # to epoch than the weights, and better on MovieLens validation.
    weight_average: float = 0.999
    # After the epoch count is chosen on validation, train again from the start for that
    # many epochs with each user's validation target among the training targets, and
    # keep that head (streams/training/head.py).
    refit: bool = False
    seed: int = 0
