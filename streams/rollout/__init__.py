"""Everything of a roll-out: a new model version built beside the served one, then served.

- ``dual.py``: inside one worker, both versions written live while the new one is
  backfilled, then the switch (``INTEREST_ROLLOUT=true``).
- ``backfill.py``: the new version's items and users rebuilt from the topics.
- ``watch.py``: ``interest-stream rollout``: follow a second consumer group's backfill.
- ``switch.py``: point the aliases at a version; drop the old one after a grace period.
"""
