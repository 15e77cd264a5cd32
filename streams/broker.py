"""A real Apache Kafka broker on one machine: ``interest-stream kafka start|stop|status``.

    broker = LocalBroker(home=Path(".cache/kafka"), port=9092)
    broker.start()      # fetch jars (first time), format storage, start, wait for an answer
    broker.status()     # {"running": True, "pid": ..., "bootstrap": "127.0.0.1:9092", ...}
    broker.stop()

The jars come from Maven Central through ``streams/kafka/pom.xml`` (Kafka 4.0.0, pinned:
faust-streaming's maintainers ran its live-broker suite against 4.0.0 with aiokafka 0.14;
3.9.x would be the fallback) into ``home/libs``, outside git. One node is both controller and
broker (KRaft), listening on 127.0.0.1 only; it logs to ``home/broker.log``. Every call is
idempotent: starting a running broker or stopping a stopped one does nothing.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

KAFKA_VERSION = "4.0.0"
POM = Path(__file__).parent / "kafka" / "pom.xml"
LOG4J = Path(__file__).parent / "kafka" / "log4j2.yaml"


class BrokerError(Exception):
    """The local broker cannot be fetched, started or stopped; the message says what to do."""


class LocalBroker:
    def __init__(self, home: Path, port: int = 9092, heap: str = "512m") -> None:
        self.home = Path(home).absolute()
        self.port = port
        self.controller_port = port + 1
        self.heap = heap
        self.libs = self.home / "libs" / KAFKA_VERSION
        self.data = self.home / "data"
        self.config = self.home / "server.properties"
        self.log = self.home / "broker.log"
        self.pid_file = self.home / "broker.pid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- public --------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> dict[str, Any]:
        if self._pid() is not None and _port_open(self.port):
            return self.status()
        java = _require("java", "a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)")
        self.fetch()
        self.home.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if not (self.data / "meta.properties").is_file():
            self._format(java)
        if _port_open(self.port):
            raise BrokerError(
                f"port {self.port} is taken by another process; stop it or pick another "
                "port (--port)"
            )
        argv = [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={LOG4J}",
            f"-Dkafka.logs.dir={self.home}",
            "-cp",
            str(self.libs / "*"),
            "kafka.Kafka",
            str(self.config),
        ]
        log_fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            # posix_spawn, not Popen: the broker outlives this command (`kafka stop` ends it),
            # and a Popen object would complain when collected while its child still runs.
            pid = os.posix_spawn(
                java,
                argv,
                os.environ,
                setsid=True,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log_fd, 1),
                    (os.POSIX_SPAWN_DUP2, log_fd, 2),
                ],
            )
        finally:
            os.close(log_fd)
        self.pid_file.write_text(str(pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                _reap(pid)
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(f"the broker exited at start; see {self.log}")
            if _port_open(self.port) and self._answers():
                return self.status()
            time.sleep(0.5)
        self.stop()
        raise BrokerError(f"the broker did not answer within {timeout:.0f} s; see {self.log}")

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        pid = self._pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return self.status()

    def status(self) -> dict[str, Any]:
        pid = self._pid()
        return {
            "running": pid is not None and _port_open(self.port),
            "pid": pid,
            "bootstrap": self.bootstrap,
            "kafka_version": KAFKA_VERSION,
            "home": str(self.home),
            "log": str(self.log),
        }

    def fetch(self) -> None:
        """Copy the broker's jars from Maven Central into ``libs`` (once)."""
        if (self.libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
            return
        mvn = _require("mvn", "Apache Maven (e.g. apt-get install maven)")
        tmp = self.libs.with_name(self.libs.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
            raise BrokerError("fetching Kafka from Maven Central failed:\n" + "\n".join(tail))
        # slf4j 1.7 comes in transitively; the log4j2 binding needs the 2.x API beside it.
        for old in tmp.glob("slf4j-api-1.*.jar"):
            old.unlink()
        tmp.rename(self.libs)

    # -- internals -----------------------------------------------------------------------

    def _write_config(self) -> None:
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.data}",
                    "num.partitions=4",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=8",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "log.retention.hours=24",
                    # 16 MiB records: a bad 10 MB review must reach the worker to be dead-lettered.
                    "message.max.bytes=16777216",
                    "replica.fetch.max.bytes=16777216",
                    "",
                ]
            )
        )

    def _format(self, java: str) -> None:
        # Kafka wants a base64url-encoded 16-byte UUID, 22 characters without padding. It may
        # start with "-", hence --cluster-id=… rather than a separate argument.
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            [
                java,
                "-Xmx256m",
                f"-Dlog4j2.configurationFile={LOG4J}",
                "-cp",
                str(self.libs / "*"),
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster}",
                "-c",
                str(self.config),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed: {result.stdout}{result.stderr}")

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _answers(self) -> bool:
        """True once the broker serves metadata (the port opens a little earlier)."""
        import asyncio

        from aiokafka.admin import AIOKafkaAdminClient

        async def probe() -> bool:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
            try:
                await admin.start()
                await admin.list_topics()
                return True
            except Exception:
                return False
            finally:
                with contextlib.suppress(Exception):
                    await admin.close()

        return asyncio.run(probe())


def _require(tool: str, what: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BrokerError(f"`{tool}` not found: the local broker needs {what}")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


def _reap(pid: int) -> None:
    """Collect the exit status if the broker was our own child (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
