"""`make compose-smoke`: docker/compose.yml, the file users get, run for real with podman.

No container registry is reachable here, so the official images are replaced by local
stand-ins built from Debian packages and what the project has (docker/local/README.md);
only the image names differ, through the compose file's variables. Then, against the
stack, from the host:

    up -> every healthcheck passes -> produce a MovieLens slice (producer login, port 29092)
    -> every event counted in Qdrant -> recommendations with the read-only key (one
    query_points call, the README's downstream query) -> scale the worker to 2: both
    scraped by Prometheus, both holding partitions -> kill -9 one: its partitions move to
    the other, a second slice is counted whole -> down (volumes too), nothing left running.

It prints a table of the checks with their times (`--readme` writes it into docs/operations.md).
Podman runs with the options this sandbox accepts (vfs storage, runc, cgroupfs, no default
ulimits) from config files in the scratch folder, data/compose-smoke/, which also caches
the Debian root file system and the images between runs. Grafana (no Debian package) is not
started. The trainer image is not built either (torch's wheel index is not reachable here):
the `models` volume is seeded with the host's exported model, so `model-init` finds one and
runs on the worker image, tagged as the trainer.

Needs: podman, runc, slirp4netns, debootstrap (Debian packages), podman-compose (PyPI),
Maven (for one more Kafka jar, the tools behind the healthcheck), and `make setup`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "data" / "compose-smoke"
COMPOSE = ROOT / "docker" / "compose.yml"
LOCAL = ROOT / "docker" / "local"
DATASET = Path(os.environ.get("DATASET", ROOT.parent / "shared/data/movielens-latest-small"))
QDRANT_BIN = Path(os.environ.get("INTEREST_QDRANT_BIN", ROOT.parent / "shared/tools/qdrant/qdrant"))
PROJECT = "interest-stream-smoke"
TAG = "smoke"
BASE = "localhost/interest-stream-local/bookworm:12"
IMAGES = {
    "KAFKA_IMAGE": "localhost/interest-stream-local/kafka:4.0.0",
    "QDRANT_IMAGE": "localhost/interest-stream-local/qdrant:1.19.0",
    "PROMETHEUS_IMAGE": "localhost/interest-stream-local/prometheus:debian",
    "PYTHON_IMAGE": BASE,
}
SERVICES = ["kafka", "qdrant", "topic-init", "model-init", "worker", "prometheus"]
HEALTHY = ["kafka", "qdrant", "worker", "prometheus"]
SLICES = ((1, 20), (21, 40))  # MovieLens user ids of the two slices produced
PARTITIONS = 6
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
pids_limit = 0
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
default_rootless_network_cmd = "slirp4netns"
"""


class SmokeError(Exception):
    pass


class Smoke:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str]] = []
        self.env = dict(os.environ)
        self.secrets = {
            name: secrets.token_hex(24)
            for name in (
                "KAFKA_WORKER_PASSWORD",
                "KAFKA_PRODUCER_PASSWORD",
                "QDRANT_API_KEY",
                "QDRANT_READ_ONLY_API_KEY",
                "GRAFANA_ADMIN_PASSWORD",
            )
        }

    # -- plumbing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Time one check; the body appends what it found to the list it gets."""
        found: list[str] = []
        started = time.monotonic()
        print(f"-- {name}", file=sys.stderr, flush=True)
        try:
            yield found
        except Exception as exc:
            self.rows.append((name, time.monotonic() - started, f"FAILED: {exc}"))
            raise
        self.rows.append((name, time.monotonic() - started, "; ".join(found) or "ok"))

    def run(self, *cmd: str | Path, check: bool = True, quiet: bool = False, **kw: Any) -> str:
        done = subprocess.run(
            [str(c) for c in cmd], env=kw.pop("env", self.env), capture_output=True, text=True, **kw
        )
        if check and done.returncode != 0:
            tail = (done.stdout + done.stderr).strip()[-2000:]
            raise SmokeError(
                f"{' '.join(str(c) for c in cmd[:4])} ... exited {done.returncode}:\n{tail}"
            )
        if not quiet and done.stderr.strip():
            print(done.stderr.strip()[-500:], file=sys.stderr)
        return done.stdout

    def podman(self, *args: str | Path, **kw: Any) -> str:
        return self.run("podman", *args, **kw)

    def compose(self, *args: str, **kw: Any) -> str:
        tool = shutil.which("podman-compose") or str(ROOT / ".venv/bin/podman-compose")
        return self.run(tool, "-p", PROJECT, "-f", COMPOSE, *args, **kw)

    def has_image(self, name: str) -> bool:
        return subprocess.run(["podman", "image", "exists", name], env=self.env).returncode == 0

    def containers(self, service: str) -> list[str]:
        out = self.podman(
            "ps",
            "--filter",
            f"label=io.podman.compose.project={PROJECT}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--format",
            "{{.Names}}",
        )
        return sorted(out.split())

    def health(self, name: str) -> str:
        state = self.state(name)
        health = state.get("Health") or state.get("Healthcheck") or {}
        return str(health.get("Status") or state.get("Status", "?"))

    # -- setup -------------------------------------------------------------------------------
    def configure_podman(self) -> None:
        SCRATCH.mkdir(parents=True, exist_ok=True)
        (SCRATCH / "containers.conf").write_text(CONTAINERS_CONF)
        (SCRATCH / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{SCRATCH}/storage"\n'
            f'runroot = "{SCRATCH}/run"\n'
        )
        self.env |= {
            "CONTAINERS_CONF": str(SCRATCH / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(SCRATCH / "storage.conf"),
            "TAG": TAG,
            "TOPIC_PARTITIONS": str(PARTITIONS),
            "LOG_LEVEL": "info",
            **IMAGES,
            **self.secrets,
        }
        missing = [t for t in ("podman", "runc", "debootstrap", "mvn") if not shutil.which(t)]
        if missing:
            raise SmokeError(
                f"missing {', '.join(missing)}: apt-get install podman runc slirp4netns "
                "debootstrap maven"
            )

    def base_image(self, found: list[str]) -> None:
        if self.has_image(BASE):
            found.append(f"{BASE} (cached)")
            return
        rootfs = SCRATCH / "rootfs"
        shutil.rmtree(rootfs, ignore_errors=True)
        self.run(
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates,wget",
            "bookworm",
            rootfs,
            "http://deb.debian.org/debian",
            quiet=True,
        )
        (rootfs / "usr/bin/python").symlink_to("python3")  # as the official image has it
        # pip and apt inside the builds reach PyPI and Debian the way this host does
        host_ca = Path(self.env.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
        if host_ca.is_file():
            shutil.copyfile(host_ca, rootfs / "etc/ssl/certs/ca-certificates.crt")
        (rootfs / "etc/pip.conf").write_text(
            "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ndefault-timeout = 180\n"
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        self.run("podman", "import", "--change", "CMD=/bin/bash", "-", BASE, stdin=tar.stdout)
        tar.wait()
        shutil.rmtree(rootfs)
        found.append(f"{BASE} from debootstrap")

    def local_image(self, variable: str, containerfile: str, context: Path) -> str:
        name = IMAGES[variable]
        if not self.has_image(name):
            self.podman(
                "build", "-q", "-f", LOCAL / containerfile, "--build-arg", f"BASE={BASE}",
                "-t", name, context, quiet=True,
            )  # fmt: skip
            return name
        return f"{name} (cached)"

    def kafka_context(self) -> Path:
        from streams.kafka.broker import KAFKA_VERSION, LocalBroker

        broker = LocalBroker(home=ROOT / ".cache" / "kafka")  # `interest-stream kafka`'s
        broker.fetch()  # the local broker's jars, as `interest-stream kafka start` fetches them
        context = SCRATCH / "kafka-context"
        shutil.rmtree(context, ignore_errors=True)
        shutil.copytree(broker.libs, context / "libs")
        # the tools jar behind kafka-broker-api-versions.sh and kafka-consumer-groups.sh
        self.run(
            "mvn", "-q", "dependency:copy",
            f"-Dartifact=org.apache.kafka:kafka-tools:{KAFKA_VERSION}",
            f"-DoutputDirectory={context / 'libs'}", cwd=SCRATCH,
        )  # fmt: skip
        shutil.copytree(LOCAL / "kafka-bin", context / "kafka-bin")
        shutil.copyfile(ROOT / "streams/kafka/log4j2.yaml", context / "log4j2.yaml")
        return context

    def qdrant_context(self) -> Path:
        if not QDRANT_BIN.is_file():
            raise SmokeError(f"no Qdrant binary at {QDRANT_BIN} (INTEREST_QDRANT_BIN)")
        context = SCRATCH / "qdrant-context"
        context.mkdir(exist_ok=True)
        shutil.copy2(QDRANT_BIN, context / "qdrant")
        return context

    def seed_models(self, found: list[str]) -> None:
        models = ROOT / "data" / "models"
        if not (models / "CURRENT").is_file():
            self.run(ROOT / ".venv/bin/interest-stream", "export", "--out", models, quiet=True)
        version = (models / "CURRENT").read_text().strip()
        volume = f"{PROJECT}_models"
        if subprocess.run(["podman", "volume", "exists", volume], env=self.env).returncode:
            self.podman("volume", "create", volume)
        self.podman(
            "run", "--rm", "-v", f"{volume}:/models", "-v", f"{models}:/src:ro", BASE,
            "sh", "-c", "cp -a /src/. /models/ && chown -R 10001:10001 /models",
        )  # fmt: skip
        # model-init runs `[ -f /models/CURRENT ] || interest-stream export`: it finds CURRENT
        self.podman("tag", f"interest-stream/worker:{TAG}", f"interest-stream/trainer:{TAG}")
        found.append(f"models volume holds {version} (CURRENT)")

    # -- the stack ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def healthcheck_pump(self) -> Iterator[None]:
        """Podman runs healthchecks from systemd timers; without systemd (as here) nothing
        runs them, so this runs `podman healthcheck run` on every container every 5 s."""
        stop = threading.Event()

        def pump() -> None:
            while not stop.wait(5):
                out = subprocess.run(
                    ["podman", "ps", "--filter", f"label=io.podman.compose.project={PROJECT}",
                     "--format", "{{.Names}}"],
                    env=self.env, capture_output=True, text=True,
                ).stdout  # fmt: skip
                for name in out.split():
                    subprocess.run(
                        ["podman", "healthcheck", "run", name], env=self.env, capture_output=True
                    )

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def wait_healthy(self, services: list[str], timeout: float, found: list[str]) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = {n: self.health(n) for s in services for n in self.containers(s)}
            names = {s for s in services if self.containers(s)}
            if names == set(services) and all(v == "healthy" for v in states.values()):
                found.append(", ".join(f"{n} healthy" for n in sorted(states)))
                return
            if time.monotonic() > deadline:
                raise SmokeError(f"not healthy after {timeout:.0f} s: {states}")
            time.sleep(3)

    def host_settings(self) -> dict[str, str]:
        """The host's settings for the stack: Kafka as `producer`, Qdrant read-only."""
        env = {k: v for k, v in self.env.items() if not k.startswith("INTEREST_")}
        env |= {
            "INTEREST_KAFKA_BOOTSTRAP": "localhost:29092",
            "INTEREST_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "INTEREST_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "INTEREST_KAFKA_SASL_USERNAME": "producer",
            "INTEREST_KAFKA_SASL_PASSWORD": self.secrets["KAFKA_PRODUCER_PASSWORD"],
            "INTEREST_CONSUMER_GROUP": "interest-stream",
            "INTEREST_QDRANT_URL": "http://localhost:6333",
            "INTEREST_QDRANT_API_KEY": self.secrets["QDRANT_READ_ONLY_API_KEY"],
            "INTEREST_MODEL_DIR": str(ROOT / "data" / "models"),
        }
        return env

    def write_slice(self, users: tuple[int, int]) -> Path:
        """A MovieLens folder holding the ratings and tags of users ``users`` (inclusive)."""
        folder = SCRATCH / f"slice-{users[0]}-{users[1]}"
        folder.mkdir(exist_ok=True)
        shutil.copyfile(DATASET / "movies.csv", folder / "movies.csv")
        for name in ("ratings.csv", "tags.csv"):
            with (DATASET / name).open(newline="") as src, (folder / name).open("w") as dst:
                rows = csv.reader(src)
                out = csv.writer(dst, lineterminator="\n")
                out.writerow(next(rows))
                out.writerows(r for r in rows if users[0] <= int(r[0]) <= users[1])
        return folder

    def produce(self, users: tuple[int, int], found: list[str]) -> int:
        folder = self.write_slice(users)
        out = self.run(
            ROOT / ".venv/bin/interest-stream", "replay", "--path", folder,
            "--wait-items", "300", "--json", env=self.host_settings(), quiet=True,
        )  # fmt: skip
        sent = json.loads(out)["events"]
        count = int(sent["records"])
        found.append(f"users {users[0]}-{users[1]}: {count} events sent as `producer`")
        return count

    def event_total(self) -> int:
        from streams.store import QdrantStore

        key = self.secrets["QDRANT_READ_ONLY_API_KEY"]
        store = QdrantStore.connect("http://localhost:6333", key)
        try:
            return store.event_total()
        finally:
            store.close()

    def wait_counted(self, expected: int, timeout: float, found: list[str]) -> None:
        deadline, total = time.monotonic() + timeout, -1
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # the collections appear with the first write
                total = self.event_total()
            if total == expected:
                found.append(f"{total} events counted in Qdrant (read-only key), 0 lost")
                return
            if total > expected:
                raise SmokeError(f"{total} events counted, {expected} sent: duplicates")
            time.sleep(3)
        raise SmokeError(f"{total} of {expected} events counted after {timeout:.0f} s")

    def recommend(self, found: list[str]) -> None:
        from qdrant_client import QdrantClient, models

        from streams.store.base import point_id

        client = QdrantClient(
            url="http://localhost:6333", api_key=self.secrets["QDRANT_READ_ONLY_API_KEY"]
        )
        user = str(SLICES[0][0])
        hits = client.query_points(
            "items",
            query=point_id("user", user),
            lookup_from=models.LookupLocation(collection="users", vector="short"),
            limit=10,
        ).points
        if len(hits) != 10:
            raise SmokeError(f"user {user}: {len(hits)} recommendations, not 10")
        try:
            client.delete_collection("items")
        except Exception:  # 403 Forbidden: the key can only read
            pass
        else:
            raise SmokeError("the read-only key deleted a collection")
        found.append(f"user {user}: 10 items from one query_points call; writes refused")

    def group(self) -> dict[str, str]:
        """The consumer group's members (client host) and the partitions each holds, from
        kafka-consumer-groups.sh inside the broker's container."""
        (kafka,) = self.containers("kafka")
        out = self.podman(
            "exec", kafka, "/opt/kafka/bin/kafka-consumer-groups.sh", "--bootstrap-server",
            "127.0.0.1:9094", "--describe", "--group", "interest-stream", "--members",
            "--verbose", quiet=True, check=False,
        )  # fmt: skip
        members: dict[str, str] = {}
        for line in out.splitlines()[1:]:
            cols = line.split()
            if cols and cols[0] == "interest-stream":  # host, then the assignment column
                members[cols[2]] = next((c for c in cols[3:] if ":" in c), "")
        return members

    def wait_group(self, members: int, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            group = self.group()
            holding = [m for m, parts in group.items() if parts]
            if len(group) == members and len(holding) == members:
                return group
            if time.monotonic() > deadline:
                raise SmokeError(f"group not {members} members holding partitions: {group}")
            time.sleep(3)

    def scraped(self, expected: int, timeout: float) -> list[str]:
        import urllib.request

        deadline = time.monotonic() + timeout
        while True:
            with urllib.request.urlopen("http://localhost:9090/api/v1/targets") as answer:
                targets = json.load(answer)["data"]["activeTargets"]
            up = [
                t["labels"]["instance"]
                for t in targets
                if t["labels"]["job"] == "interest-stream" and t["health"] == "up"
            ]
            if len(up) == expected:
                return sorted(up)
            if time.monotonic() > deadline:
                raise SmokeError(f"Prometheus scrapes {up}, not {expected} workers")
            time.sleep(3)

    def down(self, found: list[str]) -> None:
        self.compose("down", "-v", "--timeout", "20", check=False, quiet=True)
        left = self.podman(
            "ps", "-a", "--filter", f"label=io.podman.compose.project={PROJECT}", "--format",
            "{{.Names}}",
        ).split()  # fmt: skip
        for name in left:
            self.podman("rm", "-f", name, check=False, quiet=True)
        volumes = self.podman("volume", "ls", "--format", "{{.Name}}").split()
        for volume in (v for v in volumes if v.startswith(f"{PROJECT}_")):
            self.podman("volume", "rm", "-f", volume, check=False, quiet=True)
        still = self.podman("ps", "-a", "--format", "{{.Names}}").split()
        if still:
            raise SmokeError(f"containers left: {still}")
        found.append(f"{len(left)} containers removed by hand" if left else "nothing left")

    # -- the run -----------------------------------------------------------------------------
    def main(self) -> None:
        with self.step("podman (vfs, runc, cgroupfs) and the tools") as found:
            self.configure_podman()
            found.append(self.podman("--version").strip())
            found.append(self.compose("--version", quiet=True).splitlines()[0].strip())
        self.down([])  # a previous run's leftovers
        with self.step("base image: Debian bookworm, Python 3.11") as found:
            self.base_image(found)
        with self.step("Kafka image: Debian JRE + Maven jars") as found:
            found.append(
                self.local_image("KAFKA_IMAGE", "Containerfile.kafka", self.kafka_context())
            )
        with self.step("Qdrant image: the 1.19.0 binary") as found:
            found.append(
                self.local_image("QDRANT_IMAGE", "Containerfile.qdrant", self.qdrant_context())
            )
        with self.step("Prometheus image: Debian's package") as found:
            found.append(self.local_image("PROMETHEUS_IMAGE", "Containerfile.prometheus", LOCAL))
        with self.step("worker image: docker/Dockerfile, target worker") as found:
            self.compose("build", "worker", quiet=True)
            found.append(f"interest-stream/worker:{TAG}")
        with self.step("models volume") as found:
            self.seed_models(found)
        try:
            with self.healthcheck_pump():
                self.stack()
        finally:
            with self.step("down -v") as found:
                self.down(found)

    def start_in_order(self, found: list[str]) -> None:
        """`up -d`, one service at a time in the compose file's depends_on order, each once
        its dependencies meet their conditions. (podman-compose leaves the waiting to
        `podman wait --condition=healthy`, which podman 4.3 lacks: it would start the
        workers before Kafka answers.)"""
        import yaml

        spec = yaml.safe_load(COMPOSE.read_text())["services"]
        started: list[str] = []
        while len(started) < len(SERVICES):
            ready = [
                s for s in SERVICES
                if s not in started and all(d in started for d in spec[s].get("depends_on", {}))
            ]  # fmt: skip
            for service in ready:
                for dep, rule in spec[service].get("depends_on", {}).items():
                    self.wait_condition(dep, rule.get("condition", "service_started"), 300)
                self.compose("up", "-d", "--no-deps", service, quiet=True)
                started.append(service)
        found.append(" -> ".join(started))

    def wait_condition(self, service: str, condition: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            out = self.podman(
                "ps", "-a", "--filter", f"label=io.podman.compose.project={PROJECT}",
                "--filter", f"label=com.docker.compose.service={service}",
                "--format", "{{.Names}}",
            ).split()  # fmt: skip
            states = [self.state(n) for n in out]
            if states and all(self.meets(st, condition) for st in states):
                return
            if any(st.get("Status") == "exited" and st.get("ExitCode") for st in states):
                raise SmokeError(f"{service} failed: {states}")
            if time.monotonic() > deadline:
                raise SmokeError(f"{service}: not {condition} after {timeout:.0f} s")
            time.sleep(2)

    def state(self, name: str) -> dict[str, Any]:
        out = self.podman("inspect", "--format", "{{json .State}}", name, check=False, quiet=True)
        return dict(json.loads(out or "{}"))

    @staticmethod
    def meets(state: dict[str, Any], condition: str) -> bool:
        if condition == "service_completed_successfully":
            return state.get("Status") == "exited" and state.get("ExitCode") == 0
        if condition == "service_healthy":
            health = state.get("Health") or state.get("Healthcheck") or {}
            return health.get("Status") == "healthy"
        return state.get("Status") == "running"

    def stack(self) -> None:
        with self.step("up, in depends_on order") as found:
            self.start_in_order(found)
        with self.step("every healthcheck passes") as found:
            self.wait_healthy(HEALTHY, 300, found)
            for one_shot in ("topic-init", "model-init"):
                out = self.podman(
                    "ps", "-a", "--filter", f"label=com.docker.compose.service={one_shot}",
                    "--filter", f"label=io.podman.compose.project={PROJECT}", "--format",
                    "{{.Status}}",
                )  # fmt: skip
                if "Exited (0)" not in out:
                    raise SmokeError(f"{one_shot}: {out.strip()}")
            found.append("topic-init, model-init exited 0")
        with self.step("produce a MovieLens slice from the host") as found:
            first = self.produce(SLICES[0], found)
        with self.step("every event counted") as found:
            self.wait_counted(first, 300, found)
        with self.step("recommendations with the read-only key") as found:
            self.recommend(found)
        with self.step("scale worker to 2") as found:
            self.compose("up", "-d", "--no-deps", "--scale", "worker=2", "worker", quiet=True)
            self.wait_healthy(["worker"], 300, found)
            group = self.wait_group(2, 180)
            shares = [clicks(parts) for parts in group.values()]
            found.append(f"2 members of group interest-stream; clicks partitions {shares}")
        with self.step("both workers scraped by Prometheus") as found:
            found.append(", ".join(self.scraped(2, 120)))
        with self.step("kill -9 one worker: its partitions move") as found:
            victim = self.containers("worker")[-1]
            self.podman("kill", "--signal", "KILL", victim)
            self.podman("rm", "-f", victim)  # no restart: the survivor must take its share
            group = self.wait_group(1, 180)
            (parts,) = group.values()
            if clicks(parts) != list(range(PARTITIONS)):
                raise SmokeError(f"the survivor holds {parts}")
            found.append(f"{victim} killed and removed; the survivor holds clicks {clicks(parts)}")
        with self.step("a second slice, nothing lost") as found:
            second = self.produce(SLICES[1], found)
            self.wait_counted(first + second, 300, found)

    def table(self) -> str:
        lines = ["| check | seconds | result |", "|---|---:|---|"]
        lines += [f"| {n} | {s:.1f} | {r.replace('|', '/')} |" for n, s, r in self.rows]
        return "\n".join(lines)


def clicks(assignment: str) -> list[int]:
    """The `clicks` partitions in an assignment like `clicks:0,1,2;items:0,1,2`."""
    for part in assignment.split(";"):
        topic, _, numbers = part.partition(":")
        if topic == "clicks":
            return sorted(int(n) for n in numbers.split(",") if n)
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--readme", action="store_true", help="write the table into docs/operations.md"
    )
    args = parser.parse_args(argv)
    smoke = Smoke()
    started = time.monotonic()
    failed = None
    try:
        smoke.main()
    except (SmokeError, subprocess.CalledProcessError) as exc:
        failed = exc
    table = smoke.table()
    total = time.monotonic() - started
    print(table)
    print(f"total {total:.0f} s; {'FAILED' if failed else 'passed'}")
    if failed:
        print(f"compose-smoke: {failed}", file=sys.stderr)
        return 1
    if args.readme:
        from streams.evaluation.report import update_readme

        day = datetime.now(UTC).strftime("%Y-%m-%d")
        body = (
            f"`make compose-smoke` ({day}, {total:.0f} s in all, podman 4.3, images cached "
            f"but the worker's):\n\n{table}\n"
        )
        update_readme(ROOT / "docs" / "operations.md", "compose-smoke", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
