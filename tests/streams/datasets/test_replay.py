from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streams.datasets.replay import feedback_of, movielens_events, movielens_items, replay_movielens
from streams.errors import StreamError
from streams.kafka.topics import ensure_topics
from streams.settings import Settings


@pytest.fixture
def tiny_movielens(tmp_path: Path) -> Path:
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Comedy\n2,"Heat, The (1995)",'
        "(no genres listed)\n"
    )
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,2,3.0,200\n1,1,4.5,100\n2,1,4.0,100\n"
    )
    (tmp_path / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,1,funny,150\n")
    return tmp_path


def test_items_carry_title_and_genres(tiny_movielens: Path) -> None:
    items = {r.key: r.value["text"] for r in movielens_items(tiny_movielens)}
    assert items == {"1": "Toy Story (1995). Genres: Adventure, Comedy", "2": "Heat, The (1995)"}


def test_events_are_mapped_and_in_time_order(tiny_movielens: Path) -> None:
    events = movielens_events(tiny_movielens)
    assert [(r.topic, r.value["user_id"], r.ts) for r in events] == [
        ("clicks", "1", 100.0),  # ties: by user, then item
        ("clicks", "2", 100.0),
        ("reviews", "1", 150.0),
        ("views", "1", 200.0),
    ]
    assert events[0].value["rating"] == 4.5 and events[2].value["text"] == "funny"
    assert len({r.value["event_id"] for r in events}) == 4


def test_feedback_is_derived_from_ratings(tiny_movielens: Path) -> None:
    (tiny_movielens / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,2,3.0,200\n1,1,4.5,100\n2,1,1.5,100\n2,2,2.0,300\n"
    )
    signals = feedback_of(movielens_events(tiny_movielens))
    assert [(r.topic, r.key, r.value["item_id"], r.value["signal"], r.ts) for r in signals] == [
        ("feedback", "1", "1", "positive", 101.0),  # 4.5
        ("feedback", "2", "1", "negative", 101.0),  # 1.5
        ("feedback", "2", "2", "negative", 301.0),  # 2.0; the 3.0 and the tag give none
    ]


def test_a_folder_without_the_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StreamError, match=r"movies\.csv not found"):
        list(movielens_items(tmp_path))
    (tmp_path / "movies.csv").write_text("id,name\n1,x\n")
    with pytest.raises(StreamError, match="missing columns"):
        list(movielens_items(tmp_path))


@pytest.mark.kafka
def test_waiting_for_items_without_a_worker_is_a_clear_error(kafka_broker, tiny_movielens) -> None:
    settings = Settings(
        kafka_bootstrap=kafka_broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        consumer_group=f"nobody-{uuid.uuid4().hex[:8]}",
    )
    ensure_topics(settings)
    with pytest.raises(StreamError, match="is a worker running"):
        replay_movielens(tiny_movielens, settings, progress=False, wait_items=1.0)
