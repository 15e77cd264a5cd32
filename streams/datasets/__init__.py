"""Replayable data: datasets published as events, and the CSV reader they share.

- ``replay.py``: ``interest-stream replay``: MovieLens (or its shape) into the topics.
- ``csvrows.py``: CSV rows with clear errors (line numbers, missing columns).
"""
