"""Jobs that learn, each in its own process (torch is imported lazily, by the job).

- ``rounds.py``: fine-tuning rounds on a dataset's split, each gated on the hold-out, and
  the one round (:func:`~streams.training.rounds.run_round`) every job runs.
- ``feedback.py``: the job a worker's trigger starts: a round on the stored examples.
- ``head.py``, ``sasrec.py``, ``compare.py``, ``versions.py``: ``interest-stream train``: the
  learned interest head, the SASRec baseline, their comparison, the head's model version.

The worker never imports these; it starts ``interest-stream finetune --feedback``.
"""
