"""The worker: the Faust app wired from named objects.

- ``app.py``: :func:`build_app` and the :class:`Worker` that holds the parts.
- ``windows.py``: :class:`WindowRunner`, a window of records from Kafka to its ack.
- ``retry.py``: the retry policy: transient failures with back-off, bugs with a traceback.
- ``tables.py``: the user-state tables (changelogged) and their delivery wait.
- ``finetune.py``: the fine-tuning trigger and the launcher of its job.
- ``liveness.py``: records waiting and no window completing: not ready.
- ``gaps.py``: holes Faust can leave in a partition, and reading them again.
- ``metrics.py``, ``stats.py``, ``logs.py``: Prometheus metrics, benchmark statistics, logs.
- ``spawn.py``: a worker in a subprocess on private topics (benchmarks, evaluation).
- ``main.py``: :func:`run_worker`, the ``interest-stream worker`` process, and its bounded stop.
"""
