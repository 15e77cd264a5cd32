"""`SWEEP=1 make feedback-round`: a feedback round's warm start at several (epochs,
learning rate) pairs, each scored on the round's hold-out against the served head.

Runs in the environment scripts/feedback_round.sh sets (its topics, its scratch models
root), after the worker has stored the examples; prints one line per setting.
"""

import time

from encoder.registry import ModelRegistry
from streams.evaluation.run import encode_items
from streams.head import load_head
from streams.settings import Settings
from streams.training.feedback import feedback_data, head_examples, hold_out_head, read_examples
from streams.training.head import HeadFinetune, finetune_head

SETTINGS = [(1, 3e-4), (4, 3e-4), (8, 1e-4), (2, 1e-3), (8, 3e-3)]


def main() -> None:
    settings = Settings()
    registry = ModelRegistry(settings.models_root)
    path = registry.path(registry.current())
    served = load_head(path)
    records = read_examples(settings)
    for size in (3200, 20000):
        data, picked, hold_out = feedback_data(records, None, size, 0)
        e, _ = encode_items(data.texts, path, settings, progress=False)
        base = hold_out_head(served, e, data, hold_out)["recall@10"]
        examples = head_examples(data, [k for k, _ in picked])
        for epochs, lr in SETTINGS:
            start = time.perf_counter()
            config = HeadFinetune(epochs=epochs, learning_rate=lr)
            tuned, _ = finetune_head(served, e, data.item_ids, examples, config, progress=False)
            score = hold_out_head(tuned, e, data, hold_out)["recall@10"]
            print(
                f"examples {len(picked):>6}  hold-out {len(hold_out):>5}  epochs {epochs}  "
                f"lr {lr:.0e}  served {base:.4f}  tuned {score:.4f}  "
                f"{time.perf_counter() - start:.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
