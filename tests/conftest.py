"""Shared fixtures: model versions exported once per session, and a fake model.

Exports need the ``train`` extra; tests that ask for an exported model skip without it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

# Lines a worker repeats by the hundred while the broker is away: left out of a failed
# test's log tail, so that the lines around them show.
BROKER_AWAY_NOISE = (
    "Unable connect to node",
    "Unable to update metadata",
    "Unable to request metadata",
    "Failed fetch messages",
    "Group Coordinator Request failed",
)
LOG_TAIL_LINES = 120


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test shows the tail of each ``*.log`` in its ``tmp_path`` (the workers'
    logs), which pytest deletes with the folder after a few sessions."""
    outcome = yield
    report = outcome.get_result()
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if report.when != "call" or not report.failed or tmp_path is None:
        return
    for log in sorted(Path(tmp_path).glob("*.log")):
        report.sections.append((f"{log.name}, last lines", log_tail(log)))


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path``, without the broker-away noise (counted)."""
    kept, dropped = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if any(noise in line for noise in BROKER_AWAY_NOISE):
            dropped += 1
        else:
            kept.append(line)
    head = f"({dropped} lines about the broker being away left out)\n" if dropped else ""
    return head + "\n".join(kept[-lines:])


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def default_model_dir(models_root: Path) -> Path:
    """all-MiniLM-L6-v2 exported to fp32 once for the whole session (about 25 s)."""
    pytest.importorskip("torch")
    from export.pipeline import export_model

    return export_model(None, models_root, precision="fp32", log=_Null()).path


@pytest.fixture(scope="session")
def tiny_source_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain Hugging Face BERT (no sentence-transformers files), random and tiny."""
    pytest.importorskip("torch")
    import torch
    from transformers import BertConfig, BertModel

    from export.source import default_model_dir

    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).eval().save_pretrained(path)
    tokenizer = (default_model_dir() / "tokenizer.json").read_text()
    (path / "tokenizer.json").write_text(tokenizer)
    (path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 64}))
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_source_dir: Path, models_root: Path) -> Path:
    from export.pipeline import export_model

    return export_model(
        tiny_source_dir, models_root, precision="fp32", set_current=False, log=_Null()
    ).path


@pytest.fixture
def tiny_root(tmp_path: Path, tiny_source_dir: Path) -> Path:
    """A models root whose current version is the tiny model (its weights can be trained)."""
    from export.pipeline import export_model

    root = tmp_path / "models"
    export_model(tiny_source_dir, root, set_current=True, log=_Null())
    return root


class _Null:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


@pytest.fixture
def reliability():
    """Records a fault scenario's figures for the README table (tests/reliability.py)."""
    from tests.reliability import recorder

    return recorder()


@pytest.fixture(scope="session")
def kafka_broker():
    """The real local broker: started once (idempotent: CI has usually started it already)."""
    import os

    from streams.kafka.broker import LocalBroker

    broker = LocalBroker(Path(os.environ.get("INTEREST_KAFKA_HOME", ".cache/kafka")))
    broker.start()
    return broker


@dataclasses.dataclass(frozen=True)
class QdrantServer:
    url: str
    api_key: str | None


@pytest.fixture(scope="session")
def qdrant_server(tmp_path_factory: pytest.TempPathFactory):
    """A Qdrant server: INTEREST_TEST_QDRANT_URL (and _API_KEY) when set, else the local
    binary (streams/store/server.py) started once on loopback with a key and fresh storage.
    Skips, saying why, where there is neither. Tests give their stores a prefix of their
    own (``unique_prefix``): the server keeps collections and aliases between tests."""
    import os

    from streams.store.server import LocalQdrant, qdrant_binary

    url = os.environ.get("INTEREST_TEST_QDRANT_URL")
    if url:
        yield QdrantServer(url, os.environ.get("INTEREST_TEST_QDRANT_API_KEY"))
        return
    if qdrant_binary() is None:
        pytest.skip("no Qdrant server: set INTEREST_TEST_QDRANT_URL or INTEREST_QDRANT_BIN")
    with LocalQdrant.start(tmp_path_factory.mktemp("qdrant-server"), "test-key") as server:
        yield QdrantServer(server.url, server.api_key)


def unique_prefix() -> str:
    """A collection prefix no other test uses."""
    import uuid

    return f"t{uuid.uuid4().hex[:10]}_"
