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

``secure=SecureListener(...)`` adds a SASL_SSL listener (SCRAM-SHA-256 over TLS, the users
created when the storage is formatted) beside the plaintext one, for tests of the clients'
security settings; :func:`make_keystore` makes its self-signed key and the CA file clients
trust.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from streams.errors import StreamError

KAFKA_VERSION = "4.0.0"
POM = Path(__file__).parent / "pom.xml"
LOG4J = Path(__file__).parent / "log4j2.yaml"


class BrokerError(StreamError):
    """The local broker cannot be fetched, started or stopped; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class SecureListener:
    """A SASL_SSL listener: SCRAM-SHA-256 users over TLS with a PKCS12 keystore."""

    port: int
    keystore: Path
    keystore_password: str
    users: dict[str, str]  # SCRAM-SHA-256 user name -> password

    def __repr__(self) -> str:  # never the passwords
        return f"SecureListener(port={self.port}, users={sorted(self.users)})"


def make_keystore(directory: Path, password: str) -> tuple[Path, Path]:
    """A self-signed key for 127.0.0.1 and localhost (``keytool``, from the JDK the broker
    needs anyway): (PKCS12 keystore, PEM certificate for the clients' CA file)."""
    keytool = _require("keytool", "a Java 17+ runtime (keytool comes with it)")
    directory.mkdir(parents=True, exist_ok=True)
    keystore, cafile = directory / "broker.p12", directory / "ca.pem"
    keystore.unlink(missing_ok=True)
    for argv in (
        ["-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
         "-validity", "30", "-dname", "CN=localhost",
         "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-keystore", str(keystore),
         "-storetype", "PKCS12", "-storepass", password, "-keypass", password],
        ["-exportcert", "-rfc", "-alias", "broker", "-keystore", str(keystore),
         "-storepass", password, "-file", str(cafile)],
    ):  # fmt: skip
        done = subprocess.run([keytool, *argv], capture_output=True, text=True)
        if done.returncode != 0:
            raise BrokerError(f"keytool {argv[0]} failed: {done.stdout}{done.stderr}")
    return keystore, cafile


class LocalBroker:
    def __init__(
        self,
        home: Path,
        port: int = 9092,
        heap: str = "512m",
        secure: SecureListener | None = None,
    ) -> None:
        self.home = Path(home).absolute()
        self.port = port
        self.secure = secure
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

    @property
    def secure_bootstrap(self) -> str:
        if self.secure is None:
            raise BrokerError("this broker has no SASL_SSL listener")
        return f"127.0.0.1:{self.secure.port}"

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
        listeners = [
            f"PLAINTEXT://127.0.0.1:{self.port}",
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
        ]
        advertised = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        secure: list[str] = []
        if self.secure is not None:
            listeners.append(f"SASL_SSL://127.0.0.1:{self.secure.port}")
            advertised.append(f"SASL_SSL://127.0.0.1:{self.secure.port}")
            protocols.append("SASL_SSL:SASL_SSL")
            prefix = "listener.name.sasl_ssl."
            secure = [
                "sasl.enabled.mechanisms=SCRAM-SHA-256",
                f"{prefix}scram-sha-256.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                f"{prefix}ssl.keystore.type=PKCS12",
                f"{prefix}ssl.keystore.location={self.secure.keystore}",
                f"{prefix}ssl.keystore.password={self.secure.keystore_password}",
                f"{prefix}ssl.key.password={self.secure.keystore_password}",
            ]
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners={','.join(listeners)}",
                    f"advertised.listeners={','.join(advertised)}",
                    "controller.listener.names=CONTROLLER",
                    f"listener.security.protocol.map={','.join(protocols)}",
                    "inter.broker.listener.name=PLAINTEXT",
                    *secure,
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
        self.config.chmod(0o600)  # it may hold the keystore password

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
                *(
                    arg
                    for user, password in (self.secure.users if self.secure else {}).items()
                    for arg in ("--add-scram", f"SCRAM-SHA-256=[name={user},password={password}]")
                ),
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
