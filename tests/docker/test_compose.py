"""The compose stack, checked without a Docker engine (none runs on the development machine).

What can be proved here: the file follows the Compose Specification's JSON schema (the one
docker compose v2 loads it with), every `interest-stream` command it and the Dockerfile run
exists in the CLI with those options, every INTEREST_* variable is a setting with a valid
value, every ${VARIABLE} has an example, and the same commands run outside containers
against the local broker.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.cli import build_parser
from streams.settings import Settings, SettingsError, load_settings
from streams.worker.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = DOCKER / ".env.example"
# The Compose Specification's schema, from the loader that docker compose v2 is built on.
SCHEMA_MODULE = "github.com/compose-spec/compose-go/v2@v2.16.2"
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    pairs = (ln.split("=", 1) for ln in ENV_EXAMPLE.read_text().splitlines() if "=" in ln)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def env_filled() -> dict[str, str]:
    """.env.example with its placeholder secrets set, as the README asks an operator to."""
    return {
        k: f"{k.lower()}-3f9c2a71d8e4b605" if v.startswith("change-me") else v
        for k, v in env_example().items()
    }


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${V}, ${V:-default}, ${V-default}, ${V:?error}."""

    def value(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        have = env.get(name)
        if op in (":?", "?") and (have is None or (op == ":?" and have == "")):
            raise ValueError(f"required variable {name} is missing: {arg}")
        if op == ":-" and not have:
            return arg
        if op == "-" and have is None:
            return arg
        return have or ""

    return VARIABLE.sub(value, text)


def load(env: dict[str, str] | None = None) -> dict[str, Any]:
    return yaml.safe_load(interpolate(COMPOSE.read_text(), env_filled() if env is None else env))


def services() -> dict[str, Any]:
    return load()["services"]


def cli_invocations(argv: list[str]) -> list[list[str]]:
    """The argument lists given to `interest-stream` in a command (also inside `sh -c`)."""
    if argv[:2] in (["sh", "-c"], ["bash", "-c"], ["CMD-SHELL"]):
        argv = shlex.split(argv[-1])
    if argv and argv[0] == "CMD":
        argv = argv[1:]
    found, current = [], None
    for token in argv:
        if token in (";", "||", "&&", "|"):
            current = None
        elif current is not None:
            current.append(token)
        elif token == "interest-stream":
            current = []
            found.append(current)
    return found


def dockerfile_commands() -> list[list[str]]:
    """CMD and HEALTHCHECK CMD of the Dockerfile, in exec form."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [json.loads(m) for m in re.findall(r"(?:^|\s)CMD (\[.*?\])", text, re.M)]


def compose_commands() -> list[list[str]]:
    out = []
    for svc in services().values():
        for argv in (svc.get("command"), (svc.get("healthcheck") or {}).get("test")):
            if isinstance(argv, list):
                out.append([str(a) for a in argv])
    return out


# -- the specification ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("go") is None:
        pytest.skip("needs Go to fetch the Compose Specification schema (module proxy)")
    result = subprocess.run(
        ["go", "mod", "download", "-json", SCHEMA_MODULE],
        cwd=tmp_path_factory.mktemp("go"),
        capture_output=True,
        text=True,
        env=os.environ | {"GOFLAGS": "-mod=mod"},
        check=True,
    )
    path = Path(json.loads(result.stdout)["Dir"]) / "schema" / "compose-spec.json"
    return json.loads(path.read_text())


def test_the_compose_file_follows_the_compose_specification(compose_schema) -> None:
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(compose_schema).iter_errors(load()), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_broken_file(compose_schema) -> None:
    from jsonschema import Draft202012Validator

    broken = load()
    broken["services"]["worker"]["healthcheck"]["interval"] = ["15s"]
    broken["services"]["worker"]["restart_policy"] = "always"  # not a service key
    assert len(list(Draft202012Validator(compose_schema).iter_errors(broken))) >= 2


def test_secrets_are_required_and_have_examples() -> None:
    secrets = ("KAFKA_WORKER_PASSWORD", "KAFKA_PRODUCER_PASSWORD", "QDRANT_API_KEY")
    secrets += ("QDRANT_READ_ONLY_API_KEY", "GRAFANA_ADMIN_PASSWORD")
    for secret in secrets:  # each one missing alone stops the stack
        with pytest.raises(ValueError, match=secret):
            load({k: v for k, v in env_filled().items() if k != secret})
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    names = {name for name, _, _ in used}
    assert names <= env_example().keys(), names - env_example().keys()
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/docker/.env" in ignored and "/.env" in ignored
    assert (
        not (DOCKER / ".env").exists()
        or "docker/.env"
        not in subprocess.run(
            ["git", "ls-files", "docker/.env"], cwd=ROOT, capture_output=True, text=True
        ).stdout
    )


def test_every_interest_variable_is_a_setting_with_a_valid_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fields = set(Settings.model_fields)
    dockerfile_env = dict(re.findall(r"(INTEREST_[A-Z_]+)=(\S+)", DOCKERFILE.read_text()))
    for name, svc in services().items():
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        interest = {k: v for k, v in (dockerfile_env | env).items() if k.startswith("INTEREST_")}
        for key in interest:
            assert key.removeprefix("INTEREST_").lower() in fields, f"{name}: {key}"
        for key in list(os.environ):
            if key.startswith("INTEREST_"):
                monkeypatch.delenv(key)
        for key, value in interest.items():
            monkeypatch.setenv(key, value)
        Settings()  # a bad value raises here


def test_a_stack_left_with_the_placeholder_secrets_does_not_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = load(env_example())["services"]["worker"]
    for key in list(os.environ):
        if key.startswith("INTEREST_"):
            monkeypatch.delenv(key)
    for key, value in worker["environment"].items():
        monkeypatch.setenv(key, str(value))
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "INTEREST_KAFKA_SASL_PASSWORD and INTEREST_QDRANT_API_KEY still the placeholder" in str(
        refused.value
    )


def test_only_the_workers_hold_the_qdrant_key() -> None:
    holders = {
        name
        for name, svc in services().items()
        if "INTEREST_QDRANT_API_KEY" in (svc.get("environment") or {})
    }
    assert holders == {"worker", "worker-gpu"}


def test_every_command_exists_in_the_cli() -> None:
    parser = build_parser()
    invocations = [
        args
        for argv in compose_commands() + dockerfile_commands()
        for args in cli_invocations(argv)
    ]
    subcommands = {args[0] for args in invocations}
    assert {"worker", "topics", "health", "export", "finetune"} <= subcommands
    for args in invocations:
        try:
            parser.parse_args(args)
        except SystemExit as exc:  # --help exits 0; an unknown command or option exits 2
            assert exc.code == 0, args


def test_workers_scale_and_the_gpu_worker_reserves_a_device() -> None:
    svc = services()
    for name in ("worker", "worker-gpu"):
        worker = svc[name]
        assert "container_name" not in worker and "ports" not in worker, name  # --scale
        assert worker["environment"]["INTEREST_CONSUMER_GROUP"] == "interest-stream"
        assert worker["healthcheck"]["test"] == ["CMD", "interest-stream", "health"]
    gpu = svc["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["environment"]["INTEREST_ENCODER_PROVIDER"] == "cuda"
    assert svc["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"]  # the API key is required


def test_images_are_pinned() -> None:
    for name, svc in services().items():
        image = svc["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        if image.startswith("interest-stream/"):
            continue  # built here
        assert re.fullmatch(r"v?\d+(\.\d+)+", tag), f"{name}: {image}"
    for base in re.findall(r"^ARG \w+_IMAGE=(\S+)", DOCKERFILE.read_text(), re.M):
        assert re.search(r":\d+(\.\d+)+", base), base
    assert (ROOT / ".dockerignore").read_text().startswith("#")


def test_image_variables_default_to_the_pinned_images_the_example_names() -> None:
    """Every image is a variable (a local run swaps it: `make compose-smoke`) whose default
    in the compose file is what .env.example says; with none set, the official images."""
    text = COMPOSE.read_text()
    defaults = {m[0]: m[2] for m in VARIABLE.findall(text) if m[0].endswith("_IMAGE")}
    assert set(defaults) == {
        "KAFKA_IMAGE", "QDRANT_IMAGE", "PROMETHEUS_IMAGE", "GRAFANA_IMAGE", "PYTHON_IMAGE"
    }  # fmt: skip
    example = env_example()
    assert {k: example[k] for k in defaults} == defaults
    (dockerfile_default,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text(), re.M)
    assert defaults["PYTHON_IMAGE"] == dockerfile_default
    assert services()["kafka"]["image"] == "apache/kafka:4.0.0"
    local = load(env_filled() | {"KAFKA_IMAGE": "localhost/kafka:x"})["services"]
    assert local["kafka"]["image"] == "localhost/kafka:x"


def test_prometheus_scrapes_the_metrics_port_of_every_worker() -> None:
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    port = int(services()["worker"]["environment"]["INTEREST_METRICS_PORT"])
    targets = {
        name: sd["port"]
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
        for name in sd["names"]
    }
    assert targets == {"worker": port, "worker-gpu": port}


def test_the_dashboard_plots_only_metrics_the_worker_exports() -> None:
    exported = set()
    for family in Metrics().registry.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_count", "_sum"],
            "gauge": [""],
        }[family.type]
        exported |= {family.name + s for s in suffixes}
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "interest-stream.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\binterest_[a-z_]+", target["expr"])
    }
    assert used and used <= exported, used - exported
    names = {family.name for family in Metrics().registry.collect()}
    unplotted = {n for n in names if not any(u.startswith(n) for u in used)}
    assert not unplotted, f"metrics without a panel: {unplotted}"
    provisioning = DOCKER / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    uids = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    assert uids == {source["datasources"][0]["uid"]}


# -- the same commands, outside containers ---------------------------------------------------


@pytest.fixture
def stack_kafka(kafka_broker, tmp_path: Path):
    """docker/kafka/start.sh, the stack's Kafka, run on the local broker's jars: KAFKA_BIN
    wrappers stand in for the image's scripts; ports are free ones. Yields its clients'
    bootstrap address (SASL_PLAINTEXT, SCRAM-SHA-512) and the environment it ran with."""
    from streams.kafka.broker import LOG4J
    from tests.streams.kafka_helpers import free_port

    java = shutil.which("java")
    assert java is not None
    home = tmp_path / "stack-kafka"
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True)
    classpath = f"{kafka_broker.libs}/*"
    for script, main, heap in (
        ("kafka-storage.sh", "kafka.tools.StorageTool", "256m"),
        ("kafka-server-start.sh", "kafka.Kafka", "512m"),
    ):
        wrapper = bin_dir / script
        wrapper.write_text(
            f"#!/bin/sh\nexec {java} -Xmx{heap} -Dlog4j2.configurationFile={LOG4J} "
            f'-Dkafka.logs.dir={home} -cp "{classpath}" {main} "$@"\n'
        )
        wrapper.chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "INTEREST_"))}
    env |= {
        "KAFKA_BIN": str(bin_dir),
        "KAFKA_DATA": str(home / "data"),
        "KAFKA_CONF": str(home / "server.properties"),
        "KAFKA_PORT": str(port),
        "KAFKA_HOST_PORT": str(free_port()),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_INTERNAL_PORT": str(free_port()),
        "KAFKA_ADVERTISED_HOST": "127.0.0.1",
        "KAFKA_WORKER_PASSWORD": env_filled()["KAFKA_WORKER_PASSWORD"],
        "KAFKA_PRODUCER_PASSWORD": env_filled()["KAFKA_PRODUCER_PASSWORD"],
    }
    log = (home / "broker.log").open("wb")
    proc = subprocess.Popen(
        ["/bin/sh", str(DOCKER / "kafka" / "start.sh")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while "started (kafka.server.KafkaRaftServer)" not in (home / "broker.log").read_text():
            assert proc.poll() is None, (home / "broker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the stack's Kafka did not start"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(60)
        log.close()


def test_the_stacks_kafka_refuses_a_placeholder_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env |= {"KAFKA_WORKER_PASSWORD": "change-me", "KAFKA_PRODUCER_PASSWORD": "x" * 32}
    env |= {"KAFKA_BIN": str(tmp_path), "KAFKA_CONF": str(tmp_path / "server.properties")}
    done = subprocess.run(
        ["/bin/sh", str(DOCKER / "kafka" / "start.sh")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "KAFKA_WORKER_PASSWORD is still the placeholder" in done.stderr
    assert not (tmp_path / "server.properties").exists()  # refused before anything is written


@pytest.mark.kafka
def test_the_stacks_kafka_lets_in_only_its_scram_users(stack_kafka) -> None:
    """With the worker's or the producer's login, `topics` works; without a login, or with
    a wrong password, it is refused (a one-line error, no password in it)."""
    bootstrap, kafka_env = stack_kafka
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTEREST_")}
    base |= {"INTEREST_KAFKA_BOOTSTRAP": bootstrap, "INTEREST_TOPIC_PREFIX": "scram."}
    login = {
        "INTEREST_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "INTEREST_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    }

    def topics(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", "topics"],
            env=base | env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    for user in ("worker", "producer"):
        password = kafka_env[f"KAFKA_{user.upper()}_PASSWORD"]
        env = login | {
            "INTEREST_KAFKA_SASL_USERNAME": user,
            "INTEREST_KAFKA_SASL_PASSWORD": password,
        }
        done = topics(env)
        assert done.returncode == 0, done.stderr
    wrong = login | {
        "INTEREST_KAFKA_SASL_USERNAME": "worker",
        "INTEREST_KAFKA_SASL_PASSWORD": "not-the-password-0b7e",
    }
    for env in (wrong, {}):
        done = topics(env)
        assert done.returncode != 0
        assert kafka_env["KAFKA_WORKER_PASSWORD"] not in done.stdout + done.stderr


@pytest.mark.kafka
@pytest.mark.slow
def test_the_stacks_commands_run_against_the_stacks_kafka(
    stack_kafka, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """topic-init, the worker and its healthcheck, with the compose environment, against
    the stack's Kafka (its SCRAM logins); only the addresses of containers are replaced
    (that broker's port, embedded Qdrant, a tiny model)."""
    from tests.streams.kafka_helpers import free_port, partitions

    bootstrap, _ = stack_kafka
    svc = services()
    prefix = f"compose{uuid.uuid4().hex[:6]}."
    env = {k: str(v) for k, v in svc["worker"]["environment"].items()}
    for container_only in ("INTEREST_QDRANT_URL", "INTEREST_QDRANT_API_KEY"):
        env.pop(container_only)
    env |= {
        "INTEREST_KAFKA_BOOTSTRAP": bootstrap,
        "INTEREST_MODEL_DIR": str(tiny_model_dir),
        "INTEREST_DATA_DIR": str(tmp_path / "data"),
        "INTEREST_METRICS_HOST": "127.0.0.1",
        "INTEREST_METRICS_PORT": str(free_port()),
        "INTEREST_TOPIC_PREFIX": prefix,
        "INTEREST_CONSUMER_GROUP": f"{prefix}group",
        "INTEREST_ENCODER_PROVIDER": "cpu",
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTEREST_")} | env

    def run_cli(args: list[str], **kwargs: Any) -> Any:
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", *args], env=clean, cwd=tmp_path, **kwargs
        )

    (init,) = cli_invocations(svc["topic-init"]["command"])
    done = run_cli([*init, "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)["topics"]
    names = ("clicks", "views", "reviews", "forget", "items", "feedback", "dlq", "examples")
    names += ("parked",)
    assert created == [f"{prefix}{t}" for t in names]
    wanted = int(env["INTEREST_TOPIC_PARTITIONS"])  # from .env.example through the compose file
    login = Settings(
        **{k.removeprefix("INTEREST_").lower(): v for k, v in env.items() if "_KAFKA_" in k}
    )
    assert partitions(bootstrap, created, login) == dict.fromkeys(created, wanted)

    (worker_args,) = cli_invocations(svc["worker"]["command"])
    (health_args,) = cli_invocations(svc["worker"]["healthcheck"]["test"])
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", *worker_args],
        env=clean,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while run_cli(health_args, capture_output=True).returncode != 0:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the worker never became healthy"
            time.sleep(1)
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(60)
        log.close()
    lines = (tmp_path / "worker.log").read_text().splitlines()
    assert any(ln.startswith("{") and '"level"' in ln for ln in lines)  # INTEREST_LOG_FORMAT=json
