"""Benchmarks of the whole pipeline (the encoder's own is ``encoder/bench.py``).

- ``e2e.py``: ``bench e2e``: broker, worker and producer together: events/s beside the
  framework's own ceiling, and freshness.
- ``soak.py``: ``bench soak``: a long run at a steady rate; memory and lag sampled.
- ``synthetic.py``: the catalogue and events both use.
"""
