"""Settings that cannot work are refused at start, in one line per problem naming the
INTEREST_* variable, and no value (a secret may sit beside the bad one) is ever echoed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streams.settings import SettingsError, load_settings

PASSWORD = "sasl-password-3e9b1d7c2f"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INTEREST_RATING_SCALE": "0"}, "INTEREST_RATING_SCALE: Input should be greater than 0"),
        ({"INTEREST_RATING_CENTER": "nan"}, "INTEREST_RATING_CENTER: Input should be a finite"),
        ({"INTEREST_WINDOW_MS": "inf"}, "INTEREST_WINDOW_MS: Input should be a finite number"),
        ({"INTEREST_WINDOW_EVENTS": "-3"}, "INTEREST_WINDOW_EVENTS: Input should be greater"),
        ({"INTEREST_MIN_TS": "-1"}, "INTEREST_MIN_TS: Input should be greater than or equal"),
        ({"INTEREST_TOPIC_PARTITIONS": "four"}, "INTEREST_TOPIC_PARTITIONS: Input should be a"),
        (
            {"INTEREST_QDRANT_API_KEY": "change-me-to-a-long-random-string"},
            "INTEREST_QDRANT_API_KEY still the placeholder of .env.example",
        ),
        (
            {
                "INTEREST_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "INTEREST_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "INTEREST_KAFKA_SASL_USERNAME": "worker",
                "INTEREST_KAFKA_SASL_PASSWORD": "change-me",
            },
            "INTEREST_KAFKA_SASL_PASSWORD still the placeholder of .env.example",
        ),
        (
            {"INTEREST_HALF_LIFE_SHORT_S": "100", "INTEREST_HALF_LIFE_LONG_S": "10"},
            "INTEREST_HALF_LIFE_SHORT_S must not exceed INTEREST_HALF_LIFE_LONG_S",
        ),
    ],
)
def test_values_that_cannot_work_are_refused_by_name(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="bad settings") as caught:
        load_settings()
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_settings_error_never_carries_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model validator saw the password beside the bad protocol: it is not echoed."""
    monkeypatch.setenv("INTEREST_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("INTEREST_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("INTEREST_QDRANT_API_KEY", PASSWORD + "q")
    monkeypatch.setenv("INTEREST_TOPIC_PARTITIONS", "x")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    text = str(caught.value) + repr(caught.value)
    assert "INTEREST_KAFKA_SASL_MECHANISM" in text or "INTEREST_TOPIC_PARTITIONS" in text
    assert PASSWORD not in text


@pytest.mark.parametrize("command", [["topics"], ["worker"], ["recommend", "1"], ["forget", "u"]])
def test_every_command_answers_bad_settings_with_one_line_and_no_secret(
    command: list[str],
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEREST_")}
    env |= {
        "INTEREST_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "INTEREST_KAFKA_SASL_PASSWORD": PASSWORD,
    }
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "INTEREST_KAFKA_SASL_MECHANISM" in lines[0]


def test_every_setting_has_a_meaning_and_the_reference_lists_each_once(capsys) -> None:
    """`interest-stream settings` is made from the class: a field without a meaning, or a
    meaning without a field, fails here."""
    import orjson

    from streams.cli import main
    from streams.settings import MEANINGS, Settings

    assert set(MEANINGS) == set(Settings.model_fields)
    assert all(MEANINGS.values())
    assert main(["settings", "--json"]) == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert [r["variable"] for r in rows] == [f"INTEREST_{n.upper()}" for n in Settings.model_fields]
    window = next(r for r in rows if r["variable"] == "INTEREST_WINDOW_MS")
    assert (window["type"], window["default"]) == ("float", "100.0")


def test_settings_current_never_shows_a_secret(monkeypatch, capsys) -> None:
    from streams.cli import main

    monkeypatch.setenv("INTEREST_QDRANT_API_KEY", "s3cret-value")
    monkeypatch.setenv("INTEREST_WINDOW_MS", "125")
    assert main(["settings", "--current"]) == 0
    out = capsys.readouterr().out
    assert "s3cret-value" not in out and "now: (set)" in out and "now: 125.0" in out
