"""Kafka: topic names and creation, client security, consumer groups, the local broker.

- ``topics.py``: the pipeline's topics (names, partitions, configs) and their creation.
- ``client.py``: security options for aiokafka and Faust, from the settings.
- ``groups.py``: a group's committed offsets and lag, and waiting until it caught up.
- ``broker.py``: the local single-node broker (KRaft) for development and tests, with its
  ``pom.xml`` (the jars from Maven Central) and ``log4j2.yaml`` beside it.
"""
