"""Jobs that learn, each in its own process (torch is imported lazily, by the job).

- ``rounds.py``: fine-tuning rounds on a dataset's split, each gated on the hold-out, and
  the one round (:func:`~streams.training.rounds.run_round`) every job runs.
- ``feedback.py``: the job a worker's trigger starts: a round on the stored examples.

The worker never imports these; it starts ``interest-stream finetune --feedback``.
"""
